package send

import (
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/oairl/oairl/diagnose"
)

// chargeMeter measures the TPM charge the server applies, from the
// x-ratelimit-remaining-tokens of consecutive admissions of one limiter
// key: when request k is admitted at time t_k the server's bucket reads
// R_k = min(L, R_{k-1} + L/min × (t_k − t_{k−1})) − c_k, so c_k is known
// when the bucket was not full in between. Attempts are numbered per key
// as they are sent; only pairs of consecutive numbers that were both
// answered 2xx with a tokens window count (a 429 in between breaks the
// pair, and pairs whose bucket may have been full are skipped).
//
// Concurrent requests reach the server in another order than they were
// sent, so pairs are formed in the server's order, not the send order:
// the level V_k = R_k − L/min × t_k only falls, by c_k at each admission
// (by more when the bucket was full), so the samples sorted by V
// (descending) are in admission order and each delta of V is the charge
// of the later request. The last 1024 samples of a key are kept sorted
// (a reordering reaches back at most the requests in flight); older ones
// are final. The ratio is Σ deltas / Σ oairl's estimates
// (tokens.TPMCharge) over the pairs.
//
// A pair is clean when nothing else of the key was in flight from the
// first request's send to the second's answer: the server cannot have
// reordered it, and its delta is that one request's charge. Pacing
// follows the ratio only on clean evidence (ChargeStats.Steady).
type chargeMeter struct {
	mu     sync.Mutex
	keys   map[string]*keyMeter
	server float64 // Σ measured charges of final pairs
	est    float64 // Σ oairl's estimates of the same requests
	n      int
	// Clean pairs: their sums and the last recentN per-pair ratios.
	cleanServer, cleanEst float64
	cleanN                int
	recent                []float64
}

const (
	recentN = 20
	sortedN = 1024 // samples of a key kept in the server's order
)

type keyMeter struct {
	next     int64
	inFlight int
	samples  map[int64]chargeSample // by attempt number, for clean pairs
	base     time.Time              // origin of V's time
	sorted   []chargeSample         // by V, descending
	// Σ over the pairs of sorted.
	server, est float64
	n           int
}

type chargeSample struct {
	sent      time.Time
	remaining int64
	limit     int64
	est       int64
	v         float64 // remaining − refill since the key's base
	// alone: nothing else of the key was in flight from its send to its
	// answer.
	alone bool
}

func (m *chargeMeter) key(k string) *keyMeter {
	if m.keys == nil {
		m.keys = map[string]*keyMeter{}
	}
	km := m.keys[k]
	if km == nil {
		km = &keyMeter{samples: map[int64]chargeSample{}}
		m.keys[k] = km
	}
	return km
}

// attemptMark is one attempt of a key being measured: from sending to
// returned.
type attemptMark struct {
	key       string
	seq       int64
	aloneSent bool // nothing else of the key in flight when it was sent
}

// sending numbers an attempt of key about to be sent.
func (m *chargeMeter) sending(key string) attemptMark {
	m.mu.Lock()
	defer m.mu.Unlock()
	km := m.key(key)
	km.next++
	a := attemptMark{key: key, seq: km.next, aloneSent: km.inFlight == 0}
	km.inFlight++
	return a
}

// returned ends attempt a (whatever its outcome) and reports whether it
// was alone in flight from its send to now.
func (m *chargeMeter) returned(a attemptMark) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	km := m.key(a.key)
	km.inFlight--
	return a.aloneSent && km.next == a.seq
}

// answered records a 2xx answer of attempt a (alone: as returned said),
// sent at sent, whose charge oairl estimated at est tokens.
func (m *chargeMeter) answered(a attemptMark, alone bool, sent time.Time, est int64, tok diagnose.Window) {
	if !tok.Known || tok.Limit <= 0 || tok.Remaining < 0 || est <= 0 || tok.Daily {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	km := m.key(a.key)
	if km.base.IsZero() {
		km.base = sent
	}
	rate := float64(tok.Limit) / float64(time.Minute)
	s := chargeSample{sent: sent, remaining: tok.Remaining, limit: tok.Limit, est: est, alone: alone,
		v: float64(tok.Remaining) - rate*float64(sent.Sub(km.base))}
	seq := a.seq
	km.samples[seq] = s
	if p, ok := km.samples[seq-1]; ok {
		m.cleanPair(p, s)
	}
	if nx, ok := km.samples[seq+1]; ok {
		m.cleanPair(s, nx)
	}
	delete(km.samples, seq-64) // bounded memory
	km.insert(s)
	if len(km.sorted) > sortedN {
		// The oldest in the server's order is final.
		if c, e, ok := pairCharge(km.sorted[0], km.sorted[1]); ok {
			km.server -= c
			km.est -= e
			km.n--
			m.server += c
			m.est += e
			m.n++
		}
		km.sorted = km.sorted[1:]
	}
}

// insert puts s into km.sorted in the server's order, keeping the sums of
// its pairs.
func (km *keyMeter) insert(s chargeSample) {
	i := sort.Search(len(km.sorted), func(i int) bool { return km.sorted[i].v < s.v })
	add := func(p, c chargeSample, sign float64) {
		if ch, e, ok := pairCharge(p, c); ok {
			km.server += sign * ch
			km.est += sign * e
			km.n += int(sign)
		}
	}
	if i > 0 && i < len(km.sorted) {
		add(km.sorted[i-1], km.sorted[i], -1)
	}
	if i > 0 {
		add(km.sorted[i-1], s, 1)
	}
	if i < len(km.sorted) {
		add(s, km.sorted[i], 1)
	}
	km.sorted = slices.Insert(km.sorted, i, s)
}

// pairCharge is the charge of cur admitted next after prev: the fall of
// V between them, unless the bucket may have been full (the charge is then
// hidden) or the limit changed.
func pairCharge(prev, cur chargeSample) (charge, est float64, ok bool) {
	if prev.limit != cur.limit {
		return 0, 0, false
	}
	rate := float64(cur.limit) / float64(time.Minute)
	refilled := float64(prev.remaining) + rate*float64(cur.sent.Sub(prev.sent))
	if refilled >= 0.98*float64(cur.limit) {
		return 0, 0, false
	}
	return prev.v - cur.v, float64(cur.est), true
}

// cleanPair records the consecutive attempts prev, cur when neither
// overlapped another request: its delta is cur's charge alone.
func (m *chargeMeter) cleanPair(prev, cur chargeSample) {
	if !prev.alone || !cur.alone || cur.sent.Before(prev.sent) {
		return
	}
	c, e, ok := pairCharge(prev, cur)
	if !ok {
		return
	}
	m.cleanServer += c
	m.cleanEst += e
	m.cleanN++
	m.recent = append(m.recent, c/e)
	if len(m.recent) > recentN {
		m.recent = m.recent[1:]
	}
}

// ChargeStats is what the cycle measured of the server's TPM charge.
type ChargeStats struct {
	// Ratio is Σ server charge / Σ oairl's estimate over Samples
	// requests (0 when none).
	Ratio   float64
	Samples int
	// Steady is true when at least MinSteadySamples clean pairs (no other
	// request in flight: the server cannot have reordered them) were
	// measured, their ratio agrees with Ratio within 5%, and the last
	// recentN clean per-request ratios average within 5% of it with a
	// spread (standard deviation) under 15%: pacing may then follow Ratio.
	Steady bool
}

// MinSteadySamples is how many measured requests make a ratio usable.
const MinSteadySamples = 20

func (m *chargeMeter) stats() ChargeStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	server, est, n := m.server, m.est, m.n
	for _, km := range m.keys {
		server, est, n = server+km.server, est+km.est, n+km.n
	}
	if n == 0 || est <= 0 {
		return ChargeStats{}
	}
	st := ChargeStats{Ratio: max(0, server/est), Samples: n}
	if m.cleanN >= MinSteadySamples && len(m.recent) == recentN && m.cleanEst > 0 && st.Ratio > 0 {
		clean := m.cleanServer / m.cleanEst
		var sum, sq float64
		for _, r := range m.recent {
			sum += r
		}
		mean := sum / float64(len(m.recent))
		for _, r := range m.recent {
			sq += (r - mean) * (r - mean)
		}
		sd := math.Sqrt(sq / float64(len(m.recent)))
		st.Steady = math.Abs(clean-st.Ratio) <= 0.05*st.Ratio &&
			math.Abs(mean-clean) <= 0.05*clean && sd <= 0.15*clean
	}
	return st
}

// paced returns the charge to reserve for an estimate: the estimate
// scaled by a steady measured ratio (kept within 0.5–2, and only when it
// is more than 3% away from 1), else the estimate.
func (m *chargeMeter) paced(est int64) int64 {
	st := m.stats()
	if !st.Steady || math.Abs(st.Ratio-1) <= 0.03 || est <= 0 {
		return est
	}
	r := min(2, max(0.5, st.Ratio))
	return int64(math.Ceil(float64(est) * r))
}

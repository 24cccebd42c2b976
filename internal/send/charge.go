package send

import (
	"math"
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
// answered 2xx with a tokens window count (a 429 or a request of another
// process in between breaks the pair, and pairs whose bucket may have
// been full are skipped). The ratio is Σ server charge / Σ oairl's
// estimate (tokens.TPMCharge) over the pairs.
type chargeMeter struct {
	mu     sync.Mutex
	keys   map[string]*keyMeter
	server float64 // Σ measured charges
	est    float64 // Σ oairl's estimates of the same requests
	n      int
	recent []float64 // per-pair ratios, the last recentN
}

const recentN = 20

type keyMeter struct {
	next    int64
	samples map[int64]chargeSample
}

type chargeSample struct {
	sent      time.Time
	remaining int64
	limit     int64
	est       int64
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

// sending numbers an attempt of key about to be sent.
func (m *chargeMeter) sending(key string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	km := m.key(key)
	km.next++
	return km.next
}

// answered records a 2xx answer of attempt seq of key, sent at sent, whose
// charge oairl estimated at est tokens.
func (m *chargeMeter) answered(key string, seq int64, sent time.Time, est int64, tok diagnose.Window) {
	if !tok.Known || tok.Limit <= 0 || tok.Remaining < 0 || est <= 0 || tok.Daily {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	km := m.key(key)
	s := chargeSample{sent: sent, remaining: tok.Remaining, limit: tok.Limit, est: est}
	km.samples[seq] = s
	if p, ok := km.samples[seq-1]; ok {
		m.pair(p, s)
	}
	if nx, ok := km.samples[seq+1]; ok {
		m.pair(s, nx)
	}
	delete(km.samples, seq-64) // bounded memory
}

func (m *chargeMeter) pair(prev, cur chargeSample) {
	dt := cur.sent.Sub(prev.sent)
	if dt < 0 || prev.limit != cur.limit {
		return
	}
	rate := float64(cur.limit) / float64(time.Minute)
	refilled := float64(prev.remaining) + rate*float64(dt)
	if refilled >= 0.98*float64(cur.limit) {
		return // the bucket may have been full: the charge is hidden
	}
	c := refilled - float64(cur.remaining)
	if c <= 0 {
		return
	}
	m.server += c
	m.est += float64(cur.est)
	m.n++
	m.recent = append(m.recent, c/float64(cur.est))
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
	// Steady is true when at least MinSteadySamples were measured and the
	// last recentN per-request ratios average within 5% of Ratio: pacing
	// may then follow Ratio.
	Steady bool
}

// MinSteadySamples is how many measured requests make a ratio usable.
const MinSteadySamples = 20

func (m *chargeMeter) stats() ChargeStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == 0 || m.est == 0 {
		return ChargeStats{}
	}
	st := ChargeStats{Ratio: m.server / m.est, Samples: m.n}
	if m.n >= MinSteadySamples && len(m.recent) == recentN {
		var sum float64
		for _, r := range m.recent {
			sum += r
		}
		mean := sum / float64(len(m.recent))
		st.Steady = math.Abs(mean-st.Ratio) <= 0.05*st.Ratio
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

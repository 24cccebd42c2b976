// Package pace keeps a sender under an OpenAI organization's rate limits:
// a requests-per-minute (RPM) and a tokens-per-minute (TPM) token bucket per
// model (golang.org/x/time/rate, driven by an injected clock.Clock), an
// in-flight cap that adapts to concurrency 429s (AIMD), global pauses when
// the server says a limit is exhausted, and the retry backoff policy.
//
// The buckets mirror the server's (OpenAI's rate-limits guide describes
// per-minute limits enforced as continuously refilling buckets; oairl sim
// does the same): each holds at most Headroom × limit and refills at the
// limit per minute. A sender whose traffic fits a bucket of capacity
// Headroom × L and rate L never outruns a server bucket of capacity L and
// rate L, whatever the interval, as long as network delays vary by less
// than (1 - Headroom) minutes (6 s at 0.9); the headroom is that margin,
// plus room for other processes and counting differences, which the
// x-ratelimit-remaining-* corrections absorb. (Refilling at Headroom × L
// as well would give up 10% of the throughput for good.) A request's TPM charge is its prompt tokens + output budget × n
// (tokens.Count.TPMCharge); a charge above the TPM limit can never be
// admitted (request_too_large) and is refused up front instead of waiting
// forever.
//
// Limits come from the caller (flags, a usage tier) or, for a model with
// none, are learned from the x-ratelimit-limit-* headers of its first
// response (Observe); until then only one request of that model is in
// flight. A header limit lower than the one given replaces it (a wrong
// tier); a higher one does not (the caller may want to stay below). x-ratelimit-remaining-* correct the local buckets downwards (the
// server is the truth: other processes may share the organization's
// budget).
//
// Limiter is the interface the runner uses, so that a later step can share
// one organization's budget across processes; Local is the in-process
// implementation.
package pace

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/oairl/oairl/internal/clock"
)

// Kind names a rate-limit dimension.
type Kind int

const (
	// Requests is the request bucket (RPM).
	Requests Kind = iota
	// Tokens is the token bucket (TPM).
	Tokens
)

func (k Kind) String() string {
	if k == Tokens {
		return "TPM"
	}
	return "RPM"
}

// Outcome is how a permitted request ended, reported through Permit.Done.
type Outcome int

const (
	// Success: the server answered 2xx.
	Success Outcome = iota
	// Failed: any other answer or a transport error (no effect on the cap).
	Failed
	// RateLimited: a 429 for RPM/TPM (the caller also calls Pause).
	RateLimited
	// ConcurrencyLimited: a 429 for too many requests in flight while the
	// per-minute headers show room; the in-flight cap is halved.
	ConcurrencyLimited
	// NotSent: the request was never sent (no effect on the cap).
	NotSent
)

// Window is one dimension of the x-ratelimit-* headers. Limit and
// Remaining are -1 when the header was absent; Reset is the time until the
// bucket is full again (x-ratelimit-reset-*, e.g. "6m0s"), -1 when absent.
type Window struct {
	Limit     int64
	Remaining int64
	Reset     time.Duration
}

// Observation is what one response said about the limits of its model.
// Sent, when set, is when the request was sent: the server measured its
// remaining values at admission, after Sent, so the local bucket is
// compared with them plus what it refilled since.
type Observation struct {
	Requests Window
	Tokens   Window
	Sent     time.Time
	// Organization and Project are the openai-organization and
	// openai-project response headers ("" when absent): a shared budget
	// whose name was not given learns it from them.
	Organization, Project string
}

// Limits are per-minute limits of one model; 0 means unknown (learned
// from the response headers).
type Limits struct {
	RPM int64 // requests per minute
	TPM int64 // tokens per minute
}

// Permit is the right to send one request. Done must be called exactly
// once, when the request has ended.
type Permit interface {
	Done(Outcome)
}

// Limiter paces requests under the limits of each model.
type Limiter interface {
	// Reserve blocks until a request of model charging tokens (its TPM
	// charge) may be sent: an in-flight slot is free, both buckets hold
	// enough, and no pause is in force. It returns ctx.Err() when ctx ends
	// first (nothing stays reserved), and a *TooLargeError, at once, when
	// tokens exceed the model's TPM limit.
	Reserve(ctx context.Context, model string, tokens int64) (Permit, error)
	// Observe feeds the x-ratelimit-* headers of a response received at
	// now (the limiter's clock is used when it is later): limits learned
	// when none were given or lower than given, remaining values correct
	// the buckets downwards.
	Observe(model string, obs Observation, now time.Time)
	// Pause stops every request of model that needs the bucket kind
	// until the given time (a 429 on that limit), for all workers.
	Pause(model string, kind Kind, until time.Time)
}

// TooLargeError is returned by Reserve for a request whose TPM charge
// exceeds the model's TPM limit: it can never be admitted.
type TooLargeError struct {
	Model  string
	Tokens int64 // the request's TPM charge
	Limit  int64 // the model's TPM limit
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("request_too_large: needs %d rate-limit tokens, over the %s limit of %d TPM; it can never be sent (lower max_tokens or raise the limit)",
		e.Tokens, e.Model, e.Limit)
}

// Event is a state change worth one line of progress output.
type Event struct {
	Time    time.Time
	Model   string
	Message string // e.g. "paused 2.1s: TPM limit", "learned limits 500 RPM / 30000 TPM"
}

// Config configures a Local limiter.
type Config struct {
	// Clock tells the time and sleeps (required).
	Clock clock.Clock
	// Headroom is the fraction of each limit the buckets use, in (0, 1];
	// default 0.9.
	Headroom float64
	// MaxConcurrent is the most requests in flight at once (default 50);
	// concurrency 429s lower the cap (halved), successes raise it again by
	// 1/cap each, up to MaxConcurrent.
	MaxConcurrent int
	// Limits returns the known limits of a model (flags or a tier); zero
	// fields are learned from response headers. Nil means all unknown.
	Limits func(model string) Limits
	// Events, when set, receives state changes (pauses, learned limits,
	// cap changes). Called without locks held; must not block long.
	Events func(Event)
}

// Local is the in-process Limiter. Safe for concurrent use.
type Local struct {
	cfg    Config
	mu     sync.Mutex
	models map[string]*modelState
	gate   *gate
}

var _ Limiter = (*Local)(nil)

type modelState struct {
	req, tok bucket
	// probe: while no limit is known, one request at a time goes first;
	// the others wait for probeDone (closed when a limit is learned or the
	// probe ends).
	probing   bool
	probeDone chan struct{}
	settled   bool // limits known, or the probe showed none
}

type bucket struct {
	lim         *rate.Limiter // nil: no known limit
	limit       int64         // per minute, as given or learned
	capacity    int64         // Headroom × limit
	pausedUntil time.Time
}

// New returns a Local limiter.
func New(cfg Config) *Local {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Headroom <= 0 || cfg.Headroom > 1 {
		cfg.Headroom = 0.9
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 50
	}
	return &Local{cfg: cfg, models: map[string]*modelState{}, gate: newGate(cfg.MaxConcurrent)}
}

func (l *Local) emit(model, format string, args ...any) {
	if l.cfg.Events != nil {
		l.cfg.Events(Event{Time: l.cfg.Clock.Now(), Model: model, Message: fmt.Sprintf(format, args...)})
	}
}

// state returns the model's state; l.mu must be held.
func (l *Local) state(model string) *modelState {
	ms := l.models[model]
	if ms != nil {
		return ms
	}
	ms = &modelState{}
	var lim Limits
	if l.cfg.Limits != nil {
		lim = l.cfg.Limits(model)
	}
	if lim.RPM > 0 {
		l.setLimit(&ms.req, lim.RPM)
	}
	if lim.TPM > 0 {
		l.setLimit(&ms.tok, lim.TPM)
	}
	ms.settled = lim.RPM > 0 && lim.TPM > 0
	l.models[model] = ms
	return ms
}

// setLimit (re)sizes a bucket for a per-minute limit; a new bucket starts
// full. l.mu must be held.
func (l *Local) setLimit(b *bucket, perMinute int64) {
	b.limit = perMinute
	b.capacity = int64(math.Floor(float64(perMinute) * l.cfg.Headroom))
	if b.capacity < 1 {
		b.capacity = 1
	}
	r := rate.Limit(float64(perMinute) / 60)
	if b.lim == nil {
		b.lim = rate.NewLimiter(r, int(b.capacity))
		return
	}
	now := l.cfg.Clock.Now()
	b.lim.SetLimitAt(now, r)
	b.lim.SetBurstAt(now, int(b.capacity))
}

// Limits returns the limits in force for model (given or learned; 0 =
// unknown).
func (l *Local) Limits(model string) Limits {
	l.mu.Lock()
	defer l.mu.Unlock()
	ms := l.state(model)
	return Limits{RPM: ms.req.limit, TPM: ms.tok.limit}
}

// InFlight returns the requests holding a permit and the current cap.
func (l *Local) InFlight() (inFlight int, capacity int) { return l.gate.stats() }

// Reserve implements Limiter.
func (l *Local) Reserve(ctx context.Context, model string, tokens int64) (Permit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Refuse what can never fit before waiting for anything.
	l.mu.Lock()
	ms := l.state(model)
	if ms.tok.limit > 0 && tokens > ms.tok.limit {
		lim := ms.tok.limit
		l.mu.Unlock()
		return nil, &TooLargeError{Model: model, Tokens: tokens, Limit: lim}
	}
	l.mu.Unlock()

	epoch, err := l.gate.acquire(ctx)
	if err != nil {
		return nil, err
	}
	p := &permit{l: l, model: model, epoch: epoch}
	if err := l.waitProbe(ctx, model, p); err != nil {
		l.gate.release(epoch, NotSent)
		return nil, err
	}
	if err := l.waitBuckets(ctx, model, tokens); err != nil {
		p.Done(NotSent)
		return nil, err
	}
	return p, nil
}

// waitProbe lets one request of a model with unknown limits go first.
func (l *Local) waitProbe(ctx context.Context, model string, p *permit) error {
	for {
		l.mu.Lock()
		ms := l.state(model)
		if ms.settled {
			l.mu.Unlock()
			return nil
		}
		if !ms.probing {
			ms.probing = true
			ms.probeDone = make(chan struct{})
			p.probe = true
			l.mu.Unlock()
			return nil
		}
		ch := ms.probeDone
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// endProbe marks the model's limits as settled (learned, or the probe
// showed none). l.mu must be held.
func endProbe(ms *modelState) {
	ms.settled = true
	if ms.probing {
		ms.probing = false
		close(ms.probeDone)
	}
}

func (l *Local) waitBuckets(ctx context.Context, model string, tokens int64) error {
	clk := l.cfg.Clock
	l.mu.Lock()
	ms := l.state(model)
	now := clk.Now()
	var rs []*rate.Reservation
	var delay time.Duration
	if ms.req.lim != nil {
		r := ms.req.lim.ReserveN(now, 1)
		rs = append(rs, r)
		delay = max(delay, r.DelayFrom(now))
	}
	if ms.tok.lim != nil && tokens > 0 {
		// A charge between the bucket's capacity (Headroom × limit) and the
		// limit fits the server's bucket when it is full: take the whole
		// local bucket rather than deadlock.
		n := min(tokens, ms.tok.capacity)
		r := ms.tok.lim.ReserveN(now, int(n))
		if r.OK() {
			rs = append(rs, r)
			delay = max(delay, r.DelayFrom(now))
		}
	}
	l.mu.Unlock()

	for {
		if err := clk.Sleep(ctx, delay); err != nil {
			// Under l.mu, with the time read under it: x/time/rate moves
			// its clock back to an earlier t and would refill twice.
			l.mu.Lock()
			t := clk.Now()
			for _, r := range rs {
				r.CancelAt(t)
			}
			l.mu.Unlock()
			return err
		}
		// A pause set while we slept (another worker's 429) holds us too.
		l.mu.Lock()
		now = clk.Now()
		delay = max(ms.req.pausedUntil.Sub(now), ms.tok.pausedUntil.Sub(now))
		l.mu.Unlock()
		if delay <= 0 {
			return nil
		}
	}
}

// Observe implements Limiter.
func (l *Local) Observe(model string, obs Observation, now time.Time) {
	var events []string
	l.mu.Lock()
	// Every change to a bucket uses the time read under l.mu, never an
	// earlier one: rate.Limiter moves its clock back to an earlier time and
	// would then count the refill since twice (more tokens than the server
	// gives).
	if t := l.cfg.Clock.Now(); t.After(now) {
		now = t
	}
	ms := l.state(model)
	learned := false
	for _, d := range []struct {
		b *bucket
		w Window
		k Kind
	}{{&ms.req, obs.Requests, Requests}, {&ms.tok, obs.Tokens, Tokens}} {
		w := d.w
		// A request window whose reset is over a minute away is a daily
		// limit (the free tier reports its RPD there), not a per-minute one.
		perMinute := w.Reset < 0 || w.Reset <= time.Minute
		if d.b.limit == 0 && w.Limit > 0 && perMinute {
			l.setLimit(d.b, w.Limit)
			learned = true
			events = append(events, fmt.Sprintf("learned %s limit %d from the response headers", d.k, w.Limit))
		} else if w.Limit > 0 && w.Limit < d.b.limit && perMinute {
			// The server is the truth: a wrong --tier or --rpm/--tpm that
			// promises more than the organization has is corrected.
			events = append(events, fmt.Sprintf("the server reports %s limit %d, lower than the %d given; using %d", d.k, w.Limit, d.b.limit, w.Limit))
			l.setLimit(d.b, w.Limit)
		}
		if d.b.lim != nil && w.Remaining >= 0 && perMinute {
			// Keep the slack the headroom leaves in the server's bucket:
			// we may use remaining - (limit - capacity), never more.
			target := float64(w.Remaining) - float64(d.b.limit-d.b.capacity)
			if !obs.Sent.IsZero() && now.After(obs.Sent) {
				target += float64(d.b.lim.Limit()) * now.Sub(obs.Sent).Seconds()
			}
			cur := d.b.lim.TokensAt(now)
			// A dead band of 5% of the bucket keeps timing noise from
			// draining it; what other processes use shows up larger.
			if deadband := max(1, 0.05*float64(d.b.capacity)); cur > 0 && cur-target > deadband {
				n := int(math.Ceil(cur - max(target, 0)))
				d.b.lim.ReserveN(now, min(n, int(d.b.capacity)))
			}
		}
	}
	if learned || (ms.req.limit > 0 && ms.tok.limit > 0) || ms.probing {
		// A response without headers settles the probe as well: nothing to
		// learn, pace by the in-flight cap only.
		endProbe(ms)
	}
	l.mu.Unlock()
	for _, e := range events {
		l.emit(model, "%s", e)
	}
}

// Pause implements Limiter. The bucket is also emptied, since the server
// has just said it is.
func (l *Local) Pause(model string, kind Kind, until time.Time) {
	l.mu.Lock()
	ms := l.state(model)
	b := &ms.req
	if kind == Tokens {
		b = &ms.tok
	}
	now := l.cfg.Clock.Now()
	extended := until.After(b.pausedUntil)
	if extended {
		b.pausedUntil = until
	}
	if b.lim != nil {
		if cur := b.lim.TokensAt(now); cur >= 1 {
			b.lim.ReserveN(now, int(cur))
		}
	}
	l.mu.Unlock()
	if extended {
		l.emit(model, "paused %s: %s limit", until.Sub(now).Round(time.Millisecond), kind)
	}
}

// debts returns, per model and kind, how long (clock time) each known
// bucket needs to refill to full: 0 when full, more than capacity/rate when
// reserved beyond empty. A budget rejoining Redis seeds the shared buckets
// with it.
func (l *Local) debts() map[string]map[Kind]time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Clock.Now()
	out := map[string]map[Kind]time.Duration{}
	for model, ms := range l.models {
		for _, d := range []struct {
			b *bucket
			k Kind
		}{{&ms.req, Requests}, {&ms.tok, Tokens}} {
			if d.b.lim == nil || d.b.lim.Limit() <= 0 {
				continue
			}
			missing := float64(d.b.capacity) - d.b.lim.TokensAt(now)
			if missing <= 0 {
				continue
			}
			if out[model] == nil {
				out[model] = map[Kind]time.Duration{}
			}
			out[model][d.k] = time.Duration(missing / float64(d.b.lim.Limit()) * float64(time.Second))
		}
	}
	return out
}

// setDebt sets model's bucket of kind to need d (clock time) to refill to
// full, but never less than empty: a fallback taking over a budget that
// other clients use starts with nothing to burst, and with its share of
// what the shared bucket had reserved beyond empty.
func (l *Local) setDebt(model string, kind Kind, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ms := l.state(model)
	b := &ms.req
	if kind == Tokens {
		b = &ms.tok
	}
	if b.lim == nil || b.lim.Limit() <= 0 {
		return
	}
	now := l.cfg.Clock.Now()
	target := math.Min(0, float64(b.capacity)-d.Seconds()*float64(b.lim.Limit()))
	n := int(math.Ceil(b.lim.TokensAt(now) - target))
	for n > 0 { // ReserveN refuses more than the burst at once
		k := min(n, int(b.capacity))
		b.lim.ReserveN(now, k)
		n -= k
	}
}

type permit struct {
	l     *Local
	model string
	epoch int
	probe bool
	once  sync.Once
}

// Done implements Permit.
func (p *permit) Done(o Outcome) {
	p.once.Do(func() {
		if p.probe {
			p.l.mu.Lock()
			endProbe(p.l.state(p.model))
			p.l.mu.Unlock()
		}
		before, after := p.l.gate.release(p.epoch, o)
		if after < before {
			p.l.emit(p.model, "concurrency limit: in-flight cap lowered to %d", after)
		}
	})
}

// gate is the in-flight cap, adjusted by AIMD: halved on a concurrency 429
// (once per epoch, so one burst of 429s halves it once), raised by 1/cap
// per success.
type gate struct {
	mu       sync.Mutex
	max      int
	capacity float64
	inFlight int
	epoch    int
	waiters  []chan struct{}
}

func newGate(max int) *gate { return &gate{max: max, capacity: float64(max)} }

func (g *gate) stats() (int, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight, int(g.capacity)
}

func (g *gate) acquire(ctx context.Context) (int, error) {
	for {
		g.mu.Lock()
		if g.inFlight < int(g.capacity) {
			g.inFlight++
			e := g.epoch
			g.mu.Unlock()
			return e, nil
		}
		ch := make(chan struct{})
		g.waiters = append(g.waiters, ch)
		g.mu.Unlock()
		select {
		case <-ctx.Done():
			g.mu.Lock()
			for i, w := range g.waiters {
				if w == ch {
					g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
					break
				}
			}
			g.mu.Unlock()
			// A wake-up we consumed while leaving goes to the next waiter.
			select {
			case <-ch:
				g.wake()
			default:
			}
			return 0, ctx.Err()
		case <-ch:
		}
	}
}

// release frees a slot and adjusts the cap; it returns the cap before and
// after.
func (g *gate) release(epoch int, o Outcome) (int, int) {
	g.mu.Lock()
	before := int(g.capacity)
	g.inFlight--
	switch o {
	case ConcurrencyLimited:
		if epoch == g.epoch {
			g.capacity = max(1, math.Floor(g.capacity/2))
			g.epoch++
		}
	case Success:
		g.capacity = min(float64(g.max), g.capacity+1/g.capacity)
	}
	after := int(g.capacity)
	g.mu.Unlock()
	g.wake()
	return before, after
}

// wake signals as many waiters as there are free slots.
func (g *gate) wake() {
	g.mu.Lock()
	defer g.mu.Unlock()
	free := int(g.capacity) - g.inFlight
	for free > 0 && len(g.waiters) > 0 {
		close(g.waiters[0])
		g.waiters = g.waiters[1:]
		free--
	}
}

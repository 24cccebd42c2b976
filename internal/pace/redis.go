package pace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oairl/oairl/internal/clock"
)

// RedisConfig configures a Redis limiter: the same Config as Local (clock,
// headroom, in-flight cap, limits, events) plus the shared budget.
type RedisConfig struct {
	Config
	// Client is the connection to Redis (or Valkey); Close closes it.
	Client *redis.Client
	// URL names the server in messages, its password masked.
	URL string
	// Name is the budget's name (BudgetName); "" learns it from the first
	// response's openai-organization/openai-project headers (one request
	// goes first), else "default".
	Name string
	// Offline starts on the local fallback (Redis was unreachable at
	// start); the limiter joins the budget when Redis answers.
	Offline bool
	// LeaseTTL is how long an in-flight slot of a client that stopped
	// heartbeating stays taken (wall time; default 5 s). Heartbeat is the
	// wall-time period of the lease refresh and reconnect attempts
	// (default 1 s).
	LeaseTTL, Heartbeat time.Duration
	// ClientID names this client in the budget (default host-pid-random).
	ClientID string
}

// Redis is the shared Limiter: one organization's budget in Redis, used by
// every process and host that names it. Each decision is one atomic Lua
// script (GCRA, in the style of go-redis/redis_rate) on Redis' clock,
// charging the RPM and TPM buckets of the model together or not at all;
// the waits it returns are reserved in order of asking, so every client
// gets its turn. Capacity, refill and headroom are Local's: one process
// with a budget paces exactly as one without.
//
// Shared as well: limits learned from headers, pauses after a 429,
// remaining-corrections, and the in-flight cap (a semaphore of leases that
// the holder refreshes: a killed client's slots free within LeaseTTL).
//
// When Redis is lost, the limiter warns once (an Event of model "budget")
// and continues on a Local holding this client's share (limits ÷ the
// clients last seen alive), reconnects in the background and shares again.
// The local share starts from this client's share of what the shared
// bucket held at the loss (the debt it last saw), never full. A shared
// bucket created anew (Redis restarted without its keys) or rejoined after
// the fallback starts from this client's state: its last seen debt, or what
// its local bucket spent (the later TAT of the two); only a budget's first
// start, by clients that have sent nothing, starts full. The limits learned
// so far carry over. Nothing secret is stored in Redis.
type Redis struct {
	cfg   RedisConfig
	rdb   *redis.Client
	scale float64
	ttl   time.Duration

	mu       sync.Mutex
	name     string
	keys     budgetKeys
	booting  bool
	bootCh   chan struct{} // closed when the name is known or a bootstrap ends
	learned  map[string]map[Kind]int64
	inForce  map[string]map[Kind]int64
	leases   map[string]struct{}
	online   bool
	outage   bool // warned about an outage (once per run)
	fallback *Local
	alive    int
	freed    chan struct{} // closed when this client frees a slot
	seq      uint64
	// debts: per model and kind, how far the shared bucket was from full
	// (clock time) when this client last saw it, or what its fallback
	// spent; force: a rejoin, apply it even to an existing bucket.
	debts map[string]map[Kind]debt

	stop chan struct{}
	done chan struct{}
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a Redis limiter. Unless cfg.Offline, it first checks
// that Redis answers and returns an error naming cfg.URL if not.
func NewRedis(ctx context.Context, cfg RedisConfig) (*Redis, error) {
	if cfg.Clock == nil {
		return nil, errors.New("pace: RedisConfig.Clock is required")
	}
	if cfg.Headroom <= 0 || cfg.Headroom > 1 {
		cfg.Headroom = 0.9
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 50
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 5 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.ClientID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.ClientID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	r := &Redis{
		cfg: cfg, rdb: cfg.Client, ttl: cfg.LeaseTTL,
		scale:   ClockScale(cfg.Clock),
		bootCh:  make(chan struct{}),
		learned: map[string]map[Kind]int64{}, inForce: map[string]map[Kind]int64{},
		leases: map[string]struct{}{}, alive: 1, debts: map[string]map[Kind]debt{}, freed: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if cfg.Name != "" {
		r.setName(cfg.Name)
	}
	if cfg.Offline {
		r.fallback = r.newFallback()
	} else {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := r.rdb.Ping(pctx).Err()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("cannot reach the budget's Redis at %s: %w", cfg.URL, err)
		}
		r.online = true
		if r.name != "" {
			r.join()
		}
	}
	go r.loop()
	return r, nil
}

// ClockScale is how many times faster than the wall clock clk runs
// (--time-scale; 1 for the wall clock and fakes), rounded to 6 significant
// digits: the budget clock runs that fast, for every client alike.
func ClockScale(clk clock.Clock) float64 {
	w := clk.Wall(time.Hour)
	if w <= 0 {
		return 1
	}
	s := float64(time.Hour) / float64(w)
	p := math.Pow(10, 5-math.Floor(math.Log10(s)))
	return math.Round(s*p) / p
}

// Name returns the budget's name ("" until learned).
func (r *Redis) Name() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.name
}

// Shared reports whether the limiter is using Redis now (false on the
// local fallback).
func (r *Redis) Shared() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.online
}

// Close stops the heartbeat, gives back the slots still held and leaves
// the budget, then closes the Redis client.
func (r *Redis) Close() error {
	select {
	case <-r.stop:
		return nil
	default:
	}
	close(r.stop)
	<-r.done
	r.mu.Lock()
	online, keys, name := r.online, r.keys, r.name
	leases := make([]any, 0, len(r.leases))
	for l := range r.leases {
		leases = append(leases, l)
	}
	r.mu.Unlock()
	if online && name != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = r.rdb.ZRem(ctx, keys.k("clients"), r.cfg.ClientID).Err()
		if len(leases) > 0 {
			_ = r.rdb.ZRem(ctx, keys.k("inflight"), leases...).Err()
		}
		cancel()
	}
	return r.rdb.Close()
}

func (r *Redis) emit(model, format string, args ...any) {
	if r.cfg.Events != nil {
		r.cfg.Events(Event{Time: r.cfg.Clock.Now(), Model: model, Message: fmt.Sprintf(format, args...)})
	}
}

// setName fixes the budget's name. r.mu must be held (or r not shared yet).
func (r *Redis) setName(n string) {
	if r.name != "" {
		return
	}
	r.name, r.keys = n, keysFor(n)
	close(r.bootCh)
}

// join registers the budget's name (for status) and this client.
func (r *Redis) join() {
	ctx, cancel := r.callCtx()
	defer cancel()
	if err := r.rdb.SAdd(ctx, BudgetsKey, r.Name()).Err(); err != nil {
		r.lost(err)
		return
	}
	r.heartbeat()
}

func (r *Redis) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Second)
}

// loop refreshes the leases and the liveness of this client while Redis
// answers, and tries to reconnect while it does not.
func (r *Redis) loop() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		if r.Shared() {
			r.heartbeat()
			continue
		}
		ctx, cancel := r.callCtx()
		err := r.rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			r.mu.Lock()
			fb := r.fallback
			r.mu.Unlock()
			var spent map[string]map[Kind]time.Duration
			if fb != nil {
				spent = fb.debts() // outside r.mu: Local calls r.Limits
			}
			now := r.cfg.Clock.Now()
			r.mu.Lock()
			// What the fallback spent seeds the shared buckets (the later
			// TAT of the two): they must not start full after it.
			for model, m := range spent {
				for k, d := range m {
					r.setDebt(model, k, debt{d: d, at: now, force: true})
				}
			}
			r.online, r.fallback = true, nil
			r.mu.Unlock()
			r.emit("budget", "Redis at %s answers again; sharing the budget again", r.cfg.URL)
			if r.Name() != "" {
				r.join()
			}
		}
	}
}

func (r *Redis) heartbeat() {
	r.mu.Lock()
	if r.name == "" {
		r.mu.Unlock()
		return
	}
	k := r.keys
	args := []any{r.scale, r.cfg.ClientID, r.ttl.Milliseconds(), aliveWindow.Milliseconds()}
	for l := range r.leases {
		args = append(args, l)
	}
	r.mu.Unlock()
	ctx, cancel := r.callCtx()
	n, err := scriptHeartbeat.Run(ctx, r.rdb, []string{k.k("clients"), k.k("inflight"), k.k("meta")}, args...).Int()
	cancel()
	if err != nil {
		r.lost(err)
		return
	}
	r.mu.Lock()
	r.alive = max(n, 1)
	r.mu.Unlock()
}

// lost switches to the local fallback after a Redis error (warning once
// per run: a flapping Redis prints one warning, not one per flap).
func (r *Redis) lost(err error) {
	r.mu.Lock()
	if !r.online {
		r.mu.Unlock()
		return
	}
	r.online = false
	fb := r.newFallback()
	r.fallback = fb
	models := make([]string, 0, len(r.inForce))
	for model := range r.inForce {
		models = append(models, model)
	}
	warn := !r.outage
	r.outage = true
	n := r.alive
	now := r.cfg.Clock.Now()
	seeds := map[string]map[Kind]time.Duration{}
	for _, model := range models {
		seeds[model] = map[Kind]time.Duration{}
		for _, k := range []Kind{Requests, Tokens} {
			seeds[model][k] = r.debts[model][k].left(now)
		}
	}
	r.mu.Unlock()
	// The shared buckets were in use: the local share starts at most empty,
	// minus this client's share of what the shared bucket had reserved
	// beyond empty (its debt, in clock time, is the same for the share),
	// rather than bursting a full bucket on top of what the other clients
	// send. (Outside r.mu: Local calls r.Limits.)
	for model, m := range seeds {
		for k, d := range m {
			fb.setDebt(model, k, d)
		}
	}
	if warn {
		r.emit("budget", "lost Redis at %s (%v); continuing on a local bucket with this client's share (1/%d of the limits) and reconnecting",
			r.cfg.URL, err, n)
	}
}

// newFallback returns a Local holding this client's share of the budget:
// every limit and the in-flight cap divided by the clients last seen
// alive. r.mu must be held.
func (r *Redis) newFallback() *Local {
	n := int64(max(r.alive, 1))
	cfg := r.cfg.Config
	cfg.MaxConcurrent = max(1, cfg.MaxConcurrent/int(n))
	cfg.Limits = func(model string) Limits {
		l := r.Limits(model)
		share := func(v int64) int64 {
			if v <= 0 {
				return 0
			}
			return max(1, v/n)
		}
		return Limits{RPM: share(l.RPM), TPM: share(l.TPM)}
	}
	return New(cfg)
}

func (r *Redis) local() *Local {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.online {
		return nil
	}
	return r.fallback
}

// spec is one bucket of a decision.
type spec struct {
	kind   Kind
	limit  int64 // known to this client: given, lowered by learned; 0 unknown
	period time.Duration
	cost   int64
}

// debt is how far (clock time) a bucket was from full at a time.
type debt struct {
	d     time.Duration
	at    time.Time
	force bool
}

// left is what is left of the debt at now (0 when refilled).
func (d debt) left(now time.Time) time.Duration {
	if d.at.IsZero() {
		return 0
	}
	return max(0, d.d-now.Sub(d.at))
}

// setDebt records a bucket's debt; a forced one stays forced until a
// decision applies it. r.mu must be held.
func (r *Redis) setDebt(model string, k Kind, d debt) {
	m := r.debts[model]
	if m == nil {
		m = map[Kind]debt{}
		r.debts[model] = m
	}
	if old := m[k]; old.force && !d.force {
		return
	}
	m[k] = d
}

// specs lists the buckets a request of model charging tokens needs: the
// one place that knows which kinds exist.
func (r *Redis) specs(model string, tokens int64) []spec {
	lim := r.known(model)
	return []spec{
		{Requests, lim.RPM, time.Minute, 1},
		{Tokens, lim.TPM, time.Minute, tokens},
	}
}

// known returns the limits this client knows for model: the given ones
// (cfg.Limits), lowered by the ones it learned from headers (0 = unknown).
func (r *Redis) known(model string) Limits {
	var lim Limits
	if r.cfg.Limits != nil {
		lim = r.cfg.Limits(model)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	low := func(k Kind, given int64) int64 {
		if l := r.learned[model][k]; l > 0 && (given <= 0 || l < given) {
			return l
		}
		return given
	}
	return Limits{RPM: low(Requests, lim.RPM), TPM: low(Tokens, lim.TPM)}
}

// Limits returns the limits in force for model: as the last decision saw
// them in the budget, else given and learned by this client (0 = unknown).
func (r *Redis) Limits(model string) Limits {
	lim := r.known(model)
	r.mu.Lock()
	defer r.mu.Unlock()
	if v := r.inForce[model][Requests]; v > 0 {
		lim.RPM = v
	}
	if v := r.inForce[model][Tokens]; v > 0 {
		lim.TPM = v
	}
	return lim
}

// setInForce records the limits a script reported and says what changed.
func (r *Redis) setInForce(model string, sp []spec, limits []int64) {
	var events []string
	r.mu.Lock()
	m := r.inForce[model]
	if m == nil {
		m = map[Kind]int64{}
		r.inForce[model] = m
	}
	for i, s := range sp {
		if i >= len(limits) {
			break
		}
		v, old := limits[i], m[s.kind]
		if v <= 0 || v == old {
			continue
		}
		m[s.kind] = v
		switch {
		case old == 0 && s.limit == 0:
			events = append(events, fmt.Sprintf("learned %s limit %d (shared budget %s)", s.kind, v, r.name))
		case old > 0 && v < old:
			events = append(events, fmt.Sprintf("the server reports %s limit %d, lower than the %d in force; using %d", s.kind, v, old, v))
		}
	}
	r.mu.Unlock()
	for _, e := range events {
		r.emit(model, "%s", e)
	}
}

// Reserve implements Limiter.
func (r *Redis) Reserve(ctx context.Context, model string, tokens int64) (Permit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if tpm := r.Limits(model).TPM; tpm > 0 && tokens > tpm {
		return nil, &TooLargeError{Model: model, Tokens: tokens, Limit: tpm}
	}
	if l := r.local(); l != nil {
		return l.Reserve(ctx, model, tokens)
	}
	keys, boot, err := r.budget(ctx)
	if err != nil || boot != nil {
		return boot, err
	}
	r.mu.Lock()
	r.seq++
	lease := fmt.Sprintf("%s:%d", r.cfg.ClientID, r.seq)
	r.mu.Unlock()
	poll := 2 * time.Millisecond
	for {
		d, err := r.decide(keys, model, tokens, lease)
		if err != nil {
			r.lost(err)
			if l := r.local(); l != nil {
				return l.Reserve(ctx, model, tokens)
			}
			return nil, err
		}
		switch d.status {
		case decTooLarge:
			return nil, &TooLargeError{Model: model, Tokens: tokens, Limit: d.limit}
		case decSlotFull, decProbing:
			// Every slot taken, or another request probes unknown
			// limits: ask again soon (sooner when this client frees a
			// slot), keeping the place in the slot queue.
			r.mu.Lock()
			freed := r.freed
			r.mu.Unlock()
			t := time.NewTimer(poll)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-freed:
			case <-t.C:
			}
			t.Stop()
			poll = min(2*poll, 50*time.Millisecond)
			continue
		}
		if err := r.sleep(ctx, keys, model, d.permit.specs, d.wait); err != nil {
			d.permit.end(NotSent, true)
			return nil, err
		}
		return d.permit, nil
	}
}

const (
	decGo = iota
	decSlotFull
	decProbing
	decTooLarge
)

// decision is what the reserve script answered.
type decision struct {
	status int
	wait   time.Duration // before sending (decGo)
	limit  int64         // decTooLarge: the TPM limit
	permit *redisPermit  // decGo: the lease taken
}

// decide runs the reserve script once.
func (r *Redis) decide(keys budgetKeys, model string, tokens int64, lease string) (decision, error) {
	sp := r.specs(model, tokens)
	kk := []string{keys.k("gate"), keys.k("inflight"), keys.k("slotq"), keys.k("slotseen"), keys.k("models"),
		keys.m(model, "limits"), keys.m(model, "pause"), keys.m(model, "probe"), keys.k("clients")}
	args := []any{r.scale, lease, r.ttl.Milliseconds(), r.cfg.MaxConcurrent, r.cfg.Headroom, model, len(sp)}
	now := r.cfg.Clock.Now()
	r.mu.Lock()
	for _, s := range sp {
		d := r.debts[model][s.kind]
		force := 0
		if d.force {
			force = 1
		}
		kk = append(kk, keys.tat(model, s.kind))
		args = append(args, s.kind.String(), s.limit, s.period.Milliseconds(), s.cost,
			strconv.FormatFloat(float64(d.left(now))/float64(time.Millisecond), 'f', 3, 64), force)
	}
	r.mu.Unlock()
	cctx, cancel := r.callCtx()
	res, err := scriptReserve.Run(cctx, r.rdb, kk, args...).Slice()
	cancel()
	if err != nil {
		return decision{}, err
	}
	if len(res) < 4 {
		return decision{}, fmt.Errorf("reserve script: unexpected answer %v", res)
	}
	status, _ := res[0].(int64)
	d := decision{status: int(status)}
	switch d.status {
	case decTooLarge:
		d.limit, _ = strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
		return d, nil
	case decSlotFull, decProbing:
		return d, nil
	}
	n := len(sp)
	if len(res) < 5+3*n {
		return decision{}, fmt.Errorf("reserve script: unexpected answer %v", res)
	}
	limits := make([]int64, n)
	incs := make([]string, n)
	for i := range n {
		limits[i], _ = res[5+i].(int64)
		incs[i], _ = res[5+n+i].(string)
	}
	if alive, _ := res[4].(int64); alive > 0 {
		r.mu.Lock()
		r.alive = int(alive)
		r.mu.Unlock()
	}
	r.setInForce(model, sp, limits)
	at := r.cfg.Clock.Now()
	r.mu.Lock()
	for i, s := range sp {
		if v, ok := res[5+2*n+i].(string); ok {
			if r.debts[model] == nil {
				r.debts[model] = map[Kind]debt{}
			}
			r.debts[model][s.kind] = debt{d: parseMS(v), at: at} // any forced seed applied
		}
	}
	r.mu.Unlock()
	epoch, _ := res[2].(int64)
	probe, _ := res[3].(int64)
	d.permit = &redisPermit{r: r, keys: keys, model: model, lease: lease, epoch: epoch, probe: probe == 1, specs: sp, incs: incs}
	d.wait = parseMS(res[1])
	r.mu.Lock()
	r.leases[lease] = struct{}{}
	r.mu.Unlock()
	return d, nil
}

// sleep waits out the reservation, then any pause set meanwhile by another
// client's 429.
func (r *Redis) sleep(ctx context.Context, keys budgetKeys, model string, sp []spec, wait time.Duration) error {
	for wait > 0 {
		if err := r.cfg.Clock.Sleep(ctx, wait); err != nil {
			return err
		}
		if !r.Shared() {
			return nil
		}
		args := []any{r.scale}
		for _, s := range sp {
			args = append(args, s.kind.String())
		}
		cctx, cancel := r.callCtx()
		res, err := scriptPaused.Run(cctx, r.rdb, []string{keys.m(model, "pause")}, args...).Result()
		cancel()
		if err != nil {
			r.lost(err)
			return nil // reserved already; go
		}
		wait = parseMS(res)
	}
	return nil
}

func parseMS(v any) time.Duration {
	s, _ := v.(string)
	ms, _ := strconv.ParseFloat(s, 64)
	if ms <= 0 || math.IsNaN(ms) {
		return 0
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// budget returns the budget's keys, or, while its name is unknown, a
// permit for the one request that goes first to learn it.
func (r *Redis) budget(ctx context.Context) (budgetKeys, Permit, error) {
	for {
		r.mu.Lock()
		if r.name != "" {
			k := r.keys
			r.mu.Unlock()
			return k, nil, nil
		}
		if !r.booting {
			r.booting = true
			r.mu.Unlock()
			return budgetKeys{}, &bootPermit{r: r}, nil
		}
		ch := r.bootCh
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return budgetKeys{}, nil, ctx.Err()
		case <-ch:
		}
	}
}

// bootPermit is the request that goes first while the budget's name is
// unknown; when it ends without an answer, the next request tries.
type bootPermit struct {
	r    *Redis
	once sync.Once
}

func (p *bootPermit) Done(Outcome) {
	p.once.Do(func() {
		r := p.r
		r.mu.Lock()
		r.booting = false
		if r.name == "" {
			close(r.bootCh)
			r.bootCh = make(chan struct{})
		}
		r.mu.Unlock()
	})
}

// Observe implements Limiter.
func (r *Redis) Observe(model string, obs Observation, now time.Time) {
	if r.Name() == "" {
		n := BudgetName(obs.Organization, obs.Project, "default", r.scale)
		r.mu.Lock()
		r.setName(n)
		r.mu.Unlock()
		r.emit("budget", "sharing budget %s", n)
		if r.Shared() {
			r.join()
		}
	}
	if t := r.cfg.Clock.Now(); t.After(now) {
		now = t
	}
	// Limits learned here survive a Redis restart or outage.
	r.mu.Lock()
	if r.learned[model] == nil {
		r.learned[model] = map[Kind]int64{}
	}
	for _, d := range []struct {
		k Kind
		w Window
	}{{Requests, obs.Requests}, {Tokens, obs.Tokens}} {
		if d.w.Limit > 0 && (d.w.Reset < 0 || d.w.Reset <= time.Minute) {
			r.learned[model][d.k] = d.w.Limit
		}
	}
	r.mu.Unlock()
	if l := r.local(); l != nil {
		l.Observe(model, obs, now)
		return
	}
	keys := r.keys
	sp := r.specs(model, 0)
	elapsed := int64(-1)
	if !obs.Sent.IsZero() && now.After(obs.Sent) {
		elapsed = now.Sub(obs.Sent).Milliseconds()
	}
	kk := []string{keys.m(model, "limits")}
	args := []any{r.scale, r.cfg.Headroom, elapsed, len(sp)}
	for _, s := range sp {
		w := obs.Requests
		if s.kind == Tokens {
			w = obs.Tokens
		}
		per := 0
		if w.Reset < 0 || w.Reset <= time.Minute {
			per = 1
		}
		kk = append(kk, keys.tat(model, s.kind))
		args = append(args, s.kind.String(), s.limit, s.period.Milliseconds(), w.Limit, w.Remaining, per)
	}
	ctx, cancel := r.callCtx()
	limits, err := scriptObserve.Run(ctx, r.rdb, kk, args...).Int64Slice()
	cancel()
	if err != nil {
		r.lost(err)
		if l := r.local(); l != nil {
			l.Observe(model, obs, now)
		}
		return
	}
	r.setInForce(model, sp, limits)
}

// Pause implements Limiter: every client of the budget waits.
func (r *Redis) Pause(model string, kind Kind, until time.Time) {
	if l := r.local(); l != nil {
		l.Pause(model, kind, until)
		return
	}
	if r.Name() == "" {
		return // the bootstrap request: nobody else is sending yet
	}
	keys := r.keys
	d := until.Sub(r.cfg.Clock.Now())
	if d <= 0 {
		return
	}
	var s spec
	for _, x := range r.specs(model, 0) {
		if x.kind == kind {
			s = x
		}
	}
	if s.period == 0 {
		s = spec{kind: kind, period: time.Minute}
	}
	ctx, cancel := r.callCtx()
	ext, err := scriptPause.Run(ctx, r.rdb,
		[]string{keys.m(model, "limits"), keys.m(model, "pause"), keys.tat(model, kind), keys.m(model, "stats")},
		r.scale, r.cfg.Headroom, kind.String(), s.limit, s.period.Milliseconds(), d.Milliseconds()).Int()
	cancel()
	if err != nil {
		r.lost(err)
		if l := r.local(); l != nil {
			l.Pause(model, kind, until)
		}
		return
	}
	if ext == 1 {
		r.emit(model, "paused %s: %s limit (every client of budget %s)", d.Round(time.Millisecond), kind, r.Name())
	}
}

type redisPermit struct {
	r     *Redis
	keys  budgetKeys
	model string
	lease string
	epoch int64
	probe bool
	specs []spec
	incs  []string
	once  sync.Once
}

// Done implements Permit.
func (p *redisPermit) Done(o Outcome) { p.end(o, false) }

func outcomeCode(o Outcome) int {
	switch o {
	case Success:
		return 0
	case RateLimited:
		return 2
	case ConcurrencyLimited:
		return 3
	case NotSent:
		return 4
	}
	return 1
}

func (p *redisPermit) end(o Outcome, giveBack bool) {
	p.once.Do(func() {
		r := p.r
		r.mu.Lock()
		delete(r.leases, p.lease)
		close(r.freed)
		r.freed = make(chan struct{})
		online := r.online
		r.mu.Unlock()
		if !online {
			return // the lease expires by itself
		}
		k := p.keys
		kk := []string{k.k("gate"), k.k("inflight"), k.m(p.model, "stats"), k.m(p.model, "probe"), k.m(p.model, "limits")}
		gb := 0
		if giveBack {
			gb = 1
		}
		args := []any{r.scale, p.lease, outcomeCode(o), p.epoch, r.cfg.MaxConcurrent, gb, len(p.specs)}
		for i, s := range p.specs {
			kk = append(kk, k.tat(p.model, s.kind))
			args = append(args, p.incs[i])
		}
		ctx, cancel := r.callCtx()
		caps, err := scriptRelease.Run(ctx, r.rdb, kk, args...).Int64Slice()
		cancel()
		if err != nil {
			r.lost(err)
			return
		}
		if len(caps) == 2 && caps[1] < caps[0] {
			r.emit(p.model, "concurrency limit: in-flight cap of budget %s lowered to %d", r.Name(), caps[1])
		}
	})
}

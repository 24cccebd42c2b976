package pace

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/redistest"
)

type eventLog struct {
	mu sync.Mutex
	ev []string
}

func (e *eventLog) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ev = append(e.ev, ev.Model+": "+ev.Message)
}

func (e *eventLog) count(sub string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.ev {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func newClient(url string) *redis.Client {
	redis.SetLogger(quietLogger{}) // its reconnect noise is expected here
	opt, err := redis.ParseURL(url)
	if err != nil {
		panic(err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 300*time.Millisecond, time.Second, time.Second
	opt.MaxRetries = -1
	return redis.NewClient(opt)
}

// newShared returns a Redis limiter on srv for budget "org-test", with
// cfg's fields defaulted.
func newShared(t *testing.T, srv *redistest.Server, cfg RedisConfig) (*Redis, *eventLog) {
	t.Helper()
	ev := &eventLog{}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Client == nil {
		cfg.Client = newClient(srv.URL())
	}
	if cfg.URL == "" {
		cfg.URL = srv.URL()
	}
	if cfg.Name == "" {
		cfg.Name = "org-test"
	}
	cfg.Events = ev.add
	r, err := NewRedis(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, ev
}

func fixed(rpm, tpm int64) func(string) Limits {
	return func(string) Limits { return Limits{RPM: rpm, TPM: tpm} }
}

var leaseSeq atomic.Int64

func mustDecide(t *testing.T, r *Redis, model string, tokens int64) decision {
	t.Helper()
	d, err := r.decide(r.keys, model, tokens, fmt.Sprintf("t-%d", leaseSeq.Add(1)))
	if err != nil {
		t.Fatalf("decide: %v", err)
	}
	return d
}

// One client with a budget paces as pace.Local: the same capacity
// (headroom × limit) and refill, so the same waits for the same charges.
func TestRedisMatchesLocal(t *testing.T) {
	srv := redistest.Start(t)
	lim := fixed(60, 6000) // 1 request/s, 100 tokens/s
	r, _ := newShared(t, srv, RedisConfig{Config: Config{Limits: lim, Headroom: 0.9, MaxConcurrent: 1000}})
	fc := clock.NewFake(time.Unix(1_700_000_000, 0))
	l := New(Config{Clock: fc, Limits: lim, Headroom: 0.9, MaxConcurrent: 1000})
	l.mu.Lock()
	ms := l.state("gpt-4o")
	l.mu.Unlock()
	now := fc.Now()
	for i, cost := range []int64{2000, 2000, 1000, 400, 1000, 3000, 5800} {
		d := mustDecide(t, r, "gpt-4o", cost)
		if d.status != decGo {
			t.Fatalf("request %d: status %d", i, d.status)
		}
		rq := ms.req.lim.ReserveN(now, 1).DelayFrom(now)
		tk := ms.tok.lim.ReserveN(now, int(min(cost, ms.tok.capacity))).DelayFrom(now)
		want := max(rq, tk)
		// Real time passes between the Redis calls (refilling 100
		// tokens/s): allow 300 ms of it.
		if diff := d.wait - want; diff > 50*time.Millisecond || diff < -300*time.Millisecond {
			t.Errorf("request %d (%d tokens): Redis waits %v, Local %v", i, cost, d.wait, want)
		}
		d.permit.Done(Success)
	}
	if got := r.Limits("gpt-4o"); got != (Limits{RPM: 60, TPM: 6000}) {
		t.Errorf("Limits = %+v", got)
	}
}

// Two processes share one bucket: what one takes, the other waits for;
// the RPM and TPM buckets are charged together or not at all.
func TestRedisShared(t *testing.T) {
	srv := redistest.Start(t)
	cfg := RedisConfig{Config: Config{Limits: fixed(100, 10000), MaxConcurrent: 1000}}
	a, _ := newShared(t, srv, cfg)
	cfg.ClientID = "b"
	b, _ := newShared(t, srv, cfg)
	// A takes the whole TPM capacity (9000).
	if d := mustDecide(t, a, "gpt-4o", 9000); d.status != decGo || d.wait != 0 {
		t.Fatalf("a: %+v", d)
	}
	d := mustDecide(t, b, "gpt-4o", 1000)
	// 1000 tokens at 10000/min = 6 s.
	if d.status != decGo || d.wait < 5*time.Second || d.wait > 6100*time.Millisecond {
		t.Fatalf("b waits %v, want about 6s", d.wait)
	}
	// Another model has its own buckets.
	if d := mustDecide(t, b, "gpt-4o-mini", 1000); d.wait != 0 {
		t.Errorf("other model waits %v", d.wait)
	}
	// A charge over the TPM limit is refused and charges nothing.
	rdb := newClient(srv.URL())
	defer rdb.Close()
	before, _ := rdb.Get(context.Background(), a.keys.tat("gpt-4o", Requests)).Result()
	if _, err := b.Reserve(context.Background(), "gpt-4o", 10001); !isTooLarge(err) {
		t.Fatalf("too large: err = %v", err)
	}
	b.mu.Lock()
	delete(b.inForce, "gpt-4o") // the script, not the cache, must refuse
	b.mu.Unlock()
	if d := mustDecide(t, b, "gpt-4o", 10001); d.status != decTooLarge || d.limit != 10000 {
		t.Fatalf("script too large: %+v", d)
	}
	after, _ := rdb.Get(context.Background(), a.keys.tat("gpt-4o", Requests)).Result()
	if before != after {
		t.Errorf("a refused request charged the RPM bucket: %s -> %s", before, after)
	}
}

func isTooLarge(err error) bool {
	var tl *TooLargeError
	return errors.As(err, &tl)
}

// Limits learned by one client, its pauses and its remaining-corrections
// hold for every client.
func TestRedisSharedKnowledge(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newShared(t, srv, RedisConfig{Config: Config{MaxConcurrent: 1000}})
	b, evB := newShared(t, srv, RedisConfig{Config: Config{MaxConcurrent: 1000}, ClientID: "b"})

	// Unknown limits: one request probes, the others wait for it.
	d := mustDecide(t, a, "gpt-4o", 500)
	if d.status != decGo || !d.permit.probe {
		t.Fatalf("first request: %+v", d)
	}
	if d2 := mustDecide(t, b, "gpt-4o", 500); d2.status != decProbing {
		t.Fatalf("second request while probing: status %d", d2.status)
	}
	a.Observe("gpt-4o", Observation{
		Requests: Window{Limit: 500, Remaining: 499, Reset: 120 * time.Millisecond},
		Tokens:   Window{Limit: 30000, Remaining: 29500, Reset: time.Second},
	}, time.Now())
	d.permit.Done(Success)
	if got := a.Limits("gpt-4o"); got != (Limits{RPM: 500, TPM: 30000}) {
		t.Fatalf("a learned %+v", got)
	}
	// B never saw a header, yet it paces by the learned limits.
	if d := mustDecide(t, b, "gpt-4o", 500); d.status != decGo || d.wait != 0 {
		t.Fatalf("b after learning: %+v", d)
	} else {
		d.permit.Done(Success)
	}
	if got := b.Limits("gpt-4o"); got != (Limits{RPM: 500, TPM: 30000}) {
		t.Errorf("b limits %+v", got)
	}
	if evB.count("learned TPM limit 30000") != 1 {
		t.Errorf("b events: %v", evB.ev)
	}
	// A's 429 pauses B.
	a.Pause("gpt-4o", Tokens, a.cfg.Clock.Now().Add(20*time.Second))
	if d := mustDecide(t, b, "gpt-4o", 10); d.wait < 19*time.Second {
		t.Errorf("b during a's pause waits %v", d.wait)
	} else {
		d.permit.end(NotSent, true)
	}
	// A remaining-correction seen by A drains the bucket B uses.
	c, _ := newShared(t, srv, RedisConfig{Config: Config{MaxConcurrent: 1000}, Name: "org-other", ClientID: "c"})
	c.Observe("gpt-4o", Observation{
		Requests: Window{Limit: 500, Remaining: 400, Reset: time.Second},
		Tokens:   Window{Limit: 30000, Remaining: 3000, Reset: time.Minute},
	}, time.Now())
	cb, _ := newShared(t, srv, RedisConfig{Config: Config{MaxConcurrent: 1000}, Name: "org-other", ClientID: "cb"})
	// 3000 left - 3000 slack = 0 usable: 1000 tokens wait about 2 s.
	if d := mustDecide(t, cb, "gpt-4o", 1000); d.wait < 1500*time.Millisecond || d.wait > 2500*time.Millisecond {
		t.Errorf("after a correction to 3000 remaining, 1000 tokens wait %v, want about 2s", d.wait)
	}
	// Two organizations sharing one Redis never mix: org-test's bucket is untouched.
	if d := mustDecide(t, a, "gpt-4o", 20000); d.wait > 0 && d.wait < 19*time.Second {
		t.Errorf("org-test affected by org-other: wait %v", d.wait)
	}
}

// The in-flight cap is a semaphore of leases: a killed client's slots free
// within the lease TTL, and waiters take free slots in FIFO order.
func TestRedisLeasesAndFIFO(t *testing.T) {
	srv := redistest.Start(t)
	cfg := RedisConfig{Config: Config{Limits: fixed(100000, 10000000), MaxConcurrent: 2}, LeaseTTL: 400 * time.Millisecond, Heartbeat: 100 * time.Millisecond}
	cfg.ClientID = "dead"
	dead, _ := newShared(t, srv, cfg)
	cfg.ClientID = "a"
	a, _ := newShared(t, srv, cfg)
	cfg.ClientID = "b"
	b, _ := newShared(t, srv, cfg)
	for range 2 {
		if d := mustDecide(t, dead, "m", 1); d.status != decGo {
			t.Fatalf("dead: %+v", d)
		}
	}
	// "Kill" the holder: its heartbeat stops, its slots are never released.
	close(dead.stop)
	<-dead.done
	if d := mustDecide(t, a, "m", 1); d.status != decSlotFull {
		t.Fatalf("a while both slots are held: %+v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	p, err := a.Reserve(ctx, "m", 1)
	if err != nil {
		t.Fatalf("a after the dead client's leases expired: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("slots of a dead client freed after %v", time.Since(start))
	}
	// A live holder keeps its slot past the TTL (heartbeat refresh).
	time.Sleep(time.Second)
	p2, err := b.Reserve(ctx, "m", 1) // the second slot
	if err != nil {
		t.Fatal(err)
	}
	// Both slots held by live clients: b asks first, then a; when a slot
	// frees, b (first in line) gets it, not a.
	lb, la := "b-wait", "a-wait"
	if d, _ := b.decide(b.keys, "m", 1, lb); d.status != decSlotFull {
		t.Fatalf("b: %+v", d)
	}
	if d, _ := a.decide(a.keys, "m", 1, la); d.status != decSlotFull {
		t.Fatalf("a: %+v", d)
	}
	p.Done(Success)
	if d, _ := a.decide(a.keys, "m", 1, la); d.status != decSlotFull {
		t.Errorf("a overtook b, who asked first: %+v", d)
	}
	if d, _ := b.decide(b.keys, "m", 1, lb); d.status != decGo {
		t.Errorf("b, first in line, did not get the free slot: %+v", d)
	} else {
		d.permit.Done(Success)
	}
	p2.Done(Success)
}

// A late client is not starved: with one client keeping many requests
// waiting, a client that starts later is served in its turn.
func TestRedisLateClientServed(t *testing.T) {
	srv := redistest.Start(t)
	// 600 RPM at scale 60: 600 requests per wall second.
	cfg := RedisConfig{Config: Config{Clock: clock.Scaled(60), Limits: fixed(600, 1_000_000), MaxConcurrent: 1000, Headroom: 0.05}}
	busy, _ := newShared(t, srv, cfg)
	cfg.ClientID = "late"
	late, _ := newShared(t, srv, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if p, err := busy.Reserve(ctx, "m", 1); err == nil {
					p.Done(Success)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	got := 0
	deadline := time.Now().Add(3 * time.Second)
	for got < 5 && time.Now().Before(deadline) {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		p, err := late.Reserve(rctx, "m", 1)
		rcancel()
		if err != nil {
			t.Fatalf("late client starved: %v after %d requests", err, got)
		}
		p.Done(Success)
		got++
	}
	cancel()
	wg.Wait()
	if got < 5 {
		t.Fatalf("late client got %d requests in 3 s", got)
	}
}

// Redis unreachable at start: an error naming the URL; Offline starts on
// the local fallback and joins the budget when Redis comes up.
func TestRedisUnreachableAtStart(t *testing.T) {
	port := redistest.FreePort(t)
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	_, err := NewRedis(context.Background(), RedisConfig{Config: Config{Clock: clock.Real()}, Client: newClient(url), URL: url, Name: "x"})
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("err = %v, want one naming %s", err, url)
	}
	ev := &eventLog{}
	r, err := NewRedis(context.Background(), RedisConfig{Config: Config{Clock: clock.Real(), Limits: fixed(60, 6000), Events: ev.add},
		Client: newClient(url), URL: url, Name: "x", Offline: true, Heartbeat: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := r.Reserve(context.Background(), "m", 10)
	if err != nil {
		t.Fatal(err)
	}
	p.Done(Success)
	if r.Shared() {
		t.Fatal("shared without Redis")
	}
}

// Redis lost mid-run: one warning, a local bucket with this client's
// share, then sharing again after reconnecting; a restart that lost the
// keys starts from the limits learned so far.
func TestRedisLostMidRun(t *testing.T) {
	srv := redistest.Start(t)
	cfg := RedisConfig{Config: Config{MaxConcurrent: 8}, Heartbeat: 50 * time.Millisecond}
	a, ev := newShared(t, srv, cfg)
	cfg.ClientID = "b"
	b, _ := newShared(t, srv, cfg)
	a.Observe("gpt-4o", Observation{
		Requests: Window{Limit: 600, Remaining: -1, Reset: -1},
		Tokens:   Window{Limit: 60000, Remaining: -1, Reset: -1},
	}, time.Now())
	p, err := b.Reserve(context.Background(), "gpt-4o", 100)
	if err != nil {
		t.Fatal(err)
	}
	p.Done(Success)
	time.Sleep(200 * time.Millisecond) // heartbeats: two clients alive
	srv.Kill()
	// Every Reserve still succeeds, on a local bucket with half the limits.
	for i := range 5 {
		p, err := a.Reserve(context.Background(), "gpt-4o", 100)
		if err != nil {
			t.Fatalf("reserve %d with Redis down: %v", i, err)
		}
		p.Done(Success)
	}
	if a.Shared() {
		t.Fatal("still shared with Redis down")
	}
	if n := ev.count("lost Redis"); n != 1 {
		t.Errorf("%d warnings, want 1: %v", n, ev.ev)
	}
	if ev.count("1/2 of the limits") != 1 {
		t.Errorf("share not 1/2: %v", ev.ev)
	}
	if got := a.local().Limits("gpt-4o"); got != (Limits{RPM: 300, TPM: 30000}) {
		t.Errorf("fallback limits %+v, want half of 600/60000", got)
	}
	// Redis comes back empty (no persistence): sharing resumes with the
	// limits learned so far (and a's spent state: TestRedisLossCarriesDebt).
	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for !a.Shared() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !a.Shared() {
		t.Fatal("did not reconnect")
	}
	d := mustDecide(t, a, "gpt-4o", 100)
	if d.status != decGo {
		t.Fatalf("after restart: %+v", d)
	}
	d.permit.Done(Success)
	rdb := newClient(srv.URL())
	defer rdb.Close()
	if lim, _ := rdb.HGet(context.Background(), a.keys.m("gpt-4o", "limits"), "lim:TPM").Int64(); lim != 60000 {
		t.Errorf("after the restart the TPM bucket uses limit %d, want the learned 60000", lim)
	}
	if ev.count("answers again") != 1 {
		t.Errorf("events: %v", ev.ev)
	}
}

// Concurrent requests while Redis dies and comes back: every Reserve
// returns a permit or the caller's own cancellation, never a Redis error.
func TestRedisKillUnderLoad(t *testing.T) {
	srv := redistest.Start(t)
	cfg := RedisConfig{Config: Config{Clock: clock.Scaled(100), Limits: fixed(6000, 6_000_000), MaxConcurrent: 16}, Heartbeat: 50 * time.Millisecond}
	a, _ := newShared(t, srv, cfg)
	var ok, failed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				p, err := a.Reserve(ctx, "m", 100)
				if err != nil {
					failed.Add(1)
					continue
				}
				time.Sleep(time.Millisecond)
				p.Done(Success)
				ok.Add(1)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	srv.Kill()
	time.Sleep(100 * time.Millisecond)
	srv.Restart()
	wg.Wait()
	if failed.Load() != 0 || ok.Load() != 480 {
		t.Fatalf("%d permits, %d errors; want 480 and 0", ok.Load(), failed.Load())
	}
}

// Status reads what the clients share; reset clears one budget only.
func TestBudgetStatusReset(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := newShared(t, srv, RedisConfig{Config: Config{Limits: fixed(500, 30000), MaxConcurrent: 10}})
	o, _ := newShared(t, srv, RedisConfig{Config: Config{Limits: fixed(500, 30000), MaxConcurrent: 10}, Name: "org-other", ClientID: "o"})
	// The buckets refill while the test runs (a loaded machine can take
	// seconds): the expected values allow for the time that passed.
	start := time.Now()
	for _, r := range []*Redis{a, o} {
		p, err := r.Reserve(context.Background(), "gpt-4o", 3000)
		if err != nil {
			t.Fatal(err)
		}
		p.Done(RateLimited)
	}
	paused := time.Now()
	a.Pause("gpt-4o", Requests, paused.Add(30*time.Second))
	rdb := newClient(srv.URL())
	defer rdb.Close()
	st, err := ReadBudgets(context.Background(), rdb, "")
	if err != nil {
		t.Fatal(err)
	}
	sinceStart, sincePause := time.Since(start).Seconds(), time.Since(paused).Seconds()
	if len(st) != 2 || st[0].Name != "org-other" || st[1].Name != "org-test" {
		t.Fatalf("budgets %+v", st)
	}
	s := st[1]
	if s.ClientsAlive != 1 || len(s.Models) != 1 {
		t.Fatalf("status %+v", s)
	}
	m := s.Models[0]
	if m.Limits["TPM"] != 30000 || m.Limits["RPM"] != 500 || m.RateLimited != 1 {
		t.Errorf("model status %+v", m)
	}
	// 27000 capacity - 3000 charged, plus the refill since (500 TPM/s).
	if av := m.Available["TPM"]; av < 24000 || av > 24000+500*sinceStart+1 {
		t.Errorf("available TPM %v, want 24000 + at most %.0f of refill", av, 500*sinceStart)
	}
	// Emptied by the pause, plus the refill since (500/60 RPM/s).
	if av := m.Available["RPM"]; av > sincePause*500/60+0.15 {
		t.Errorf("available RPM %v %.2fs after a pause emptied it", av, sincePause)
	}
	if p := m.Paused["RPM"]; p < 30-sincePause-0.01 || p > 30 {
		t.Errorf("paused %v, %.2fs into a 30s pause", m.Paused, sincePause)
	}
	n, err := ResetBudget(context.Background(), rdb, "org-test")
	if err != nil || n == 0 {
		t.Fatalf("reset: %d, %v", n, err)
	}
	st, _ = ReadBudgets(context.Background(), rdb, "")
	if len(st) != 1 || st[0].Name != "org-other" || len(st[0].Models) != 1 {
		t.Errorf("after reset %+v", st)
	}
	if math.IsNaN(st[0].InFlightCap) {
		t.Error("NaN cap")
	}
}

func TestBudgetName(t *testing.T) {
	for _, c := range []struct {
		org, proj, fb string
		scale         float64
		want          string
	}{
		{"org-1", "proj_2", "k", 1, "org-1/proj_2"},
		{"org-1", "", "k", 1, "org-1"},
		{"", "proj_2", "k", 1, "project:proj_2"},
		{"", "", "team a{b}", 1, "team_a_b_"},
		{"org-1", "", "", 10, "org-1@x10"},
	} {
		if got := BudgetName(c.org, c.proj, c.fb, c.scale); got != c.want {
			t.Errorf("BudgetName(%q,%q,%q,%v) = %q, want %q", c.org, c.proj, c.fb, c.scale, got, c.want)
		}
	}
}

func TestBatchQueue(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newClient(srv.URL())
	defer rdb.Close()
	a := NewBatchQueue(rdb, "org-q", 0)
	b := NewBatchQueue(rdb, "org-q", 50*time.Millisecond)
	other := NewBatchQueue(rdb, "org-other", 0)
	other.Publish("job_c", "gpt-4o", 2900) // another organization: never counted
	if _, ok := a.Admit("job_a", "gpt-4o", 2200, 3000); !ok {
		t.Fatal("a refused in an empty queue")
	}
	if others, ok := b.Admit("job_b", "gpt-4o", 2200, 3000); ok || others != 2200 {
		t.Fatalf("b admitted beside a's 2,200 of 3,000 (others %d)", others)
	}
	if _, ok := b.Admit("job_b", "gpt-4o", 800, 3000); !ok {
		t.Fatal("b refused 800 beside 2,200 of 3,000")
	}
	if others, ok := a.Admit("job_a", "gpt-4o", 2300, 3000); ok || others != 800 {
		t.Fatalf("a grew past the limit beside b (others %d)", others)
	}
	if _, ok := a.Admit("job_a", "gpt-4o-mini", 2900, 3000); !ok {
		t.Fatal("another model's queue is separate")
	}
	time.Sleep(100 * time.Millisecond) // b's entry expires: its process stopped refreshing it
	if _, ok := a.Admit("job_a", "gpt-4o", 2300, 3000); !ok {
		t.Fatal("b's expired entry still counted")
	}
	a.Publish("job_a", "gpt-4o", 0)
	if _, ok := b.Admit("job_b", "gpt-4o", 3000, 3000); !ok {
		t.Fatal("a's removed entry still counted")
	}
}

// decideAs runs one decision with a lease of r's client (CLIENT:SEQ), so
// that the budget counts r's client alive, not one client per lease.
func decideAs(t *testing.T, r *Redis, model string, tokens int64) decision {
	t.Helper()
	d, err := r.decide(r.keys, model, tokens, fmt.Sprintf("%s:%d", r.cfg.ClientID, leaseSeq.Add(1)))
	if err != nil {
		t.Fatalf("decide: %v", err)
	}
	return d
}

// tokensNow is what the fallback's TPM bucket of model holds now.
func tokensNow(t *testing.T, r *Redis, model string) float64 {
	t.Helper()
	l := r.local()
	if l == nil {
		t.Fatal("not on the local fallback")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state(model).tok.lim.TokensAt(l.cfg.Clock.Now())
}

func waitShared(t *testing.T, r *Redis) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !r.Shared() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !r.Shared() {
		t.Fatal("did not reconnect")
	}
}

// Redis lost while the shared bucket is drained (reserved beyond empty):
// the local fallback starts from this client's share of that debt, not
// full and not merely empty; when Redis comes back without its keys, the
// shared bucket starts from what the client spent meanwhile, not full
// (breaker2 F1/F4). The clients' clock is a fake that stands still; the
// budget clock (Redis TIME) moves by the test's wall time only, a few
// tokens at 100 tokens/s.
func TestRedisLossCarriesDebt(t *testing.T) {
	srv := redistest.Start(t)
	fc := clock.NewFake(time.Unix(1_700_000_000, 0))
	// TPM 6000: capacity 5400, 100 tokens/s; RPM out of the way.
	cfg := RedisConfig{Config: Config{Clock: fc, Limits: fixed(1_000_000, 6000), MaxConcurrent: 50}, Heartbeat: 20 * time.Millisecond}
	a, _ := newShared(t, srv, cfg)
	cfg.ClientID = "b"
	b, _ := newShared(t, srv, cfg)
	// 9,000 tokens reserved: 5,400 empty the bucket, 3,600 more are debt
	// (36 s at 100/s); two clients alive.
	for _, r := range []*Redis{a, b, a} {
		d := decideAs(t, r, "gpt-4o", 3000)
		if d.status != decGo {
			t.Fatalf("decide: %+v", d)
		}
	}
	srv.Kill()
	waitLost := time.Now().Add(5 * time.Second)
	for a.Shared() && time.Now().Before(waitLost) {
		time.Sleep(10 * time.Millisecond)
	}
	if a.Shared() {
		t.Fatal("Redis loss not noticed")
	}
	// a's share: 3,000 TPM, capacity 2,700; its half of the debt is -1,800.
	if got := tokensNow(t, a, "gpt-4o"); math.Abs(got-(-1800)) > 150 {
		t.Fatalf("fallback starts with %.0f tokens, want about -1800 (half the shared debt)", got)
	}
	// Redis restarts without its keys: the first decision finds a bucket
	// seeded from a's local state (90 s from full, i.e. 3,600 tokens
	// beyond empty), so 100 more tokens wait about 37 s, not 0.
	srv.Restart()
	waitShared(t, a)
	d := decideAs(t, a, "gpt-4o", 100)
	if d.status != decGo || d.wait < 35*time.Second || d.wait > 38*time.Second {
		t.Fatalf("after the restart: wait %v, want about 37s (the bucket a spent, not a full one)", d.wait)
	}
}

// A client that started on the local fallback (Redis down at start) and
// spent its bucket joins the budget when Redis comes up: the new shared
// bucket starts empty, not full; a client that spent nothing joins onto a
// full one, as pace.Local starts.
func TestRedisOfflineJoinCarriesSpent(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	fc := clock.NewFake(time.Unix(1_700_000_000, 0))
	cfg := RedisConfig{Config: Config{Clock: fc, Limits: fixed(1_000_000, 6000), MaxConcurrent: 50},
		Client: newClient(srv.URL()), URL: srv.URL(), Name: "org-test", Offline: true, Heartbeat: 20 * time.Millisecond}
	a, err := NewRedis(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cfg.Client, cfg.ClientID = newClient(srv.URL()), "fresh"
	fresh, err := NewRedis(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	// a spends its whole (full, first-start) local bucket: 5,400 tokens.
	for range 3 {
		p, err := a.Reserve(context.Background(), "gpt-4o", 1800)
		if err != nil {
			t.Fatal(err)
		}
		p.Done(Success)
	}
	srv.Restart()
	waitShared(t, fresh)
	waitShared(t, a)
	// fresh first: it has spent nothing, so its decision leaves the new
	// bucket as it found it (full, minus its 100).
	if d := decideAs(t, fresh, "gpt-4o", 100); d.status != decGo || d.wait != 0 {
		t.Fatalf("a client that spent nothing: %+v, want no wait", d)
	}
	// a joins with an empty bucket (54 s from full): the later TAT wins,
	// so 100 tokens wait about 1 s (at 100/s), not 0.
	if d := decideAs(t, a, "gpt-4o", 100); d.status != decGo || d.wait < 500*time.Millisecond || d.wait > 2*time.Second {
		t.Fatalf("the fallback client's first shared decision: wait %v, want about 1s", d.wait)
	}
}

package pace

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/clock"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// reserveAll reserves n requests of tokens each, one goroutine per
// request, driving the fake clock forward in small steps while anyone
// sleeps. It returns the fake time (since t0) at which each permit was
// granted, in grant order.
func reserveAll(t *testing.T, l *Local, fc *clock.Fake, model string, n int, tokens int64, doneOutcome Outcome) []time.Duration {
	t.Helper()
	var mu sync.Mutex
	var grants []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := l.Reserve(context.Background(), model, tokens)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			grants = append(grants, fc.Now().Sub(t0))
			mu.Unlock()
			p.Done(doneOutcome)
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	// Move the clock only once every goroutine has reserved (granted at
	// once, or asleep until its turn), so a late-starting goroutine does
	// not reserve at a later fake time.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		g := len(grants)
		mu.Unlock()
		if g+fc.Sleepers() >= n || l.waitingProbe() || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	drive(t, fc, finished)
	close(errs)
	for err := range errs {
		t.Fatalf("reserve: %v", err)
	}
	return grants
}

// drive advances fc by 10 ms whenever a goroutine sleeps, until done.
func drive(t *testing.T, fc *clock.Fake, done <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second) // guard against a hang, not a speed assertion
	for {
		select {
		case <-done:
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("reservations did not finish (fake time %s)", fc.Now().Sub(t0))
		}
		if fc.Sleepers() > 0 {
			fc.Advance(10 * time.Millisecond)
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// checkUnderBucket asserts that at every grant, the grants so far fit a
// bucket of capacity c refilling at perMinute (the local bucket: capacity
// Headroom × limit, refill the limit), plus one grant of slack for the
// 10 ms clock ticks.
func checkUnderBucket(t *testing.T, grants []time.Duration, perGrant, capacity, perMinute float64) {
	t.Helper()
	for i, g := range grants {
		used := float64(i+1) * perGrant
		allowed := capacity + perMinute*g.Minutes() + perGrant
		if used > allowed {
			t.Fatalf("grant %d at %s: %.0f used, bucket allows %.0f", i, g, used, allowed)
		}
	}
}

func TestRPMPacing(t *testing.T) {
	fc := clock.NewFake(t0)
	l := New(Config{Clock: fc, Headroom: 0.5, MaxConcurrent: 1000,
		Limits: func(string) Limits { return Limits{RPM: 120, TPM: 1_000_000} }})
	grants := reserveAll(t, l, fc, "gpt-4o", 90, 10, Success)
	if len(grants) != 90 {
		t.Fatalf("got %d grants", len(grants))
	}
	// capacity 60 at once, then 2 per second: the 90th at ~15 s.
	last := grants[len(grants)-1]
	if last < 14*time.Second || last > 16*time.Second {
		t.Errorf("last grant at %s, want ~15s", last)
	}
	checkUnderBucket(t, grants, 1, 60, 120)
}

func TestTPMBinding(t *testing.T) {
	fc := clock.NewFake(t0)
	l := New(Config{Clock: fc, Headroom: 0.9, MaxConcurrent: 1000,
		Limits: func(string) Limits { return Limits{RPM: 500, TPM: 30_000} }})
	grants := reserveAll(t, l, fc, "gpt-4o", 80, 700, Success)
	// 80 × 700 = 56,000 tokens; capacity 27,000 then 30,000/min:
	// (56,000 - 27,000 - 700) / 30,000 min ≈ 56.6 s for the last one.
	last := grants[len(grants)-1]
	if last < 55*time.Second || last > 58*time.Second {
		t.Errorf("last grant at %s, want ~56.6s (TPM binding)", last)
	}
	checkUnderBucket(t, grants, 700, 27_000, 30_000)
}

func TestTooLargeRefusedNotDeadlocked(t *testing.T) {
	fc := clock.NewFake(t0)
	l := New(Config{Clock: fc, Limits: func(string) Limits { return Limits{RPM: 500, TPM: 30_000} }})
	_, err := l.Reserve(context.Background(), "gpt-4o", 32_017)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != 30_000 || tl.Tokens != 32_017 {
		t.Fatalf("err = %v, want TooLargeError 32017 > 30000", err)
	}
	// Between capacity (27,000) and the limit: granted, twice, in order.
	grants := reserveAll(t, l, fc, "gpt-4o", 2, 29_000, Success)
	if len(grants) != 2 || grants[0] != 0 {
		t.Fatalf("grants = %v, want the first at once", grants)
	}
	if grants[1] < 53*time.Second || grants[1] > 55*time.Second {
		t.Errorf("second 29k request at %s, want after the bucket refilled (27,000 at 30,000/min: 54s)", grants[1])
	}
}

func TestLearnedLimitsAndProbe(t *testing.T) {
	fc := clock.NewFake(t0)
	l := New(Config{Clock: fc, Headroom: 1})
	ctx := context.Background()
	p, err := l.Reserve(ctx, "m", 100)
	if err != nil {
		t.Fatal(err)
	}
	// A second request waits for the probe's answer.
	got := make(chan Permit, 1)
	go func() {
		p2, err := l.Reserve(ctx, "m", 100)
		if err != nil {
			t.Error(err)
		}
		got <- p2
	}()
	select {
	case <-got:
		t.Fatal("second request did not wait for the probe")
	case <-time.After(50 * time.Millisecond):
	}
	l.Observe("m", Observation{
		Requests: Window{Limit: 60, Remaining: 59, Reset: time.Second},
		Tokens:   Window{Limit: 6000, Remaining: 5900, Reset: time.Second},
	}, fc.Now())
	p.Done(Success)
	p2 := <-got
	p2.Done(Success)
	if lim := l.Limits("m"); lim.RPM != 60 || lim.TPM != 6000 {
		t.Fatalf("learned %+v, want 60 RPM / 6000 TPM", lim)
	}
	// Learned limits pace: 6000 TPM at 100 tokens = 60 per minute; the
	// bucket had ~58 left (the observation said 5900 tokens and 59
	// requests remaining).
	grants := reserveAll(t, l, fc, "m", 70, 100, Success)
	last := grants[len(grants)-1]
	if last < 8*time.Second {
		t.Errorf("70 more requests granted by %s; learned limits not applied", last)
	}
}

func TestDailyRequestWindowNotLearnedAsRPM(t *testing.T) {
	fc := clock.NewFake(t0)
	l := New(Config{Clock: fc})
	l.Observe("m", Observation{
		Requests: Window{Limit: 200, Remaining: 0, Reset: 23*time.Hour + 55*time.Minute},
		Tokens:   Window{Limit: 40_000, Remaining: 39_000, Reset: 34 * time.Millisecond},
	}, fc.Now())
	if lim := l.Limits("m"); lim.RPM != 0 || lim.TPM != 40_000 {
		t.Fatalf("limits %+v, want RPM unknown (200 is a daily window) and TPM 40000", lim)
	}
}

func TestObserveCorrectsDownward(t *testing.T) {
	fc := clock.NewFake(t0)
	l := New(Config{Clock: fc, Headroom: 1, MaxConcurrent: 1000,
		Limits: func(string) Limits { return Limits{RPM: 60, TPM: 1_000_000} }})
	// Another process used most of the budget: the server says 10 left.
	l.Observe("m", Observation{Requests: Window{Limit: 60, Remaining: 10, Reset: 50 * time.Second},
		Tokens: Window{Limit: -1, Remaining: -1, Reset: -1}}, fc.Now())
	grants := reserveAll(t, l, fc, "m", 20, 1, Success)
	immediate := 0
	for _, g := range grants {
		if g == 0 {
			immediate++
		}
	}
	if immediate > 10 {
		t.Errorf("%d requests granted at once after the server said 10 remain", immediate)
	}
	// An upward "remaining" never raises the local bucket.
	l.Observe("m", Observation{Requests: Window{Limit: 60, Remaining: 60, Reset: 0},
		Tokens: Window{Limit: -1, Remaining: -1, Reset: -1}}, fc.Now())
	if tok := l.models["m"].req.lim.TokensAt(fc.Now()); tok > 1 {
		t.Errorf("bucket raised to %.1f by a header", tok)
	}
}

func TestPauseHoldsEveryWorker(t *testing.T) {
	fc := clock.NewFake(t0)
	l := New(Config{Clock: fc, Limits: func(string) Limits { return Limits{RPM: 500, TPM: 30_000} }})
	var events []string
	l.cfg.Events = func(e Event) { events = append(events, e.Message) }
	l.Pause("gpt-4o", Tokens, fc.Now().Add(5*time.Second))
	grants := reserveAll(t, l, fc, "gpt-4o", 3, 10, Success)
	for _, g := range grants {
		if g < 5*time.Second {
			t.Fatalf("grant at %s during a TPM pause until 5s", g)
		}
	}
	if len(events) != 1 || events[0] != "paused 5s: TPM limit" {
		t.Errorf("events = %q", events)
	}
	// A pause of one model does not hold another.
	l.Pause("gpt-4o", Requests, fc.Now().Add(time.Minute))
	now := fc.Now().Sub(t0)
	g := reserveAll(t, l, fc, "gpt-4o-mini", 1, 10, Success)
	if g[0] != now {
		t.Errorf("another model waited for gpt-4o's pause: granted at %s, asked at %s", g[0], now)
	}
}

func TestAIMD(t *testing.T) {
	fc := clock.NewFake(t0)
	l := New(Config{Clock: fc, MaxConcurrent: 16, Limits: func(string) Limits { return Limits{RPM: 10_000, TPM: 10_000_000} }})
	ctx := context.Background()
	reserveN := func(n int) []Permit {
		var ps []Permit
		for i := 0; i < n; i++ {
			p, err := l.Reserve(ctx, "m", 1)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		return ps
	}
	ps := reserveN(16)
	if in, c := l.InFlight(); in != 16 || c != 16 {
		t.Fatalf("in flight %d cap %d", in, c)
	}
	// The 17th waits for a slot.
	ctx2, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if _, err := l.Reserve(ctx2, "m", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("17th reserve: %v, want to wait", err)
	}
	cancel()
	// A burst of concurrency 429s from one round halves the cap once.
	for _, p := range ps[:12] {
		p.Done(ConcurrencyLimited)
	}
	if _, c := l.InFlight(); c != 8 {
		t.Fatalf("cap %d after one round of concurrency 429s, want 8", c)
	}
	for _, p := range ps[12:] {
		p.Done(Success)
	}
	// A new round's 429 halves again.
	ps = reserveN(4)
	ps[0].Done(ConcurrencyLimited)
	if _, c := l.InFlight(); c != 4 {
		t.Fatalf("cap %d, want 4", c)
	}
	for _, p := range ps[1:] {
		p.Done(Success)
	}
	// Successes probe back up slowly: +1/cap each.
	for i := 0; i < 4; i++ {
		reserveN(1)[0].Done(Success)
	}
	if _, c := l.InFlight(); c != 5 {
		t.Fatalf("cap %d after 4+3 successes at cap 4, want 5", c)
	}
}

func TestReserveCancelledReturnsTokens(t *testing.T) {
	fc := clock.NewFake(t0)
	l := New(Config{Clock: fc, Headroom: 1, Limits: func(string) Limits { return Limits{RPM: 60, TPM: 1000} }})
	p, _ := l.Reserve(context.Background(), "m", 1000) // empties the TPM bucket
	p.Done(Success)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { _, err := l.Reserve(ctx, "m", 1000); errc <- err }()
	for fc.Sleepers() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if in, _ := l.InFlight(); in != 0 {
		t.Fatalf("a cancelled reservation holds a slot (%d in flight)", in)
	}
}

func TestBackoff(t *testing.T) {
	b := NewBackoff(1)
	if d := b.Delay(0, 1500*time.Millisecond, true); d != 1500*time.Millisecond {
		t.Errorf("hint 1.5s: %s", d)
	}
	if d := b.Delay(3, 0, true); d < 250*time.Millisecond || d > 4*time.Second {
		t.Errorf("hint 0 counts as no hint: %s, want backoff in [250ms, 4s]", d)
	}
	if d := b.Delay(0, 10*time.Millisecond, true); d != 250*time.Millisecond {
		t.Errorf("hint 10ms: %s, want the 250ms floor", d)
	}
	for retry := 0; retry < 10; retry++ {
		ceil := min(500*time.Millisecond<<retry, 20*time.Second)
		var lo, hi time.Duration = time.Hour, 0
		for i := 0; i < 200; i++ {
			d := b.Delay(retry, 0, false)
			if d < 250*time.Millisecond || d > ceil {
				t.Fatalf("retry %d: %s outside [250ms, %s]", retry, d, ceil)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if retry >= 3 && hi-lo < ceil/2 {
			t.Errorf("retry %d: jitter range %s..%s too narrow for full jitter", retry, lo, hi)
		}
	}
	// Seeded: the same seed gives the same sequence.
	a, c := NewBackoff(7), NewBackoff(7)
	for i := 0; i < 5; i++ {
		if a.Delay(i, 0, false) != c.Delay(i, 0, false) {
			t.Fatal("same seed, different delays")
		}
	}
}

func TestLowerServerLimitWins(t *testing.T) {
	fc := clock.NewFake(t0)
	var events []string
	l := New(Config{Clock: fc, Limits: func(string) Limits { return Limits{RPM: 5000, TPM: 800_000} },
		Events: func(e Event) { events = append(events, e.Message) }})
	l.Observe("m", Observation{Requests: Window{Limit: 500, Remaining: 499, Reset: 120 * time.Millisecond},
		Tokens: Window{Limit: 1_000_000, Remaining: 999_000, Reset: time.Second}}, fc.Now())
	if lim := l.Limits("m"); lim.RPM != 500 || lim.TPM != 800_000 {
		t.Errorf("limits %+v, want RPM lowered to the server's 500 and TPM kept at the given 800000", lim)
	}
	if len(events) != 1 || !strings.Contains(events[0], "RPM limit 500, lower than the 5000 given") {
		t.Errorf("events %q", events)
	}
}

// waitingProbe reports whether some model waits for its probe (no clock
// sleep involved), for reserveAll.
func (l *Local) waitingProbe() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ms := range l.models {
		if ms.probing {
			return true
		}
	}
	return false
}

// TestStaleObserveTimeGivesNoExtraTokens: an Observe whose time is older
// than the last reservation must not move rate.Limiter's clock back (it
// would then count the refill since twice, and the bench saw TPM 429s).
func TestStaleObserveTimeGivesNoExtraTokens(t *testing.T) {
	fc := clock.NewFake(t0)
	l := New(Config{Clock: fc, Headroom: 1, Limits: func(string) Limits { return Limits{RPM: 60, TPM: 1_000_000} }})
	ctx := context.Background()
	for i := 0; i < 60; i++ { // empty the request bucket at t0
		p, err := l.Reserve(ctx, "m", 1)
		if err != nil {
			t.Fatal(err)
		}
		p.Done(Success)
	}
	fc.Advance(10 * time.Second) // 10 requests refilled
	p, _ := l.Reserve(ctx, "m", 1)
	p.Done(Success)
	// A response observed "at t0" says nothing is left.
	l.Observe("m", Observation{Requests: Window{Limit: 60, Remaining: 0, Reset: time.Second},
		Tokens: Window{Limit: -1, Remaining: -1, Reset: -1}}, t0)
	fc.Advance(time.Second)
	if got := l.models["m"].req.lim.TokensAt(fc.Now()); got > 1.01 {
		t.Errorf("%.2f requests available 1s after the server said 0 remain; want <= 1", got)
	}
}

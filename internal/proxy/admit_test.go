package proxy

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/pace"
)

// gateLimiter admits one Reserve per token sent on grant; a cancelled
// Reserve keeps nothing. It records how many Reserve calls are waiting.
type gateLimiter struct {
	grant   chan struct{}
	mu      sync.Mutex
	waiting int
}

func (g *gateLimiter) Reserve(ctx context.Context, model string, tokens int64) (pace.Permit, error) {
	g.mu.Lock()
	g.waiting++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.waiting--
		g.mu.Unlock()
	}()
	select {
	case <-g.grant:
		return permitFunc(func(pace.Outcome) {}), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (g *gateLimiter) Observe(string, pace.Observation, time.Time) {}
func (g *gateLimiter) Pause(string, pace.Kind, time.Time)          {}

type permitFunc func(pace.Outcome)

func (p permitFunc) Done(o pace.Outcome) { p(o) }

// admitOrder queues the requests one after another (each waits until the
// previous one is queued) and returns the order in which they are
// admitted as grants are given one by one.
func admitOrder(t *testing.T, reqs []ticket, names []string) []string {
	t.Helper()
	g := &gateLimiter{grant: make(chan struct{})}
	a := newAdmitter(g, clock.Real(), time.Minute, 100)
	order := make(chan string, len(reqs))
	for i, tk := range reqs {
		go func() {
			ctx := withTicket(context.Background(), tk)
			if _, err := a.Reserve(ctx, "m", 1); err != nil {
				t.Errorf("%s: %v", names[i], err)
			}
			order <- names[i]
		}()
		// Wait until it is queued (or reserving, for the first).
		waitFor(t, func() bool {
			d := a.Depth()
			return d[0]+d[1]+d[2] == i+1
		})
	}
	var got []string
	for range reqs {
		g.grant <- struct{}{}
		got = append(got, <-order)
	}
	return got
}

func TestPriorityHighFirstLowPreempted(t *testing.T) {
	// l1 is reserving when h1 arrives: h1 takes the budget first, then
	// the normal one, then the lows in their order.
	got := admitOrder(t,
		[]ticket{{Low, "bulk"}, {Low, "bulk"}, {Normal, "app"}, {High, "ui"}},
		[]string{"l1", "l2", "n1", "h1"})
	want := []string{"h1", "n1", "l1", "l2"}
	if !equal(got, want) {
		t.Fatalf("admission order %v, want %v", got, want)
	}
}

func TestFairnessWithinClass(t *testing.T) {
	// Caller a queues three before b's one: b goes second, not fourth.
	got := admitOrder(t,
		[]ticket{{Normal, "a"}, {Normal, "a"}, {Normal, "a"}, {Normal, "b"}},
		[]string{"a1", "a2", "a3", "b1"})
	want := []string{"a1", "b1", "a2", "a3"}
	if !equal(got, want) {
		t.Fatalf("admission order %v, want %v", got, want)
	}
}

func TestQueueBoundedAndWaitShed(t *testing.T) {
	g := &gateLimiter{grant: make(chan struct{})}
	// The queue wait runs on the admitter's clock: a fake one, advanced
	// by the test, so that no wall-clock wait (and no machine load) decides.
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a := newAdmitter(g, clk, 2*time.Second, 2)
	ctx := context.Background()
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() { _, err := a.Reserve(ctx, "m", 1); errs <- err }()
		waitFor(t, func() bool { d := a.Depth(); return d[Normal] == i+1 })
	}
	// one reserving, two queued: the next is refused at once.
	_, err := a.Reserve(ctx, "m", 1)
	var shed *ShedError
	if !errors.As(err, &shed) || shed.Reason != "queue_full" {
		t.Fatalf("4th request: %v, want queue_full", err)
	}
	// All three wait on the clock; just short of the wait, none is shed.
	waitFor(t, func() bool { return clk.Sleepers() == 3 })
	clk.Advance(2*time.Second - time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-errs:
		t.Fatalf("a request ended before its queue wait: %v", err)
	default:
	}
	clk.Advance(time.Millisecond)
	for i := 0; i < 3; i++ {
		if err := <-errs; !errors.As(err, &shed) || shed.Reason != "queue_wait" {
			t.Fatalf("waiting request: %v, want queue_wait", err)
		}
	}
	if d := a.Depth(); d != [numPriorities]int{} {
		t.Errorf("depth after shedding %v", d)
	}
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.waiting == 0 })
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

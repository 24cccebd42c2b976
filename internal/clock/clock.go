// Package clock is the time source of everything that paces or waits:
// the simulator's buckets and batch clock, the run pacer, batch polling.
// A Scaled clock runs K times faster than the wall clock, consistently for
// Now and Sleep, so that `oairl sim --time-scale K` and `oairl run
// --time-scale K` agree and minutes of traffic take seconds.
package clock

import (
	"context"
	"sync"
	"time"
)

// Clock tells the time and waits.
type Clock interface {
	// Now returns this clock's current time.
	Now() time.Time
	// Sleep waits d of this clock's time, or until ctx is done, in which
	// case it returns ctx.Err(). d <= 0 returns at once (nil).
	Sleep(ctx context.Context, d time.Duration) error
	// Wall converts a duration of this clock into wall-clock time.
	Wall(d time.Duration) time.Duration
}

// Real returns the wall clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                     { return time.Now() }
func (realClock) Wall(d time.Duration) time.Duration { return d }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	return sleepWall(ctx, d)
}

func sleepWall(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Scaled returns a clock that starts at the current wall time and runs k
// times faster (k > 1 is faster; k <= 0 or 1 is the wall clock).
func Scaled(k float64) Clock {
	if k <= 0 || k == 1 {
		return Real()
	}
	now := time.Now()
	return &scaled{k: k, wallStart: now, virtStart: now}
}

type scaled struct {
	k                    float64
	wallStart, virtStart time.Time
}

func (s *scaled) Now() time.Time {
	return s.virtStart.Add(time.Duration(float64(time.Since(s.wallStart)) * s.k))
}
func (s *scaled) Wall(d time.Duration) time.Duration { return time.Duration(float64(d) / s.k) }
func (s *scaled) Sleep(ctx context.Context, d time.Duration) error {
	return sleepWall(ctx, s.Wall(d))
}

// Fake is a manually advanced clock for tests. Sleep blocks until Advance
// moves the time past the sleeper's deadline (or ctx is done).
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	until time.Time
	ch    chan struct{}
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Wall returns d unchanged.
func (f *Fake) Wall(d time.Duration) time.Duration { return d }

// Sleep blocks until the fake time reaches now+d.
func (f *Fake) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	f.mu.Lock()
	w := fakeWaiter{until: f.now.Add(d), ch: make(chan struct{})}
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-w.ch:
		return nil
	}
}

// Advance moves the time forward by d and wakes the sleepers it passes.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.until.After(f.now) {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	f.waiters = kept
}

// Sleepers returns how many goroutines are blocked in Sleep.
func (f *Fake) Sleepers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

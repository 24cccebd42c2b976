package clock

import (
	"context"
	"testing"
	"time"
)

func TestFakeSleepWakesOnAdvance(t *testing.T) {
	start := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	done := make(chan error, 1)
	go func() { done <- f.Sleep(context.Background(), 2*time.Second) }()
	for f.Sleepers() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.Advance(time.Second)
	select {
	case <-done:
		t.Fatal("woke after 1s of a 2s sleep")
	case <-time.After(20 * time.Millisecond):
	}
	f.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := f.Now().Sub(start); got != 2*time.Second {
		t.Fatalf("Now advanced %v", got)
	}
}

func TestFakeSleepCancelled(t *testing.T) {
	f := NewFake(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("err = %v", err)
	}
}

func TestScaledIsConsistent(t *testing.T) {
	c := Scaled(1000)
	if got := c.Wall(time.Minute); got != 60*time.Millisecond {
		t.Fatalf("Wall(1m) at 1000x = %v", got)
	}
	t0 := c.Now()
	if err := c.Sleep(context.Background(), 5*time.Second); err != nil { // 5 ms of wall time
		t.Fatal(err)
	}
	if el := c.Now().Sub(t0); el < 5*time.Second {
		t.Fatalf("scaled clock advanced only %v during a 5s sleep", el)
	}
	if _, ok := Scaled(1).(realClock); !ok {
		t.Fatal("scale 1 should be the real clock")
	}
}

package runner

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/api"
)

// Issue 14 §2: when the lines left fit in --max-wait at a daily limit's
// rate, the model is paced at limit ÷ 86,400 per second (one request per
// refill) instead of bursting at every short reset. The server here is a
// rolling day with no room: one request per 8.64 s (RPD 10000) succeeds,
// anything sooner is a 429 "… per day (RPD) … try again in 8.64s".
// Before: every line got a 429 and a retry (about 2 calls per line).
func TestDailyLimitPacesAtDailyRate(t *testing.T) {
	const gap = 8640 * time.Millisecond
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("p", "gpt-4o-mini", 20, 5))
	out := filepath.Join(dir, "out.jsonl")
	var mu sync.Mutex
	var lastOK time.Time
	rejected := 0
	p := &funcPoster{fn: func(_ int, c call) (*api.Response, error) {
		mu.Lock()
		defer mu.Unlock()
		if !lastOK.IsZero() && c.At.Sub(lastOK) < gap {
			rejected++
			return errResponse(429, "requests", "rate_limit_exceeded",
				"Rate limit reached for gpt-4o-mini in organization org-x on requests per day (RPD): Limit 10000, Used 10000, Requested 1. Please try again in 8.64s.",
				"x-ratelimit-limit-requests", "10000", "x-ratelimit-remaining-requests", "9990", "x-ratelimit-reset-requests", "6ms",
				"x-ratelimit-limit-tokens", "2000000", "x-ratelimit-remaining-tokens", "1999000", "x-ratelimit-reset-tokens", "1ms"), nil
		}
		lastOK = c.At
		return okResponse(), nil
	}}
	clk := newInstant()
	p.clk = clk
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM, o.Clock, o.MaxConcurrent, o.MaxWait = p, 10_000, 2_000_000, clk, 4, time.Hour
	sum, err := Run(context.Background(), o)
	if err != nil || sum.Succeeded != 20 || sum.ExitCode != 0 {
		t.Fatalf("err %v exit %d succeeded %d stop %q", err, sum.ExitCode, sum.Succeeded, sum.StopReason)
	}
	calls := len(p.Calls())
	t.Logf("%d calls, %d 429s", calls, rejected)
	if calls > 20+4 || rejected > 4 {
		t.Errorf("%d calls (%d answered 429) for 20 lines: want about one call per 8.64 s refill, not bursts", calls, rejected)
	}
}

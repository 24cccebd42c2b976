package runner

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/exitcode"
)

// Issue 14 §2: a 429 naming a daily window (RPD/TPD) with per-minute room
// stops dispatching at once when the lines left need longer than
// --max-wait at limit ÷ 86,400 per second: exit 6, no failure recorded
// (resumable), and the reason says when the daily budget allows the rest.
// Before: a retry storm of 280 calls in 60 s for 100 lines.
func TestDailyLimitStopsAtOnce(t *testing.T) {
	for kind, msg := range map[string]string{
		"RPD": "Rate limit reached for gpt-4o-mini in organization org-x on requests per day (RPD): Limit 10000, Used 10000, Requested 1. Please try again in 8.64s.",
		"TPD": "Rate limit reached for gpt-4o-mini in organization org-x on tokens per day (TPD): Limit 200000, Used 199990, Requested 40. Please try again in 8.64s.",
	} {
		dir := t.TempDir()
		in := writeLines(t, dir, "in.jsonl", chatLines("d", "gpt-4o-mini", 100, 5))
		out := filepath.Join(dir, "out.jsonl")
		typ := map[string]string{"RPD": "requests", "TPD": "tokens"}[kind]
		p := &funcPoster{fn: func(int, call) (*api.Response, error) {
			return errResponse(429, typ, "rate_limit_exceeded", msg,
				"x-ratelimit-limit-requests", "10000", "x-ratelimit-remaining-requests", "9990", "x-ratelimit-reset-requests", "6ms",
				"x-ratelimit-limit-tokens", "2000000", "x-ratelimit-remaining-tokens", "1999000", "x-ratelimit-reset-tokens", "1ms"), nil
		}}
		var log bytes.Buffer
		o := baseOptions(out, in)
		o.Client, o.RPM, o.TPM, o.Clock, o.MaxConcurrent, o.Log = p, 10_000, 2_000_000, newInstant(), 4, &log
		sum, err := Run(context.Background(), o)
		if err != nil || sum.ExitCode != exitcode.RateLimited || !strings.Contains(sum.StopReason, "daily limit") || !strings.Contains(sum.StopReason, "rerun the same command") {
			t.Fatalf("%s: err %v exit %d stop %q", kind, err, sum.ExitCode, sum.StopReason)
		}
		if n := len(p.Calls()); n > 4 {
			t.Errorf("%s: %d calls; dispatching should stop at the first daily 429", kind, n)
		}
		if rs := readResults(t, out); len(rs) != 0 || sum.Failed != 0 {
			t.Errorf("%s: %d results, %d failed; want none (resumable)", kind, len(rs), sum.Failed)
		}
	}
}

package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// Models that share one limit (gpt-4o and its snapshot gpt-4o-2024-08-06)
// are paced as one pair of buckets, as `oairl run` paces them: at 1 RPM a
// gpt-4o request uses the minute, so the snapshot's request waits (and is
// shed after the queue wait) instead of getting a bucket of its own.
func TestSharedLimitGroupOneBucket(t *testing.T) {
	up := simtest.New(t, sim.Config{Tier: "none"})
	r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 1, TPM: 1_000_000}, queueWait: 300 * time.Millisecond})
	body := func(model string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`
	}
	first, b := post(t, context.Background(), r.URL, body("gpt-4o"), nil)
	if first == nil || first.StatusCode != 200 {
		t.Fatalf("gpt-4o: %v %s", first, b)
	}
	resp, b := post(t, context.Background(), r.URL, body("gpt-4o-2024-08-06"), nil)
	if resp == nil || resp.StatusCode != 429 || !strings.Contains(string(b), "oairl proxy queued") {
		t.Fatalf("gpt-4o-2024-08-06 after gpt-4o at 1 RPM: %v %s; want shed (one shared bucket)", resp, b)
	}
	if n := simRequests(t, up, 1); n != 1 {
		t.Errorf("sim saw %d requests, want 1", n)
	}
}

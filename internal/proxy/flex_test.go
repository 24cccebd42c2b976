package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// pauseCounter is a limiter that counts the Pause calls it passes on.
type pauseCounter struct {
	pace.Limiter
	n atomic.Int64
}

func (p *pauseCounter) Pause(model string, kind pace.Kind, until time.Time) {
	p.n.Add(1)
	p.Limiter.Pause(model, kind, until)
}

const flexBody = `{"model":"gpt-4o-mini","service_tier":"flex","messages":[{"role":"user","content":"Say hello."}],"max_tokens":5}`

// Flex through the proxy (issue 13): with every flex request answered 429
// resource_unavailable, --flex-fallback 2 makes the app's request a 200
// served as "auto" after two flex misses; without it the app gets the 429
// resource_unavailable after the proxy's attempts. Neither pauses the
// rate-limit buckets.
func TestProxyFlexFallback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fallback int
		want     int
		tiers    []string
	}{
		{"fallback 2", 2, http.StatusOK, []string{"flex", "flex", "auto"}},
		{"no fallback", 0, http.StatusTooManyRequests, []string{"flex", "flex", "flex"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := simtest.New(t, sim.Config{Tier: "none", FlexUnavailable: 1, RecordRequests: true, TimeScale: 100})
			var pc *pauseCounter
			r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 1000, TPM: 1_000_000}, scale: 100, queueWait: time.Hour,
				cfg: func(c *Config) {
					pc = &pauseCounter{Limiter: c.Limiter}
					c.Limiter, c.FlexFallback, c.MaxAttempts, c.MaxWait = pc, tc.fallback, 3, time.Hour
				}})
			resp, body := post(t, context.Background(), r.URL, flexBody, nil)
			if resp == nil {
				t.Fatal("no answer")
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("app got %d %s, want %d", resp.StatusCode, body, tc.want)
			}
			if tc.want == http.StatusTooManyRequests {
				var e struct {
					Error struct{ Code string } `json:"error"`
				}
				if json.Unmarshal(body, &e) != nil || e.Error.Code != "resource_unavailable" {
					t.Errorf("app got %s, want the resource_unavailable error", body)
				}
			}
			reqs := up.Sim.Requests()
			if len(reqs) != len(tc.tiers) {
				t.Fatalf("sim saw %d requests, want %d", len(reqs), len(tc.tiers))
			}
			for i, tier := range tc.tiers {
				var m struct {
					ServiceTier string `json:"service_tier"`
				}
				if err := json.Unmarshal(reqs[i].Body, &m); err != nil || m.ServiceTier != tier {
					t.Errorf("attempt %d sent %s, want service_tier %q", i+1, reqs[i].Body, tier)
				}
				if want := strings.Replace(flexBody, `"flex"`, `"`+tier+`"`, 1); string(reqs[i].Body) != want {
					t.Errorf("attempt %d body %s, want %s (only the tier changed)", i+1, reqs[i].Body, want)
				}
			}
			if n := pc.n.Load(); n != 0 {
				t.Errorf("resource_unavailable paused the rate-limit buckets %d times", n)
			}
		})
	}
}

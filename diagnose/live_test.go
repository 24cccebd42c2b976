package diagnose_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	. "github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

var simStart = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

func simClient(t *testing.T, cfg sim.Config) *api.Client {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = clock.NewFake(simStart)
	}
	srv := simtest.New(t, cfg)
	return api.New(api.Options{BaseURL: srv.URL, APIKey: "sk-test-diagnose-000000000000"})
}

// TestProbeSim runs the live probe against the in-process simulator in
// each fault mode and checks the verdict.
func TestProbeSim(t *testing.T) {
	tests := []struct {
		name    string
		cfg     sim.Config
		model   string
		verdict Verdict
		tier    string
	}{
		{"ok tier 1", sim.Config{Tier: "1"}, "gpt-4o-mini", OK, "1"},
		{"ok tier 3", sim.Config{Tier: "3"}, "gpt-4o", OK, "3"},
		{"ok free tier", sim.Config{Tier: "free"}, "gpt-4o-mini", OK, "free"},
		{"custom limits", sim.Config{RPM: 123, TPM: 4567}, "gpt-4o-mini", OK, "custom"},
		{"quota exhausted", sim.Config{QuotaExhausted: "insufficient_quota"}, "gpt-4o-mini", QuotaExhausted, ""},
		{"billing code", sim.Config{QuotaExhausted: "project_spend_limit_exceeded"}, "gpt-4o-mini", QuotaExhausted, ""},
		{"invalid key", sim.Config{InvalidKey: true}, "gpt-4o-mini", AuthFailed, ""},
		{"unknown model", sim.Config{}, "gpt-nonexistent-9", ModelUnavailable, ""},
		{"request too large", sim.Config{TPM: 3}, "gpt-4o-mini", RequestTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := simClient(t, tt.cfg)
			e := Probe(context.Background(), c, ProbeOptions{Model: tt.model})
			if e.Verdict != tt.verdict {
				t.Fatalf("verdict = %s, want %s (%s)", e.Verdict, tt.verdict, e.Summary)
			}
			if tt.tier != "" && e.UsageTier != tt.tier {
				t.Errorf("usage tier = %q, want %q (headers %+v)", e.UsageTier, tt.tier, e.RateLimits)
			}
			if e.Verdict == OK && (!e.RateLimits.Requests.Known || !e.RateLimits.Tokens.Known || e.RequestID == "") {
				t.Errorf("ok probe without rate-limit headers or request id: %+v", e.Finding)
			}
		})
	}
}

// TestProbeSimDrained drains the TPM bucket (fake clock: no refill) and
// checks the next probe is tpm_limited with a wait.
func TestProbeSimDrained(t *testing.T) {
	c := simClient(t, sim.Config{RPM: 1000, TPM: 40})
	var e Entry
	for i := 0; i < 20; i++ {
		e = Probe(context.Background(), c, ProbeOptions{Model: "gpt-4o-mini"})
		if e.Verdict != OK {
			break
		}
	}
	if e.Verdict != TPMLimited || !e.Retryable || e.Wait <= 0 || e.LimitKind != "TPM" || e.Limit != 40 {
		t.Fatalf("got %s retry=%v wait=%v kind=%s limit=%d (%s)", e.Verdict, e.Retryable, e.Wait, e.LimitKind, e.Limit, e.Summary)
	}
	if e.ExitCode() != 6 {
		t.Errorf("exit = %d, want 6", e.ExitCode())
	}
}

// TestProbeSimRPM drains the request bucket.
func TestProbeSimRPM(t *testing.T) {
	c := simClient(t, sim.Config{RPM: 2, TPM: 1000000})
	var e Entry
	for i := 0; i < 5 && e.Verdict != RPMLimited; i++ {
		e = Probe(context.Background(), c, ProbeOptions{Model: "gpt-4o-mini"})
	}
	if e.Verdict != RPMLimited || e.Wait <= 0 || e.Limit != 2 {
		t.Fatalf("got %s wait=%v limit=%d (%s)", e.Verdict, e.Wait, e.Limit, e.Summary)
	}
}

// TestProbeSimFaults: with every admitted request failing, the probe sees
// a 500, a 503 overload or a dropped connection, all retryable, none a
// rate limit.
func TestProbeSimFaults(t *testing.T) {
	seen := map[Verdict]bool{}
	for seed := int64(1); seed <= 12; seed++ {
		c := simClient(t, sim.Config{Tier: "5", FaultRate: 1, Seed: seed})
		e := Probe(context.Background(), c, ProbeOptions{Model: "gpt-4o-mini"})
		switch e.Verdict {
		case ServerError, ServerOverloaded, NetworkError:
		default:
			t.Fatalf("seed %d: %s (%s)", seed, e.Verdict, e.Summary)
		}
		if !e.Retryable || e.IsRateLimit() || e.ExitCode() != 1 {
			t.Errorf("seed %d: %s retryable=%v exit=%d", seed, e.Verdict, e.Retryable, e.ExitCode())
		}
		seen[e.Verdict] = true
	}
	if len(seen) < 2 {
		t.Errorf("only %v seen over 12 seeds", seen)
	}
}

func TestProbeSimSlowDown(t *testing.T) {
	c := simClient(t, sim.Config{RPM: 10, TPM: 1000000, SlowDown: true})
	var e Entry
	for i := 0; i < 5 && e.Verdict != RampLimited; i++ {
		e = Probe(context.Background(), c, ProbeOptions{Model: "gpt-4o-mini"})
	}
	if e.Verdict != RampLimited || !e.Retryable {
		t.Fatalf("got %s (%s)", e.Verdict, e.Summary)
	}
}

// TestProbeConcurrencySim sends 8 at once to a simulator that allows 2 in
// flight; sim latency (scaled 1000×) keeps them overlapping.
func TestProbeConcurrencySim(t *testing.T) {
	c := simClient(t, sim.Config{Tier: "5", MaxConcurrent: 2, Latency: 200 * time.Second, Clock: clock.Scaled(1000)})
	r, entries := ProbeConcurrency(context.Background(), c, ProbeOptions{Model: "gpt-4o-mini"}, 8)
	if len(entries) != 8 || r.Requests != 8 {
		t.Fatalf("entries %d", len(entries))
	}
	if !r.Bites || r.Verdicts[ConcurrencyLimited] == 0 || r.OK == 0 || r.OK > 2 {
		t.Fatalf("probe = %+v", r)
	}
	if (Report{Probe: &r}).ExitCode() != 6 {
		t.Error("a biting concurrency limit must exit 6")
	}
}

func TestProbeConcurrencyNoLimit(t *testing.T) {
	c := simClient(t, sim.Config{Tier: "5"})
	r, _ := ProbeConcurrency(context.Background(), c, ProbeOptions{Model: "gpt-4o-mini"}, 4)
	if r.Bites || r.OK != 4 {
		t.Fatalf("probe = %+v", r)
	}
}

// TestProbeRequest checks what the probe sends, with a plain handler.
func TestProbeRequest(t *testing.T) {
	var got map[string]any
	var auth, path, method string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, path, auth = r.Method, r.URL.Path, r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &got)
		h := w.Header()
		h.Set("x-ratelimit-limit-requests", "200")
		h.Set("x-ratelimit-remaining-requests", "150")
		h.Set("x-ratelimit-reset-requests", "6h0m0s")
		h.Set("x-ratelimit-limit-tokens", "40000")
		h.Set("x-ratelimit-remaining-tokens", "39990")
		h.Set("x-ratelimit-reset-tokens", "15ms")
		_, _ = w.Write([]byte(`{"id":"x","object":"chat.completion","choices":[]}`))
	}))
	defer hs.Close()
	c := api.New(api.Options{BaseURL: hs.URL + "/v1", APIKey: "sk-live-probe-key-1234"})
	for _, m := range []struct {
		model, budget string
	}{{"gpt-4o-mini", "max_tokens"}, {"o3", "max_completion_tokens"}} {
		got = nil
		e := Probe(context.Background(), c, ProbeOptions{Model: m.model})
		if method != "POST" || path != "/v1/chat/completions" || auth != "Bearer sk-live-probe-key-1234" {
			t.Errorf("request %s %s auth %q", method, path, auth)
		}
		if got["model"] != m.model || got[m.budget] != float64(1) || len(got) != 3 {
			t.Errorf("body = %v, want model %s and %s: 1", got, m.model, m.budget)
		}
		if e.Verdict != OK || !e.RateLimits.Requests.Daily {
			t.Errorf("finding = %s daily=%v", e.Verdict, e.RateLimits.Requests.Daily)
		}
		if m.model == "gpt-4o-mini" && e.UsageTier != "free" {
			t.Errorf("usage tier = %q, want free (200 RPD, 40K TPM)", e.UsageTier)
		}
	}
	// A dead server: network_error, retryable.
	hs.Close()
	e := Probe(context.Background(), c, ProbeOptions{Model: "gpt-4o-mini"})
	if e.Verdict != NetworkError || !e.Retryable {
		t.Errorf("closed server: %s", e.Verdict)
	}
}

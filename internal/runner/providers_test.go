package runner

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/internal/provider"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// End to end against the simulator answering like Azure OpenAI: requests go
// to /openai/deployments/MODEL/...?api-version=V with the api-key header;
// the 10 s request window (10 requests at 60 RPM) is paced as 60 RPM, not
// 10; every request succeeds.
func TestRunLikeAzure(t *testing.T) {
	clk := clock.Scaled(100)
	srv := simtest.New(t, sim.Config{Like: sim.LikeAzure, RPM: 60, TPM: 1_000_000, Clock: clk, RecordRequests: true})
	az, _ := provider.Get("azure")
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("r", "gpt-4o-mini", 20, 5))
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client = api.New(api.Options{BaseURL: strings.TrimSuffix(srv.URL, "/v1"), APIKey: "sk-test-runner-000000000000", Provider: az})
	o.Provider, o.Clock, o.MaxConcurrent = az, clk, 2
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ExitCode != 0 || sum.Succeeded != 20 {
		t.Fatalf("exit %d, %d succeeded; %v", sum.ExitCode, sum.Succeeded, sum.RateLimited)
	}
	reqs := srv.Sim.Requests()
	if len(reqs) == 0 || !strings.HasPrefix(reqs[0].Path, "/openai/deployments/gpt-4o-mini/chat/completions") ||
		!strings.Contains(reqs[0].Query, "api-version=") || reqs[0].Header.Get("api-key") == "" || reqs[0].Header.Get("Authorization") != "" {
		t.Fatalf("request %+v", reqs[0])
	}
	if got := sum.Models[0].RPMLimit; got != 60 {
		t.Errorf("learned RPM %d, want 60 (10 per 10 s)", got)
	}
}

// End to end against the simulator answering like Groq: the per-day
// request headers are not taken for an RPM; a request over the TPM limit
// gets 413 and fails once, never retried; the others succeed (exit 7).
func TestRunLikeGroq(t *testing.T) {
	clk := clock.Scaled(100)
	srv := simtest.New(t, sim.Config{Like: sim.LikeGroq, TPM: 6000, Clock: clk})
	groq, _ := provider.Get("groq")
	dir := t.TempDir()
	// The big one first: sent as the probe (no limits known yet), it gets
	// Groq's 413; later ones are refused locally once the limit is known.
	lines := append([]string{chatLine("big", "gpt-4o-mini", 7000)}, chatLines("r", "gpt-4o-mini", 10, 50)...)
	in := writeLines(t, dir, "in.jsonl", lines)
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client = api.New(api.Options{BaseURL: srv.URL, APIKey: "sk-test-runner-000000000000", Provider: groq})
	o.Provider, o.Clock, o.MaxConcurrent = groq, clk, 4
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	rs := byID(t, readResults(t, dir+"/out.jsonl"))
	big := rs["big"]
	if sum.Succeeded != 10 || big.Error == nil || big.Error.Code != "request_too_large" || big.Response == nil || big.Response.StatusCode != 413 {
		t.Fatalf("succeeded %d, big %+v %+v", sum.Succeeded, big.Error, big.Response)
	}
	if sum.Models[0].Attempts != 11 {
		t.Errorf("%d attempts, want 11 (the 413 is not retried)", sum.Models[0].Attempts)
	}
	if l := sum.Models[0].RPMLimit; l != 0 && l < 1000 {
		t.Errorf("RPM limit %d learned from Groq's per-day request headers", l)
	}
}

// Flex: resource_unavailable backs off without pausing the buckets, and
// --flex-fallback 2 resends as service_tier "auto" after two misses.
func TestRunFlexFallback(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none", FlexUnavailable: 1, RecordRequests: true, Clock: clock.Scaled(100)})
	dir := t.TempDir()
	line := `{"custom_id": "f1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "service_tier": "flex", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}}`
	in := writeLines(t, dir, "in.jsonl", []string{line})
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Clock, o.FlexFallback = simClient(srv), clock.Scaled(100), 2
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.Sim.Requests()
	if sum.Succeeded != 1 || len(reqs) != 3 {
		t.Fatalf("succeeded %d after %d requests", sum.Succeeded, len(reqs))
	}
	for i, want := range []string{`"service_tier": "flex"`, `"service_tier": "flex"`, `"service_tier": "auto"`} {
		if !strings.Contains(string(reqs[i].Body), want) {
			t.Errorf("attempt %d body %s, want %s", i+1, reqs[i].Body, want)
		}
	}
	if sum.RateLimited["flex_unavailable"] != 2 {
		t.Errorf("rate limited %v", sum.RateLimited)
	}
	// Without --flex-fallback the request keeps asking for flex and gives up.
	dir2 := t.TempDir()
	o2 := baseOptions(dir2+"/out.jsonl", writeLines(t, dir2, "in.jsonl", []string{line}))
	o2.Client, o2.Clock, o2.MaxAttempts = simClient(srv), clock.Scaled(100), 3
	sum2, _ := Run(context.Background(), o2)
	if sum2.Succeeded != 0 || sum2.ExitCode != 7 {
		t.Errorf("no fallback: succeeded %d exit %d", sum2.Succeeded, sum2.ExitCode)
	}
}

// Models of one shared-limit group are paced as one pool: at 30 RPM for
// the pool, 20 requests of each of two models make no 429.
func TestRunSharedGroupPool(t *testing.T) {
	reg, err := models.Load(strings.NewReader(`{"shared_limit_groups": [{"id": "pool", "members": ["gpt-4o-mini", "gpt-4.1-mini"], "source": "test", "date": "2026-12-04"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.Scaled(200)
	srv := simtest.New(t, sim.Config{Tier: "none", RPM: 30, Registry: reg, Clock: clk})
	dir := t.TempDir()
	var lines []string
	for i := 0; i < 20; i++ {
		lines = append(lines, chatLine(fmt.Sprintf("a%d", i), "gpt-4o-mini", 5), chatLine(fmt.Sprintf("b%d", i), "gpt-4.1-mini", 5))
	}
	o := baseOptions(dir+"/out.jsonl", writeLines(t, dir, "in.jsonl", lines))
	o.Registry, o.Client, o.Clock, o.RPM, o.MaxConcurrent = reg, simClient(srv), clk, 30, 4
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != 40 || total429(srv.Sim.Stats()) != 0 {
		t.Errorf("succeeded %d, 429s %v", sum.Succeeded, srv.Sim.Stats().RateLimited)
	}
}

// Under a project token limit tighter than the organization's, pacing
// follows the project's window (x-ratelimit-*-project-tokens): no 429.
func TestRunUnderProjectLimit(t *testing.T) {
	clk := clock.Scaled(200)
	srv := simtest.New(t, sim.Config{Tier: "none", TPM: 1_000_000, ProjectTPM: 3000, Clock: clk})
	dir := t.TempDir()
	o := baseOptions(dir+"/out.jsonl", writeLines(t, dir, "in.jsonl", chatLines("p", "gpt-4o-mini", 20, 300)))
	o.Client, o.Clock, o.MaxConcurrent = simClient(srv), clk, 4
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != 20 || total429(srv.Sim.Stats()) > 1 {
		t.Errorf("succeeded %d, 429s %v", sum.Succeeded, srv.Sim.Stats().RateLimited)
	}
	if l := sum.Models[0].TPMLimit; l != 3000 {
		t.Errorf("TPM limit %d, want the project's 3000", l)
	}
}

// The server's own TPM charge is measured from x-ratelimit-remaining-tokens
// deltas: against the simulator charging as oairl estimates, the ratio is
// 1; against one charging by characters (the rate-limits guide's wording)
// it is the true ratio, and once steady, pacing follows it (fewer 429s
// than without).
func TestRunMeasuresServerCharge(t *testing.T) {
	prompt := strings.Repeat("hello ", 200)
	var lines []string
	for i := 0; i < 60; i++ {
		lines = append(lines, fmt.Sprintf(`{"custom_id": "c%d", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": %q}]}}`, i, prompt))
	}
	runAt := func(rule string) (*Summary, sim.Stats) {
		t.Helper()
		// 100×: a millisecond of wall-time jitter is 10 tokens of refill.
		clk := clock.Scaled(100)
		srv := simtest.New(t, sim.Config{Tier: "none", TPM: 6000, ChargeRule: rule, Clock: clk})
		dir := t.TempDir()
		o := baseOptions(dir+"/out.jsonl", writeLines(t, dir, "in.jsonl", lines))
		o.Client, o.Clock, o.MaxConcurrent, o.TPM = simClient(srv), clk, 1, 6000
		sum, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Succeeded != 60 {
			t.Fatalf("%s: %d succeeded", rule, sum.Succeeded)
		}
		return sum, srv.Sim.Stats()
	}
	same, _ := runAt("")
	if sc := same.ServerCharge; sc.Samples < 20 || sc.Ratio < 0.95 || sc.Ratio > 1.05 {
		t.Errorf("same rule: %+v", sc)
	}
	// The true ratio: the simulator's charge (body bytes / 4) over oairl's.
	chars, st := runAt(sim.ChargeRuleChars)
	est := float64(same.Models[0].Charged) / 60
	want := float64(st.GoodCharged) / float64(st.GoodRequests) / est
	sc := chars.ServerCharge
	if sc.Samples < 20 || sc.Ratio < want*0.95 || sc.Ratio > want*1.05 || !sc.Followed {
		t.Errorf("chars rule: %+v, want ratio ~%.3f followed", sc, want)
	}
	t.Logf("same rule: %+v; chars rule: %+v (true ratio %.3f), 429s %v", same.ServerCharge, sc, want, st.RateLimited)
	var out strings.Builder
	_ = chars.WriteTable(&out, false)
	if !strings.Contains(out.String(), fmt.Sprintf("the server charged %.2f× oairl's estimate on %d requests", sc.Ratio, sc.Samples)) {
		t.Errorf("summary:\n%s", out.String())
	}
}

// Concurrent requests reach the server in another order than they were
// sent: against the simulator charging exactly oairl's estimate, the
// measured ratio stays ~1 and pacing does not follow it (breaker2 F7:
// pairing by send order and dropping negative deltas read 2–3.5×).
func TestRunServerChargeConcurrent(t *testing.T) {
	var lines []string
	for i := 0; i < 200; i++ {
		prompt := strings.Repeat("hello ", 100+i%7*20)
		lines = append(lines, fmt.Sprintf(`{"custom_id": "c%d", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": %q}]}}`, i, prompt))
	}
	clk := clock.Scaled(100)
	srv := simtest.New(t, sim.Config{Tier: "none", TPM: 20000, Clock: clk, Latency: 3 * time.Second})
	dir := t.TempDir()
	o := baseOptions(dir+"/out.jsonl", writeLines(t, dir, "in.jsonl", lines))
	o.Client, o.Clock, o.MaxConcurrent, o.TPM = simClient(srv), clk, 50, 20000
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != 200 {
		t.Fatalf("%d succeeded", sum.Succeeded)
	}
	sc := sum.ServerCharge
	t.Logf("server charge %+v, 429s %v", sc, srv.Sim.Stats().RateLimited)
	if sc.Samples > 0 && (sc.Ratio < 0.95 || sc.Ratio > 1.05) {
		t.Errorf("ratio %.3f over %d samples, want ~1 (the server charges the estimate)", sc.Ratio, sc.Samples)
	}
	if sc.Samples < 20 {
		t.Errorf("only %d samples", sc.Samples)
	}
	if sc.Followed {
		t.Errorf("pacing followed a ratio of %.3f", sc.Ratio)
	}
}

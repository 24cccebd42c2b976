package sim_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/sim"
)

// The project's token bucket binds before the organization's: headers
// report both windows, the 429 names the project, and diagnose reads it
// as a project limit.
func TestProjectTPM(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "1", ProjectTPM: 1000})
	ok := post(t, srv, "/chat/completions", chat("gpt-4o", 600, "hi"))
	if ok.Status != 200 || hdrInt(t, ok, "x-ratelimit-limit-project-tokens") != 1000 || hdrInt(t, ok, "x-ratelimit-limit-tokens") != 30000 {
		t.Fatalf("first: %d %v", ok.Status, ok.Header)
	}
	if rem := hdrInt(t, ok, "x-ratelimit-remaining-project-tokens"); rem > 400 || rem < 380 {
		t.Errorf("remaining project tokens %d, want ~1000-608", rem)
	}
	r := post(t, srv, "/chat/completions", chat("gpt-4o", 600, "hi"))
	if r.Status != 429 || !strings.Contains(string(r.Body), "in project proj_simulated0000 organization org-simulated0000 on tokens per min (TPM): Limit 1000") {
		t.Fatalf("second: %d %s", r.Status, r.Body)
	}
	f := diagnose.Classify(r.Status, r.Header, r.Body, t0)
	if f.Verdict != diagnose.TPMLimited || f.Scope != "project" || f.RateLimits.Binding() != "project" {
		t.Errorf("diagnose: %s scope %q binding %q", f.Verdict, f.Scope, f.RateLimits.Binding())
	}
	if big := post(t, srv, "/chat/completions", chat("gpt-4o", 2000, "hi")); big.Status != 429 || !strings.Contains(string(big.Body), "Request too large for gpt-4o in project") {
		t.Errorf("over the project limit: %d %s", big.Status, big.Body)
	}
}

// --flex-unavailable 1: every flex request gets 429 resource_unavailable
// and nothing is charged; other requests are served.
func TestFlexUnavailable(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "1", FlexUnavailable: 1})
	flex := `{"model":"gpt-4o","service_tier":"flex","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	r := post(t, srv, "/chat/completions", flex)
	if r.Status != 429 || r.code(t) != "resource_unavailable" {
		t.Fatalf("flex: %d %s", r.Status, r.Body)
	}
	if f := diagnose.Classify(r.Status, r.Header, r.Body, t0); f.Verdict != diagnose.FlexUnavailable || !f.Retryable {
		t.Errorf("diagnose: %s", f.Verdict)
	}
	ok := post(t, srv, "/chat/completions", chat("gpt-4o", 10, "hi"))
	if ok.Status != 200 || hdrInt(t, ok, "x-ratelimit-remaining-requests") != 499 {
		t.Errorf("auto after a flex miss: %d remaining %s (the miss must not be charged)", ok.Status, ok.Header.Get("x-ratelimit-remaining-requests"))
	}
	if srv.Sim.Stats().RateLimited[sim.LimitFlex] != 1 {
		t.Errorf("stats %v", srv.Sim.Stats().RateLimited)
	}
}

// Admin API: the configured limits per model, for admin keys only.
func TestAdminProjectRateLimits(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "1", ProjectTPM: 20000})
	path := srv.URL + "/organization/projects/proj_simulated0000/rate_limits"
	if r := do(t, "GET", path, "", nil, testKey); r.Status != 401 {
		t.Errorf("project key: %d", r.Status)
	}
	if r := do(t, "GET", srv.URL+"/organization/projects/proj_other/rate_limits", "", nil, "sk-admin-test"); r.Status != 404 {
		t.Errorf("other project: %d", r.Status)
	}
	type page struct {
		Object string
		Data   []struct {
			Object, ID, Model string
			RPM               int64 `json:"max_requests_per_1_minute"`
			TPM               int64 `json:"max_tokens_per_1_minute"`
			Batch             int64 `json:"batch_1_day_max_input_tokens"`
		}
		FirstID string `json:"first_id"`
		LastID  string `json:"last_id"`
		HasMore bool   `json:"has_more"`
	}
	r := do(t, "GET", path+"?limit=2", "", nil, "sk-admin-test")
	p := decode[page](t, r.Body)
	if r.Status != 200 || p.Object != "list" || len(p.Data) != 2 || !p.HasMore || p.LastID != p.Data[1].ID {
		t.Fatalf("page 1: %d %s", r.Status, r.Body)
	}
	var all []string
	found := false
	after := ""
	for i := 0; i < 100; i++ {
		r := do(t, "GET", path+"?limit=10&after="+after, "", nil, "sk-admin-test")
		p := decode[page](t, r.Body)
		for _, d := range p.Data {
			all = append(all, d.Model)
			if d.Model == "gpt-4o" {
				found = true
				// Tier 1 gpt-4o: 500 RPM, 30,000 TPM capped by the project's 20,000.
				if d.RPM != 500 || d.TPM != 20000 || d.Batch != 90000 || d.Object != "project.rate_limit" {
					t.Errorf("gpt-4o: %+v", d)
				}
			}
		}
		if !p.HasMore {
			break
		}
		after = p.LastID
	}
	if !found || len(all) < 20 {
		t.Errorf("models %v", all)
	}
}

// Like Azure: deployment paths with api-version, the api-key header,
// bare-second resets, retry-after-ms and code "429" bodies.
func TestLikeAzure(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Like: sim.LikeAzure, RPM: 60, TPM: 1000})
	root := strings.TrimSuffix(srv.URL, "/v1")
	send := func(path string) result {
		t.Helper()
		req, _ := http.NewRequest("POST", root+path, strings.NewReader(chat("ignored", 600, "hi")))
		req.Header.Set("api-key", testKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&b)
		return result{resp.StatusCode, resp.Header, b}
	}
	if r := send("/openai/deployments/gpt-4o/chat/completions"); r.Status != 404 {
		t.Errorf("no api-version: %d", r.Status)
	}
	ok := send("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")
	if ok.Status != 200 || !strings.Contains(string(ok.Body), `"model":"gpt-4o`) {
		t.Fatalf("ok: %d %s", ok.Status, ok.Body)
	}
	// 60 RPM is 10 per 10 s window; resets are whole seconds.
	if hdrInt(t, ok, "x-ratelimit-limit-requests") != 10 || ok.Header.Get("x-ms-region") == "" {
		t.Errorf("headers %v", ok.Header)
	}
	if v := ok.Header.Get("x-ratelimit-reset-tokens"); strings.ContainsAny(v, "hms") {
		t.Errorf("reset %q, want bare seconds", v)
	}
	r := send("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")
	if r.Status != 429 || r.Header.Get("retry-after-ms") == "" || !strings.Contains(string(r.Body), `"code":"429"`) {
		t.Fatalf("429: %d %v %s", r.Status, r.Header, r.Body)
	}
	f := diagnose.Classify(r.Status, r.Header, r.Body, t0)
	if f.Verdict != diagnose.TPMLimited || f.Provider != "azure" || f.WaitSource != "retry-after-ms" {
		t.Errorf("diagnose: %s %s %s", f.Verdict, f.Provider, f.WaitSource)
	}
}

// Like Groq: daily request headers and a 413 for a request over TPM.
func TestLikeGroq(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Like: sim.LikeGroq, RPM: 30, TPM: 1000})
	ok := post(t, srv, "/chat/completions", chat("gpt-4o", 10, "hi"))
	if hdrInt(t, ok, "x-ratelimit-limit-requests") != 14400 || ok.Header.Get("x-groq-region") == "" {
		t.Errorf("headers %v", ok.Header)
	}
	big := post(t, srv, "/chat/completions", chat("gpt-4o", 5000, "hi"))
	if big.Status != 413 || !strings.Contains(string(big.Body), "Request too large for model `gpt-4o`") {
		t.Fatalf("too large: %d %s", big.Status, big.Body)
	}
	f := diagnose.Classify(big.Status, big.Header, big.Body, t0)
	if f.Verdict != diagnose.RequestTooLarge || f.Provider != "groq" || f.Requested < 5000 {
		t.Errorf("diagnose: %s %s R%d", f.Verdict, f.Provider, f.Requested)
	}
	post(t, srv, "/chat/completions", chat("gpt-4o", 900, "hi"))
	r := post(t, srv, "/chat/completions", chat("gpt-4o", 900, "hi"))
	if r.Status != 429 || !strings.Contains(string(r.Body), "Requested ~") {
		t.Fatalf("tpm: %d %s", r.Status, r.Body)
	}
	f = diagnose.Classify(r.Status, r.Header, r.Body, t0)
	if f.Verdict != diagnose.TPMLimited || !f.RateLimits.Requests.Daily || f.Wait <= 0 || f.Wait > time.Minute {
		t.Errorf("diagnose: %s daily %v wait %v", f.Verdict, f.RateLimits.Requests.Daily, f.Wait)
	}
}

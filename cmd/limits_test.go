package cmd

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// TestLimitsPull: `oairl limits pull` reads the project's limits from the
// Admin API (the simulator's), writes them without the key, and count and
// run then use them instead of the public tier table, saying so; an
// explicit --tier still wins; a non-admin key is exit 4.
func TestLimitsPull(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "1", ProjectTPM: 20000})
	dir := t.TempDir()
	limitsFile := filepath.Join(dir, "limits.json")
	const adminKey = "sk-admin-secret-0000000000000000"
	env := map[string]string{"OPENAI_ADMIN_KEY": adminKey, "OPENAI_BASE_URL": srv.URL, "OAIRL_LIMITS": limitsFile,
		"OPENAI_PROJECT_ID": "proj_simulated0000", "OPENAI_API_KEY": "sk-x"}

	f, out, errOut := newTestFactory(env)
	if code := run(f, context.Background(), []string{"limits", "pull"}); code != exitcode.OK {
		t.Fatalf("pull: exit %d\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(limitsFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b)+out.String()+errOut.String(), adminKey) {
		t.Fatal("admin key printed or stored")
	}
	var doc struct {
		ProjectID string `json:"project_id"`
		Models    []struct {
			Model string
			TPM   int64 `json:"max_tokens_per_1_minute"`
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range doc.Models {
		found = found || m.Model == "gpt-4o" && m.TPM == 20000
	}
	if doc.ProjectID != "proj_simulated0000" || !found || !strings.Contains(out.String(), "gpt-4o\t500\t20000\t") {
		t.Fatalf("limits file %s\nstdout %s", b, out)
	}

	in := filepath.Join(dir, "in.jsonl")
	line := `{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}}` + "\n"
	if err := os.WriteFile(in, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	tpm := func(args ...string) (int64, string) {
		t.Helper()
		f, out, errOut := newTestFactory(env)
		if code := run(f, context.Background(), append([]string{"count", in, "--json"}, args...)); code != exitcode.OK {
			t.Fatalf("count: exit %d\n%s", code, errOut)
		}
		var d struct {
			ByModel []struct {
				Quota *struct{ TPM int64 }
			} `json:"by_model"`
		}
		if err := json.Unmarshal([]byte(out.String()), &d); err != nil || d.ByModel[0].Quota == nil {
			t.Fatalf("%v: %s", err, out)
		}
		return d.ByModel[0].Quota.TPM, errOut.String()
	}
	if got, stderr := tpm(); got != 20000 || !strings.Contains(stderr, "using project proj_simulated0000's limits pulled from the Admin API") {
		t.Errorf("count with a limits file: TPM %d, stderr %q", got, stderr)
	}
	if got, stderr := tpm("--tier", "1"); got != 30000 || strings.Contains(stderr, "pulled") {
		t.Errorf("count --tier 1: TPM %d, stderr %q", got, stderr)
	}

	f, out, errOut = newTestFactory(env)
	if code := run(f, context.Background(), []string{"run", in, "-o", filepath.Join(dir, "out.jsonl"), "--dry-run"}); code != exitcode.OK ||
		!strings.Contains(errOut.String(), "not the public tier table") {
		t.Errorf("run --dry-run: exit %d\n%s\n%s", code, out, errOut)
	}

	env["OPENAI_ADMIN_KEY"] = "sk-proj-notadmin-000000000000"
	f, out, errOut = newTestFactory(env)
	if code := run(f, context.Background(), []string{"limits", "pull", "-o", filepath.Join(dir, "x.json")}); code != exitcode.Auth ||
		!strings.Contains(errOut.String(), "admin key") || strings.Contains(errOut.String(), "sk-proj-notadmin-000000000000") {
		t.Errorf("non-admin key: exit %d\n%s", code, errOut)
	}
}

// TestDiagnoseProviderFlag: --provider groq reads a saved answer's request
// headers as per day even without a Groq fingerprint.
func TestDiagnoseProviderFlag(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.http")
	capture := "HTTP/1.1 429 Too Many Requests\ncontent-type: application/json\nretry-after: 3\n" +
		"x-ratelimit-limit-requests: 14400\nx-ratelimit-remaining-requests: 1000\nx-ratelimit-reset-requests: 7m48s\n" +
		"x-ratelimit-limit-tokens: 12000\nx-ratelimit-remaining-tokens: 996\nx-ratelimit-reset-tokens: 2.635s\n\n" +
		`{"error":{"message":"Rate limit reached on tokens per minute (TPM): Limit 12000, Used 11004, Requested 1523.","type":"tokens","code":"rate_limit_exceeded"}}` + "\n"
	if err := os.WriteFile(path, []byte(capture), 0o644); err != nil {
		t.Fatal(err)
	}
	daily := func(args ...string) bool {
		t.Helper()
		f, out, errOut := newTestFactory(nil)
		run(f, context.Background(), append([]string{"diagnose", path, "--json"}, args...))
		var doc struct {
			Findings []struct {
				RateLimits struct {
					Requests struct{ Daily bool }
				} `json:"rate_limits"`
			}
		}
		if err := json.Unmarshal([]byte(out.String()), &doc); err != nil || len(doc.Findings) != 1 {
			t.Fatalf("%v\n%s\n%s", err, out, errOut)
		}
		return doc.Findings[0].RateLimits.Requests.Daily
	}
	if daily() || !daily("--provider", "groq") {
		t.Errorf("daily without/with --provider groq: %v %v", daily(), daily("--provider", "groq"))
	}
}

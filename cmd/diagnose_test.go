package cmd

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/iostreams"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

const diagTestKey = "sk-diagnose-secret-key-0123456789"

type diagResult struct {
	code        int
	out, errOut string
}

// diagRun runs `oairl ARGS` through the real entry point (exit-code mapping
// included) with the given environment and stdin.
func diagRun(t *testing.T, tty bool, stdin string, env map[string]string, args ...string) diagResult {
	t.Helper()
	ios, in, out, errOut := iostreams.Test()
	in.WriteString(stdin)
	ios.SetStdoutTTY(tty)
	f := NewFactory(ios, func(k string) string { return env[k] }, "test")
	code := run(f, context.Background(), args)
	r := diagResult{code, out.String(), errOut.String()}
	if strings.Contains(r.out+r.errOut, diagTestKey) {
		t.Errorf("the API key was printed:\n%s\n%s", r.out, r.errOut)
	}
	return r
}

func TestNewCmdDiagnose(t *testing.T) {
	tests := []struct {
		args    string
		want    DiagnoseOptions
		wantErr string
	}{
		{args: "", want: DiagnoseOptions{Model: "gpt-4o-mini", Format: "table"}},
		{args: "--model o3 --json --redact", want: DiagnoseOptions{Model: "o3", Format: "json", Redact: true}},
		{args: "--from saved.txt --format json", want: DiagnoseOptions{Model: "gpt-4o-mini", From: "saved.txt", Format: "json"}},
		{args: "saved.txt", want: DiagnoseOptions{Model: "gpt-4o-mini", From: "saved.txt", Format: "table"}},
		{args: "--from -", want: DiagnoseOptions{Model: "gpt-4o-mini", From: "-", Format: "table"}},
		{args: "--probe-concurrency 5 --yes", want: DiagnoseOptions{Model: "gpt-4o-mini", Format: "table", ProbeConcurrency: 5, Yes: true}},
		{args: "--probe-concurrency 5", wantErr: "costs tokens"},
		{args: "--probe-concurrency -1 --yes", wantErr: "between 1 and 1000"},
		{args: "--format yaml", wantErr: "valid formats are table, json"},
		{args: "--json --format table", wantErr: "cannot be combined"},
		{args: "a.txt --from b.txt", wantErr: "not both"},
		{args: "--from a.txt --model gpt-4o", wantErr: "live diagnosis"},
		{args: "a b", wantErr: "accepts at most 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			ios, _, _, _ := iostreams.Test()
			f := NewFactory(ios, func(string) string { return "" }, "test")
			var got *DiagnoseOptions
			c := newDiagnoseCmd(f, func(o *DiagnoseOptions) error { got = o; return nil })
			c.SetArgs(strings.Fields(tt.args))
			c.SetOut(ios.Out)
			c.SetErr(ios.ErrOut)
			err := c.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Model != tt.want.Model || got.From != tt.want.From || got.Format != tt.want.Format ||
				got.Redact != tt.want.Redact || got.ProbeConcurrency != tt.want.ProbeConcurrency || got.Yes != tt.want.Yes {
				t.Errorf("options = %+v, want %+v", *got, tt.want)
			}
		})
	}
	// Usage errors exit 2 through Main's mapping.
	if r := diagRun(t, false, "", nil, "diagnose", "--probe-concurrency", "3"); r.code != exitcode.Usage || !strings.Contains(r.errOut, "costs tokens") {
		t.Errorf("probe without --yes: exit %d, stderr %q", r.code, r.errOut)
	}
}

func diagSimEnv(t *testing.T, cfg sim.Config) map[string]string {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = clock.NewFake(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC))
	}
	srv := simtest.New(t, cfg)
	return map[string]string{"OPENAI_API_KEY": diagTestKey, "OPENAI_BASE_URL": srv.URL}
}

// TestDiagnoseLiveSim runs `oairl diagnose` against the in-process
// simulator in each fault mode.
func TestDiagnoseLiveSim(t *testing.T) {
	tests := []struct {
		name    string
		cfg     sim.Config
		args    []string
		repeat  int // run this many times, check the last
		code    int
		verdict string
	}{
		{"ok", sim.Config{Tier: "1"}, nil, 1, exitcode.OK, "ok"},
		{"quota exhausted", sim.Config{QuotaExhausted: "insufficient_quota"}, nil, 1, exitcode.Quota, "quota_exhausted"},
		{"credit balance", sim.Config{QuotaExhausted: "credit_balance_exhausted"}, nil, 1, exitcode.Quota, "quota_exhausted"},
		{"invalid key", sim.Config{InvalidKey: true}, nil, 1, exitcode.Auth, "auth_failed"},
		{"unknown model", sim.Config{}, []string{"--model", "gpt-nope"}, 1, exitcode.Auth, "model_unavailable"},
		{"drained tpm", sim.Config{RPM: 1000, TPM: 30}, nil, 6, exitcode.RateLimited, "tpm_limited"},
		{"drained rpm", sim.Config{RPM: 2, TPM: 100000}, nil, 3, exitcode.RateLimited, "rpm_limited"},
		{"slow down", sim.Config{RPM: 10, TPM: 100000, SlowDown: true}, nil, 2, exitcode.RateLimited, "ramp_limited"},
		{"request too large", sim.Config{TPM: 2}, nil, 1, exitcode.Failure, "request_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := diagSimEnv(t, tt.cfg)
			var r diagResult
			for i := 0; i < tt.repeat; i++ {
				r = diagRun(t, false, "", env, append([]string{"diagnose", "--json"}, tt.args...)...)
			}
			if r.code != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", r.code, tt.code, r.out, r.errOut)
			}
			var doc struct {
				Findings []struct {
					Verdict   string `json:"verdict"`
					UsageTier string `json:"usage_tier"`
				} `json:"findings"`
				Summary struct {
					ExitCode int `json:"exit_code"`
				} `json:"summary"`
			}
			if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
				t.Fatalf("%v\n%s", err, r.out)
			}
			if len(doc.Findings) != 1 || doc.Findings[0].Verdict != tt.verdict || doc.Summary.ExitCode != tt.code {
				t.Errorf("findings %+v exit %d, want %s", doc.Findings, doc.Summary.ExitCode, tt.verdict)
			}
			if tt.name == "ok" && doc.Findings[0].UsageTier != "1" {
				t.Errorf("usage tier %q, want 1", doc.Findings[0].UsageTier)
			}
		})
	}
}

func TestDiagnoseLiveText(t *testing.T) {
	env := diagSimEnv(t, sim.Config{Tier: "1"})
	r := diagRun(t, true, "", env, "diagnose")
	for _, want := range []string{"verdict       ok", "usage tier    tier 1", "requests (per min)  500", "tokens (per min)", "org-simulated0000"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output lacks %q:\n%s", want, r.out)
		}
	}
	if !strings.Contains(r.errOut, "sending one minimal request") {
		t.Errorf("stderr = %q", r.errOut)
	}
	r = diagRun(t, true, "", env, "diagnose", "--redact", "--quiet")
	if strings.Contains(r.out, "simulated0000") || !strings.Contains(r.out, "org-…") || r.errOut != "" {
		t.Errorf("--redact --quiet: out %q err %q", r.out, r.errOut)
	}
	// No key: exit 4 with a hint, no request.
	r = diagRun(t, false, "", map[string]string{"OPENAI_BASE_URL": env["OPENAI_BASE_URL"]}, "diagnose")
	if r.code != exitcode.Auth || !strings.Contains(r.errOut, "OPENAI_API_KEY") {
		t.Errorf("no key: exit %d %q", r.code, r.errOut)
	}
}

func TestDiagnoseProbeConcurrencyCmd(t *testing.T) {
	env := diagSimEnv(t, sim.Config{Tier: "5", MaxConcurrent: 2, Latency: 200 * time.Second, Clock: clock.Scaled(1000)})
	r := diagRun(t, false, "", env, "diagnose", "--probe-concurrency", "6", "--yes")
	if r.code != exitcode.RateLimited || !strings.Contains(r.out, "probe\t6\t") || !strings.Contains(r.out, "concurrency_limit_bites=true") {
		t.Errorf("exit %d\n%s%s", r.code, r.out, r.errOut)
	}
}

func TestDiagnoseSavedCmd(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rpm := `{"error":{"message":"Rate limit reached for gpt-4o in organization org-XXXX on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}`
	quota := `Error code: 429 - {'error': {'message': 'You exceeded your current quota.', 'type': 'insufficient_quota', 'param': None, 'code': 'insufficient_quota'}}`
	auth := "error, status code: 401, status: 401 Unauthorized, message: Incorrect API key provided: " + diagTestKey + "."
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string
	}{
		{"rpm", []string{"--from", write("rpm.json", rpm)}, "", exitcode.RateLimited, "rpm_limited\ttrue\t20\tRPM\t3\t3\t1"},
		{"worst wins", []string{write("mix.txt", rpm+"\n"+quota+"\n")}, "", exitcode.Quota, "quota_exhausted"},
		{"auth worse than rate", []string{"--from", "-"}, rpm + "\n" + auth + "\n", exitcode.Auth, "auth_failed"},
		{"ok", []string{"--from", "-"}, "HTTP/2 200\ncontent-type: application/json\n\n{}\n", exitcode.OK, "stdin:1\t200\tok"},
		{"unreadable", []string{"--from", "-"}, "nothing to see\n", exitcode.Input, ""},
		{"missing file", []string{"--from", filepath.Join(dir, "nope")}, "", exitcode.Input, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := diagRun(t, false, tt.stdin, map[string]string{"OPENAI_API_KEY": diagTestKey}, append([]string{"diagnose"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.out, tt.out) {
				t.Errorf("exit %d (want %d)\n%s%s", r.code, tt.code, r.out, r.errOut)
			}
		})
	}
}

// TestDiagnoseEmptyFrom: an empty --from (an unset shell variable) is a
// usage error, never a silent live probe (a billed request). Breaker
// defect 12.
func TestDiagnoseEmptyFrom(t *testing.T) {
	calls := 0
	srv := diagSimEnv(t, sim.Config{})
	for _, args := range [][]string{{"diagnose", "--from", ""}, {"diagnose", "--from="}, {"diagnose", "--from", "  "}} {
		r := diagRun(t, false, "", srv, args...)
		if r.code != exitcode.Usage || !strings.Contains(r.errOut, "--from needs a file name") || r.out != "" {
			t.Errorf("%q: exit %d\n%s%s", args, r.code, r.out, r.errOut)
		}
		if strings.Contains(r.errOut, "sending one minimal request") {
			calls++
		}
	}
	if calls != 0 {
		t.Errorf("%d live probes sent", calls)
	}
}

// TestDiagnoseSecretsAndRedact: provider keys are masked always; --redact
// masks every organization/project id form (Anthropic's UUIDs in the 2026
// wording). Breaker defect 6.
func TestDiagnoseSecretsAndRedact(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	groq := write("key7.json", `{"error":{"message":"Incorrect API key provided: gsk_GROQSECRETKEY1234567890abcdefghijkl","type":"invalid_request_error","code":"invalid_api_key"}}`)
	anth := write("anth.json", `{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization (0dccdde6-aaaa-bbbb-cccc-123456789abc) of 30,000 input tokens per minute (org: 8016abcd-1111-2222-3333-444455556666, model: claude-opus-4-6)."},"request_id":"req_1"}`)
	for _, extra := range [][]string{nil, {"--redact"}, {"--json"}, {"--json", "--redact"}} {
		for _, tty := range []bool{false, true} {
			r := diagRun(t, tty, "", nil, append([]string{"diagnose", "--from", groq}, extra...)...)
			if r.code != exitcode.Auth || strings.Contains(r.out+r.errOut, "GROQSECRETKEY") {
				t.Errorf("groq key %v tty %v: exit %d\n%s", extra, tty, r.code, r.out)
			}
		}
	}
	for _, extra := range [][]string{{"--redact"}, {"--redact", "--json"}} {
		for _, tty := range []bool{false, true} {
			r := diagRun(t, tty, "", nil, append([]string{"diagnose", "--from", anth}, extra...)...)
			if r.code != exitcode.RateLimited || strings.Contains(r.out, "0dccdde6") || strings.Contains(r.out, "8016abcd") ||
				!strings.Contains(r.out, "claude-opus-4-6") {
				t.Errorf("anthropic ids %v tty %v: exit %d\n%s", extra, tty, r.code, r.out)
			}
		}
	}
	// Without --redact the ids are shown (they help support).
	if r := diagRun(t, false, "", nil, "diagnose", "--json", "--from", anth); !strings.Contains(r.out, "8016abcd") {
		t.Errorf("ids hidden without --redact:\n%s", r.out)
	}
}

// TestDiagnoseBreakerExitCodes: the exit codes of the breaker's inputs
// through the real entry point (defects 1, 2, 8, 16, 17, 24).
func TestDiagnoseBreakerExitCodes(t *testing.T) {
	tests := []struct {
		name, stdin string
		code        int
		out         string
	}{
		{"object then garbage", "{}garbage here\n", exitcode.Input, ""},
		{"empty object", "{}\n", exitcode.Input, ""},
		{"log line", `{"level":"info","msg":"starting worker"}` + "\n", exitcode.Input, ""},
		{"sse response.failed", `data: {"type":"response.failed","response":{"id":"resp_1","status":"failed","error":{"code":"rate_limit_exceeded","message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 30000, Requested 100. Please try again in 11.054s."}}}` + "\n",
			exitcode.RateLimited, "stdin:1\t-\ttpm_limited\ttrue\t11.054\t"},
		{"truncated json 429", "HTTP/1.1 429 Too Many Requests\ncontent-type: application/json\nretry-after: 5\n\n{\"error\": {\"message\": \"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29",
			exitcode.RateLimited, "stdin:1\t429\ttpm_limited\ttrue\t5\t"},
		{"mistral", `{"object": "error", "message": "Rate limit exceeded", "type": "rate_limited", "param": null, "code": "1300"}`, exitcode.RateLimited, "stdin:1\t-\trpm_limited"},
		{"batch expired", `{"id": "batch_req_2", "custom_id": "r3", "response": null, "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}}`, exitcode.Failure, "not_executed\ttrue"},
		{"cdn", "HTTP/1.1 429 Too Many Requests\ncontent-type: text/plain\nretry-after: 60\n\nerror code: 1015\n", exitcode.RateLimited, "edge_throttled\ttrue\t60"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := diagRun(t, false, tt.stdin, nil, "diagnose", "--from", "-")
			if r.code != tt.code || !strings.Contains(r.out, tt.out) || tt.code == exitcode.Input && r.out != "" {
				t.Errorf("exit %d (want %d)\n%s%s", r.code, tt.code, r.out, r.errOut)
			}
		})
	}
}

// Issue 14 §0, §6: a saved log of many responses is streamed as one valid
// JSON document (every finding, the summary over all of them), and a key
// echoed with JSON \u escapes is masked in it.
func TestDiagnoseSavedStreamJSON(t *testing.T) {
	dir := t.TempDir()
	const n = 2000
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i == n/2 {
			b.WriteString(`{"error":{"message":"Incorrect API key provided: \u0073k-proj-ESCAPEDSECRET0123456789.","type":"invalid_request_error","code":"invalid_api_key"}}` + "\n")
			continue
		}
		b.WriteString(`{"error":{"message":"Rate limit reached for gpt-4o in organization org-XXXX on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}` + "\n")
	}
	p := filepath.Join(dir, "log.jsonl")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--json"}, {}} {
		r := diagRun(t, false, "", nil, append([]string{"diagnose", "--from", p}, args...)...)
		if r.code != exitcode.Auth || strings.Contains(r.out+r.errOut, "ESCAPEDSECRET") {
			t.Fatalf("%v: exit %d, key shown: %v", args, r.code, strings.Contains(r.out+r.errOut, "ESCAPEDSECRET"))
		}
		if len(args) == 0 {
			if rows := strings.Count(r.out, "\n"); rows != n {
				t.Errorf("%d TSV rows, want %d", rows, n)
			}
			continue
		}
		var doc struct {
			Findings []json.RawMessage `json:"findings"`
			Summary  struct {
				Total    int            `json:"total"`
				Verdicts map[string]int `json:"verdicts"`
				Worst    string         `json:"worst_verdict"`
				ExitCode int            `json:"exit_code"`
			} `json:"summary"`
		}
		if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
			t.Fatalf("not one JSON document: %v", err)
		}
		if len(doc.Findings) != n || doc.Summary.Total != n || doc.Summary.Verdicts["rpm_limited"] != n-1 ||
			doc.Summary.Worst != "auth_failed" || doc.Summary.ExitCode != exitcode.Auth {
			t.Errorf("findings %d summary %+v", len(doc.Findings), doc.Summary)
		}
	}
}

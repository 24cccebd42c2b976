package diagnose

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/provider"
)

// TestProviderCases runs the captures of the 2026 API and of the other
// providers (cases B31, B33, B36, B41 in shared/cases/CASES.md, copied
// into testdata/cases; the others are described in testdata/cases/README)
// through ParseSaved and ClassifyAs: verdict, retryability, wait, figures,
// and the words of the summary the cases ask for.
func TestProviderCases(t *testing.T) {
	tests := []struct {
		file, hint string
		want       classifyRow
		summary    []string // substrings of the summary
		scope      string
		check      func(t *testing.T, f Finding)
	}{
		// B31a: Anthropic requests bucket at 0; the reset is an RFC 3339
		// time 12 s after the response's date, not after the local clock.
		{file: "B31a_429_requests_reset_only.http", want: classifyRow{verdict: RPMLimited, retry: true, wait: 12 * time.Second,
			source: "reset-requests", kind: "RPM", limit: 50, wantProvider: "anthropic"}, scope: "organization"},
		// B31b: the output-token bucket is the one exhausted; input is fine.
		{file: "B31b_429_output_tokens.http", want: classifyRow{verdict: TPMLimited, retry: true, wait: 41 * time.Second,
			source: "retry-after", kind: "TPM", limit: 8000, wantProvider: "anthropic"},
			summary: []string{"output tokens per minute exhausted (0/8,000)", "input tokens fine (27,500/30,000)", "smaller max_tokens"},
			check: func(t *testing.T, f Finding) {
				if f.RateLimits.InputTokens.Remaining != 27500 || f.RateLimits.OutputTokens.Limit != 8000 {
					t.Errorf("input/output windows %+v %+v", f.RateLimits.InputTokens, f.RateLimits.OutputTokens)
				}
			}},
		// B33a: Groq's request-too-large is a 413: never retried; the
		// server's own Requested figure is kept; request headers are daily.
		{file: "B33a_413_request_too_large.http", want: classifyRow{verdict: RequestTooLarge, kind: "TPM", limit: 8000, req: 32979,
			wantModel: "openai/gpt-oss-20b", wantProvider: "groq"},
			check: func(t *testing.T, f Finding) {
				if !f.RateLimits.Requests.Daily {
					t.Error("Groq request window not read as daily")
				}
			}},
		// B33b: "Requested ~1523" is an approximate 1,523; retry-after 3 s.
		{file: "B33b_429_tilde.http", want: classifyRow{verdict: TPMLimited, retry: true, wait: 3 * time.Second, source: "retry-after",
			kind: "TPM", limit: 12000, used: 11004, req: 1523, wantModel: "llama-3.3-70b-versatile", wantProvider: "groq"}},
		// B36: the embeddings per-request cap: a 400, not a rate limit.
		{file: "B36_400_max_tokens_per_request.http", want: classifyRow{verdict: RequestTooLarge, limit: 300000, req: 320000},
			summary: []string{"embeddings endpoint", "not a rate limit", "split"}},
		// B41a: Anthropic's credit error is a 400 but an account problem.
		{file: "B41a_anthropic_400_credit.http", want: classifyRow{verdict: QuotaExhausted, wantProvider: "anthropic"}},
		// B41b: OpenRouter's affordability 402: this request as sent, not
		// the account; the fix names the affordable max_tokens.
		{file: "B41b_openrouter_402_afford.http", want: classifyRow{verdict: Unaffordable, limit: 3919, req: 16384, wantProvider: "openrouter"},
			summary: []string{"OpenRouter can fund only 3,919 output tokens", "asked up to 16,384"},
			check: func(t *testing.T, f Finding) {
				if f.Fixes[0].Code != FixLowerMaxTokens || !strings.Contains(f.Fixes[0].Text, "3,919") {
					t.Errorf("fixes %+v", f.Fixes)
				}
			}},
		// B41c: plain out of credits.
		{file: "B41c_openrouter_402_credits.http", want: classifyRow{verdict: QuotaExhausted, wantProvider: "openrouter"}},
		// Flex capacity: its own verdict, retryable, not a rate limit.
		{file: "flex_resource_unavailable.http", want: classifyRow{verdict: FlexUnavailable, retry: true, wantProvider: "openai"},
			summary: []string{"not a rate limit", "not billed", `service_tier "auto"`},
			check: func(t *testing.T, f Finding) {
				if f.IsRateLimit() || f.ExitCode() == 6 {
					t.Error("resource_unavailable counted as a rate limit")
				}
			}},
		// A project limit: the project window beside the organization's.
		{file: "project_tokens.http", want: classifyRow{verdict: TPMLimited, retry: true, wait: 2 * time.Second, source: "retry-after",
			kind: "TPM", limit: 50000, used: 47949, req: 3006, wantProject: "proj_XXXX"}, scope: "project",
			summary: []string{"the project's limit"},
			check: func(t *testing.T, f Finding) {
				p := f.RateLimits.ProjectTokens
				if !p.Known || p.Limit != 50000 || p.Remaining != 0 || f.RateLimits.Tokens.Remaining != 1950000 || f.RateLimits.Binding() != "project" {
					t.Errorf("project window %+v, org %+v, binding %q", p, f.RateLimits.Tokens, f.RateLimits.Binding())
				}
			}},
		// Azure: retry-after-ms wins; the bare-second reset is parsed.
		{file: "azure_429_token_rate.http", hint: "azure", want: classifyRow{verdict: TPMLimited, retry: true, wait: 5400 * time.Millisecond,
			source: "retry-after-ms", kind: "TPM", wantProvider: "azure"},
			check: func(t *testing.T, f Finding) {
				if f.RateLimits.Tokens.Reset != 6*time.Second || f.RateLimits.Provider != "azure" {
					t.Errorf("tokens window %+v provider %q", f.RateLimits.Tokens, f.RateLimits.Provider)
				}
			}},
		// vLLM: integer code, exception-class type.
		{file: "vllm_400_context.http", want: classifyRow{verdict: ContextLengthExceeded, limit: 4096, req: 10778, wantProvider: "vllm"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			fh, err := os.Open(filepath.Join("testdata", "cases", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			caps, err := ParseSaved(fh)
			if err != nil || len(caps) != 1 {
				t.Fatalf("%d captures, %v", len(caps), err)
			}
			c := caps[0]
			f := ClassifyAs(tt.hint, c.Status, c.Header, c.Body, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			checkRow(t, f, tt.want)
			for _, s := range tt.summary {
				if !strings.Contains(f.Summary, s) {
					t.Errorf("summary %q lacks %q", f.Summary, s)
				}
			}
			if tt.scope != "" && f.Scope != tt.scope {
				t.Errorf("scope = %q, want %q", f.Scope, tt.scope)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

// TestProviderTableCaptures: every capture the provider table names as
// evidence exists in testdata/cases, so the table and the tests agree.
func TestProviderTableCaptures(t *testing.T) {
	for _, name := range provider.Names() {
		p, _ := provider.Get(name)
		if len(p.Sources) == 0 {
			t.Errorf("%s: no sources", name)
		}
		for _, c := range p.Captures {
			if _, err := os.Stat(filepath.Join("testdata", "cases", c)); err != nil {
				t.Errorf("%s: capture %s: %v", name, c, err)
			}
		}
	}
}

// TestClassifyAsGroq: with the provider known (oairl run --provider groq),
// Groq's request headers are per day even without a Groq fingerprint.
func TestClassifyAsGroq(t *testing.T) {
	h := hdr("x-ratelimit-limit-requests: 14400", "x-ratelimit-remaining-requests: 1000", "x-ratelimit-reset-requests: 7m48s",
		"x-ratelimit-limit-tokens: 12000", "x-ratelimit-remaining-tokens: 11000", "x-ratelimit-reset-tokens: 5s")
	if f := Classify(200, h, []byte(`{}`), testNow); f.RateLimits.Requests.Daily {
		t.Fatal("without a hint the request window is read as per minute")
	}
	f := ClassifyAs("groq", 200, h, []byte(`{}`), testNow)
	if !f.RateLimits.Requests.Daily || f.Provider != "groq" {
		t.Errorf("groq hint: daily %v provider %q", f.RateLimits.Requests.Daily, f.Provider)
	}
}

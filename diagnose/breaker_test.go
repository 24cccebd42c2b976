package diagnose

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/oairl/oairl/internal/exitcode"
)

// The inputs in testdata/breaker are the reproductions a breaker filed
// against diagnose (one file per defect); each test below names the defect.

func readBreaker(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "breaker", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// savedFindings parses in and classifies every capture.
func savedFindings(t *testing.T, in []byte) ([]Capture, []Finding) {
	t.Helper()
	caps, err := ParseSaved(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	fs := make([]Finding, len(caps))
	for i, c := range caps {
		fs[i] = ClassifyCapture(c, testNow)
	}
	return caps, fs
}

// Defect 1: a JSON object that is not an error and not a response is not a
// finding; text after the JSON value makes the line unreadable; nothing
// readable at all is ErrNoResponse (exit 3), never "ok".
func TestParseSavedNotAResponse(t *testing.T) {
	rnd := make([]byte, 2<<20)
	rand.New(rand.NewSource(1)).Read(rnd)
	// Random bytes with lines that decode as "{}" when read leniently.
	rnd = append(rnd, []byte("\n{}\n{ }\n{}\x8b\x00junk\n")...)
	for name, in := range map[string][]byte{
		"trailing garbage": []byte("{}garbage here\n"),
		"empty object":     []byte("{}\n"),
		"app log line":     readBreaker(t, "log1.txt"),
		"request body":     []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5}` + "\n"),
		"random bytes":     rnd,
		"error then junk":  []byte(`{"error":{"message":"x","type":"tokens","code":"rate_limit_exceeded"}} trailing` + "\n"),
	} {
		t.Run(name, func(t *testing.T) {
			caps, err := ParseSaved(bytes.NewReader(in))
			if !errors.Is(err, ErrNoResponse) {
				t.Errorf("err = %v, %d captures (first %+v); want ErrNoResponse", err, len(caps), caps)
			}
		})
	}
	// Unrelated JSON among real responses is skipped, not reported as ok.
	in := readBreaker(t, "log1.txt")
	in = append(in, []byte(`{"error":{"message":"m","type":"requests","code":"rate_limit_exceeded"}}`+"\n")...)
	caps, fs := savedFindings(t, in)
	if len(caps) != 1 || fs[0].Verdict != RPMLimited || caps[0].Line != 2 {
		t.Errorf("got %d captures %+v", len(caps), caps)
	}
	// A response object without a status is a finding: ok, status 0.
	caps, fs = savedFindings(t, []byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[]}`))
	if len(caps) != 1 || fs[0].Verdict != OK || fs[0].Status != 0 {
		t.Errorf("completion body: %+v %+v", caps, fs)
	}
}

// Defect 2: a rate limit inside an HTTP 200 (Responses API response.failed
// in an SSE stream, Realtime response.done, a bare SSE data line) is a rate
// limit with its wait, exit 6 (wire-formats.md §1.3, §7 item 8).
func TestRateLimitInside200(t *testing.T) {
	tests := []struct {
		file    string
		status  int
		source  string
		verdict Verdict
		wait    time.Duration
	}{
		{"resp_failed_200.http", 200, SourceCurl, TPMLimited, 11054 * time.Millisecond},
		{"rt.json", 0, SourceJSON, RPDLimited, 86400 * time.Millisecond},
		{"sse.txt", 0, SourceSSE, TPMLimited, 11054 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			caps, fs := savedFindings(t, readBreaker(t, tt.file))
			if len(caps) != 1 {
				t.Fatalf("%d captures", len(caps))
			}
			f := fs[0]
			if caps[0].Source != tt.source || f.Status != tt.status || f.Verdict != tt.verdict || !f.Retryable ||
				f.Wait != tt.wait || f.WaitSource != "message" || f.ExitCode() != exitcode.RateLimited {
				t.Errorf("got %s status %d %s retry %v wait %v %q exit %d", caps[0].Source, f.Status, f.Verdict, f.Retryable, f.Wait, f.WaitSource, f.ExitCode())
			}
		})
	}
	// Classify directly: the Realtime shape and an SSE body in a 200.
	rt := Classify(200, nil, readBreaker(t, "rt.json"), testNow)
	if rt.Verdict != RPDLimited || rt.Status != 200 {
		t.Errorf("realtime in 200: %s %d", rt.Verdict, rt.Status)
	}
	ok := Classify(200, nil, []byte("data: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"error\":null}}\n\ndata: [DONE]\n"), testNow)
	if ok.Verdict != OK {
		t.Errorf("completed stream: %s", ok.Verdict)
	}
	// A stream of successful chunks without a status is one ok finding.
	caps, fs := savedFindings(t, []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[]}\n\ndata: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[]}\n\ndata: [DONE]\n"))
	if len(caps) != 1 || fs[0].Verdict != OK {
		t.Errorf("ok stream: %d captures", len(caps))
	}
}

// Defect 8: truncated captures are classified from what is readable, say
// so, and are never called CDN throttling when the body is the API's JSON.
func TestTruncatedCaptures(t *testing.T) {
	caps, fs := savedFindings(t, readBreaker(t, "trunc_body.http"))
	f := fs[0]
	if len(caps) != 1 || f.Verdict != TPMLimited || !f.Truncated || f.Wait != 5*time.Second || f.Used != 0 || f.Limit != 30000 ||
		!strings.Contains(f.Summary, "cut short") {
		t.Errorf("trunc_body: %s truncated %v wait %v L%d U%d %q", f.Verdict, f.Truncated, f.Wait, f.Limit, f.Used, f.Summary)
	}
	caps, fs = savedFindings(t, readBreaker(t, "trunc_hdr.http"))
	f = fs[0]
	if len(caps) != 1 || f.Verdict == EdgeThrottled || !f.Truncated || len(caps[0].Body) != 0 || caps[0].Header.Get("retry-after") != "5" {
		t.Errorf("trunc_hdr: %s truncated %v body %q", f.Verdict, f.Truncated, caps[0].Body)
	}
	// Classify alone: a JSON content type or a JSON-looking body is never
	// a CDN page; the code is salvaged from a cut Anthropic body.
	if f := Classify(429, hdr("content-type: application/json"), []byte("upstream reset"), testNow); f.Verdict == EdgeThrottled {
		t.Errorf("json content type called CDN")
	}
	if f := Classify(429, nil, []byte(`[{"error":{"code":429,"message":"Resource exhausted"}}]`), testNow); f.Verdict == EdgeThrottled {
		t.Errorf("json array called CDN")
	}
	f = Classify(429, nil, []byte(`{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your organization's rate limit of 80,000 output tokens per minute. For details, refer to: https://docs.anth`), testNow)
	if f.Verdict != TPMLimited || !f.Truncated || f.Provider != "anthropic" {
		t.Errorf("cut anthropic body: %s truncated %v provider %q", f.Verdict, f.Truncated, f.Provider)
	}
	// A complete capture is not marked.
	if _, fs := savedFindings(t, readBreaker(t, "azure_hdr.http")); fs[0].Truncated {
		t.Error("complete capture marked truncated")
	}
}

// Defect 9: the reset of the window the verdict names is used whatever its
// spelling, even without limit/remaining headers.
func TestResetHeaderSpellings(t *testing.T) {
	_, fs := savedFindings(t, readBreaker(t, "azure_hdr.http"))
	if f := fs[0]; f.Verdict != TPMLimited || f.Wait != 55*time.Second || f.WaitSource != "reset-tokens" {
		t.Errorf("azure x-rate-limit-reset-tokens: %s %v %q", f.Verdict, f.Wait, f.WaitSource)
	}
	body := []byte(`{"error":{"message":"Rate limit reached.","type":"tokens","code":"rate_limit_exceeded"}}`)
	f := Classify(429, hdr("x-ratelimit-reset-tokens_usage_based: 9s", "x-ratelimit-remaining-tokens_usage_based: 0", "x-ratelimit-limit-tokens_usage_based: 160000"), body, testNow)
	if f.Verdict != TPMLimited || f.Wait != 9*time.Second || f.WaitSource != "reset-tokens" || f.RateLimits.Tokens.Limit != 160000 {
		t.Errorf("tokens_usage_based: %s %v %q %+v", f.Verdict, f.Wait, f.WaitSource, f.RateLimits.Tokens)
	}
	// The usual header wins over the usage-based one.
	f = Classify(429, hdr("x-ratelimit-reset-tokens: 2s", "x-ratelimit-reset-tokens_usage_based: 9s"), body, testNow)
	if f.Wait != 2*time.Second {
		t.Errorf("precedence: %v", f.Wait)
	}
}

// Defect 16: Mistral's bodies (wire-formats.md §5) are rate limits.
func TestMistralBodies(t *testing.T) {
	for _, name := range []string{"36_mistral.json", "53_mistral_old.json"} {
		_, fs := savedFindings(t, readBreaker(t, name))
		if f := fs[0]; !f.IsRateLimit() || f.ExitCode() != exitcode.RateLimited || f.Status != 0 {
			t.Errorf("%s: %s status %d exit %d", name, f.Verdict, f.Status, f.ExitCode())
		}
	}
}

// Defect 17: Batch output/error lines: requests that never ran, and the
// response inside.
func TestBatchOutputLines(t *testing.T) {
	in := string(readBreaker(t, "bexp.jsonl")) +
		`{"id":"batch_req_3","custom_id":"r4","response":null,"error":{"code":"batch_cancelled","message":"This request was cancelled."}}` + "\n" +
		`{"id":"batch_req_4","custom_id":"r5","response":null,"error":{"code":"request_timeout","message":"The request timed out."}}` + "\n" +
		`{"id":"batch_req_5","custom_id":"r6","response":{"status_code":400,"request_id":"x","body":{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}},"error":null}` + "\n"
	caps, fs := savedFindings(t, []byte(in))
	want := []struct {
		v      Verdict
		retry  bool
		status int
	}{{NotExecuted, true, 0}, {NotExecuted, true, 0}, {ServerError, true, 0}, {ContextLengthExceeded, false, 400}}
	if len(caps) != len(want) {
		t.Fatalf("%d captures", len(caps))
	}
	for i, w := range want {
		if fs[i].Verdict != w.v || fs[i].Retryable != w.retry || fs[i].Status != w.status || len(fs[i].Fixes) == 0 {
			t.Errorf("line %d: %s retry %v status %d, want %s %v %d", caps[i].Line, fs[i].Verdict, fs[i].Retryable, fs[i].Status, w.v, w.retry, w.status)
		}
	}
	if !strings.Contains(fs[0].Summary, "batch_expired") || !strings.Contains(fs[1].Summary, "cancelled") {
		t.Errorf("summaries: %q / %q", fs[0].Summary, fs[1].Summary)
	}
}

// Defect 18: no status is invented for a bare body, and sub-millisecond
// positive waits round up to 1 ms instead of reading as 0.
func TestNoInventedStatusAndWaitFloor(t *testing.T) {
	caps, fs := savedFindings(t, readBreaker(t, "23_503.json"))
	if caps[0].Status != 0 || fs[0].Status != 0 || fs[0].Verdict != ServerOverloaded || strings.Contains(fs[0].Summary, "HTTP 500") {
		t.Errorf("bare overload body: capture %d finding %d %s %q", caps[0].Status, fs[0].Status, fs[0].Verdict, fs[0].Summary)
	}
	body := []byte(`{"error":{"message":"Rate limit reached.","type":"requests","code":"rate_limit_exceeded"}}`)
	for _, tc := range []struct {
		h      string
		source string
	}{
		{"retry-after: 0.0001", "retry-after"},
		{"retry-after: 0.0000000000001", "retry-after"},
		{"retry-after-ms: 0.2", "retry-after-ms"},
		{"x-ratelimit-reset-requests: 300us", "reset-requests"},
	} {
		f := Classify(429, hdr(tc.h), body, testNow)
		if f.Wait != time.Millisecond || f.WaitSource != tc.source {
			t.Errorf("%s: wait %v from %q, want 1ms from %q", tc.h, f.Wait, f.WaitSource, tc.source)
		}
	}
	// Zero is still "no hint".
	if f := Classify(429, hdr("retry-after: 0"), body, testNow); f.Wait != 0 || f.WaitSource != "" {
		t.Errorf("retry-after 0: %v %q", f.Wait, f.WaitSource)
	}
}

// Defect 19: Anthropic's 413 is a byte-size limit, not TPM.
func TestRequestTooLargeBytes(t *testing.T) {
	_, fs := savedFindings(t, readBreaker(t, "67_anth_413.http"))
	f := fs[0]
	if f.Verdict != RequestTooLarge || f.LimitKind != "" || f.Retryable || !strings.Contains(f.Summary, "bytes") ||
		strings.Contains(f.Summary, "tokens per minute") || f.Fixes[0].Code != FixShrinkRequest || strings.Contains(f.Fixes[0].Text, "per-minute") {
		t.Errorf("anthropic 413: %s kind %q %q %+v", f.Verdict, f.LimitKind, f.Summary, f.Fixes)
	}
	_, fs = savedFindings(t, readBreaker(t, "66_ctx_vllm2.json"))
	if f := fs[0]; f.Verdict != ContextLengthExceeded || f.Limit != 4096 || f.Requested != 2778+8000 {
		t.Errorf("vllm: %s L%d R%d", f.Verdict, f.Limit, f.Requested)
	}
}

// Defect 20: UTF-16 captures (PowerShell ">") are decoded.
func TestUTF16Captures(t *testing.T) {
	le := readBreaker(t, "utf16.http")
	caps, fs := savedFindings(t, le)
	if len(caps) != 1 || fs[0].Verdict != RPMLimited || caps[0].Status != 429 || fs[0].Wait != 7*time.Second {
		t.Fatalf("utf-16 le: %d captures %+v", len(caps), fs)
	}
	// The same text as UTF-16 BE with a BOM, and as LE without one.
	u := utf16.Encode([]rune(strings.TrimPrefix(string(decodeMust(t, le)), "\ufeff")))
	be, nobom := []byte{0xFE, 0xFF}, []byte{}
	for _, c := range u {
		be = append(be, byte(c>>8), byte(c))
		nobom = append(nobom, byte(c), byte(c>>8))
	}
	for name, in := range map[string][]byte{"be": be, "le without bom": nobom} {
		caps, fs := savedFindings(t, in)
		if len(caps) != 1 || fs[0].Verdict != RPMLimited {
			t.Errorf("%s: %d captures", name, len(caps))
		}
	}
}

func decodeMust(t *testing.T, b []byte) []byte {
	t.Helper()
	d, ok := decodeUTF16(b)
	if !ok {
		t.Fatal("not detected as UTF-16")
	}
	return d
}

// Defect 24: a CDN 429 exits 6; Azure's "retry after 86400 seconds" is a
// quota that never recovers (wire-formats.md §3): quota_exhausted, not
// retryable, exit 5.
func TestEdgeAndAzureDayQuota(t *testing.T) {
	f := Classify(429, hdr("content-type: text/plain", "retry-after: 60", "cf-ray: 1"), []byte("error code: 1015"), testNow)
	if f.Verdict != EdgeThrottled || f.ExitCode() != exitcode.RateLimited || !f.Retryable {
		t.Errorf("cdn: %s exit %d", f.Verdict, f.ExitCode())
	}
	f = Classify(429, hdr("x-ms-region: East US", "apim-request-id: x"), []byte(`{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-08-01-preview have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 86400 seconds."}}`), testNow)
	if f.Verdict != QuotaExhausted || f.Retryable || f.Wait != 0 || f.ExitCode() != exitcode.Quota || f.Fixes[0].Code != FixRaiseAzureQuota {
		t.Errorf("azure 86400: %s retry %v wait %v exit %d %+v", f.Verdict, f.Retryable, f.Wait, f.ExitCode(), f.Fixes)
	}
	// A short Azure wait stays a rate limit.
	f = Classify(429, hdr("x-ms-region: East US"), []byte(`{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."}}`), testNow)
	if f.Verdict != TPMLimited || f.Wait != 6*time.Second {
		t.Errorf("azure 6s: %s %v", f.Verdict, f.Wait)
	}
}

// Defect 1, the rest of the kind: log lines with a "message" key and
// Python dicts that are not errors are not findings; the same "message"
// under an HTTP error status is still the error.
func TestNotAResponseLooseMessage(t *testing.T) {
	for _, in := range []string{
		`{"level":"info","message":"starting worker","ts":1}`,
		`{'level': 'info', 'msg': 'starting worker'}`,
		`{"timestamp":"2025-10-13T09:00:00Z","message":"rate limit reached, backing off"}`,
	} {
		if caps, err := ParseSaved(strings.NewReader(in)); !errors.Is(err, ErrNoResponse) {
			t.Errorf("%s: %d captures, err %v", in, len(caps), err)
		}
	}
	f := Classify(429, nil, []byte(`{"message":"Too many requests, rate limit exceeded","timestamp":"2025-10-13T09:00:00Z"}`), testNow)
	if !f.IsRateLimit() {
		t.Errorf("loose message under 429: %s", f.Verdict)
	}
	// A 200 event stream from Anthropic with an overloaded error event.
	f = Classify(200, nil, []byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n"), testNow)
	if f.Verdict != ServerOverloaded || f.Provider != "anthropic" {
		t.Errorf("anthropic stream error: %s %q", f.Verdict, f.Provider)
	}
}

// Defect 19, the rest of the kind: other context-length messages give the
// tokens the request needs and the window.
func TestContextLengthVariants(t *testing.T) {
	for _, tc := range []struct {
		body         string
		limit, req   int64
		wantProvider string
	}{
		{openaiErr("This model's maximum context length is 4096 tokens. However, you requested 5000 output tokens and your prompt contains at least 1 input tokens, for a total of at least 5001 tokens. Please reduce the length of the input prompt or the number of requested output tokens.", "BadRequestError", ""), 4096, 5001, ""},
		{`{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}`, 200000, 208310, "anthropic"},
		{`{"type":"error","error":{"type":"invalid_request_error","message":"input length and ` + "`max_tokens`" + ` exceed context limit: 188240 + 21333 > 200000, decrease input length or ` + "`max_tokens`" + ` and try again"}}`, 200000, 188240 + 21333, "anthropic"},
	} {
		f := Classify(400, nil, []byte(tc.body), testNow)
		if f.Verdict != ContextLengthExceeded || f.Limit != tc.limit || f.Requested != tc.req || f.Retryable {
			t.Errorf("%s: %s L%d R%d", tc.body, f.Verdict, f.Limit, f.Requested)
		}
	}
}

// Defect 16, the rest of the kind: Mistral's rate-limit headers are read,
// and a drained window names the dimension.
func TestMistralHeaders(t *testing.T) {
	h := hdr("x-ratelimit-limit-tokens-minute: 500000", "x-ratelimit-remaining-tokens-minute: 0", "x-ratelimit-limit-req-minute: 60", "x-ratelimit-remaining-req-minute: 30", "x-ratelimit-tokens-query-cost: 1200")
	f := Classify(429, h, readBreaker(t, "36_mistral.json"), testNow)
	if f.Verdict != TPMLimited || f.RateLimits.Provider != "mistral" || f.Provider != "mistral" || f.RateLimits.Tokens.Limit != 500000 || f.RateLimits.Requests.Remaining != 30 || !f.IsRateLimit() {
		t.Errorf("mistral headers: %s %q %q %+v", f.Verdict, f.Provider, f.RateLimits.Provider, f.RateLimits)
	}
}

// Defect 8, the rest of the kind: a bare JSON body or a Python SDK line cut
// short is classified from its readable part and marked truncated.
func TestTruncatedBareAndSDK(t *testing.T) {
	for _, in := range []string{
		`{"error": {"message": "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29`,
		`openai.RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29`,
	} {
		caps, fs := savedFindings(t, []byte(in))
		if len(caps) != 1 || fs[0].Verdict != TPMLimited || !fs[0].Truncated || fs[0].Used != 0 || fs[0].Limit != 30000 {
			t.Errorf("%s: %d captures %+v", in, len(caps), fs)
		}
	}
	// Cut JSON that is not an error stays unreadable.
	if _, err := ParseSaved(strings.NewReader(`{"level":"info","msg":"star`)); !errors.Is(err, ErrNoResponse) {
		t.Errorf("cut log line: %v", err)
	}
}

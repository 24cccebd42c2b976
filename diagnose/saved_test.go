package diagnose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/exitcode"
)

func TestParseSavedFormats(t *testing.T) {
	type want struct {
		status  int
		source  string
		line    int
		verdict Verdict
	}
	tests := []struct {
		name string
		in   string
		want []want
	}{
		{"curl several with HTTP/2 and 100 continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/2 429\r\nretry-after: 2\r\nx-request-id: req_1\r\n\r\n" +
			`{"error":{"message":"Rate limit reached for gpt-4o in organization org-X on tokens per min (TPM): Limit 30000, Used 29937, Requested 385. Please try again in 644ms.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}` +
			"\r\n\r\nHTTP/2 200\r\nx-ratelimit-limit-requests: 500\r\n\r\n{\"id\":\"x\",\n \"object\":\"chat.completion\"}\nHTTP/1.1 429 Too Many Requests\ncontent-type: text/plain\nretry-after: 60\n\nerror code: 1015\n",
			[]want{{429, SourceCurl, 3, TPMLimited}, {200, SourceCurl, 9, OK}, {429, SourceCurl, 14, EdgeThrottled}}},
		{"curl through a proxy", "HTTP/1.1 200 Connection established\r\n\r\nHTTP/2 429\r\nretry-after: 3\r\n\r\n" + `{"error":{"message":"m","type":"tokens","param":null,"code":"rate_limit_exceeded"}}` + "\r\n",
			[]want{{429, SourceCurl, 3, TPMLimited}}},
		{"curl -v", "* Connected\n> POST /v1/chat/completions HTTP/1.1\n> Host: api.openai.com\n>\n< HTTP/2 401\n< content-type: application/json\n<\n" +
			`{"error":{"message":"Incorrect API key provided: sk-XXXX.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}` + "\n",
			[]want{{401, SourceCurl, 5, AuthFailed}}},
		{"raw json pretty", "{\n  \"error\": {\n    \"message\": \"You exceeded your current quota, please check your plan and billing details.\",\n    \"type\": \"insufficient_quota\",\n    \"param\": null,\n    \"code\": \"insufficient_quota\"\n  }\n}\n",
			// No status in the capture: none is invented (status 0).
			[]want{{0, SourceJSON, 1, QuotaExhausted}}},
		{"jsonl bodies", `{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day"}}` + "\n" + `{"error":{"message":"x","type":"invalid_request_error","param":null,"code":"model_not_found"}}` + "\n",
			[]want{{0, SourceJSON, 1, RPDLimited}, {0, SourceJSON, 2, ModelUnavailable}}},
		{"python sdk", `openai.RateLimitError: Error code: 429 - {'error': {'message': "Rate limit reached for gpt-4o-mini in organization org-XXXX on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Don't panic.", 'type': 'requests', 'param': None, 'code': 'rate_limit_exceeded'}}`,
			[]want{{429, SourcePython, 1, RPMLimited}}},
		{"python quota", "Traceback (most recent call last):\n  File \"x.py\", line 3\nopenai.RateLimitError: Error code: 429 - {'error': {'message': 'You exceeded your current quota, please check your plan and billing details.', 'type': 'insufficient_quota', 'param': None, 'code': 'insufficient_quota'}}\n",
			[]want{{429, SourcePython, 3, QuotaExhausted}}},
		{"python batch error", "BatchError(code='token_limit_exceeded', line=None, message='Enqueued token limit reached for gpt-4o-mini in organization org-XXXX. Limit: 2,000,000 enqueued tokens. Please try again once some in_progress batches have been completed.', param=None)",
			[]want{{0, SourcePython, 1, BatchQueueFull}}},
		{"python 0.x and langchain", "openai.error.RateLimitError: Rate limit reached for default-gpt-3.5-turbo in organization org-XXXX on requests per min. Limit: 3 / min. Please try again in 20s. Contact us through our help center at help.openai.com if you continue to have issues.\n" +
			"Retrying langchain.llms.openai.completion_with_retry.<locals>._completion_with_retry in 4.0 seconds as it raised RateLimitError: You exceeded your current quota, please check your plan and billing details..\n" +
			"openai.error.InvalidRequestError: This model's maximum context length is 4097 tokens. However, your messages resulted in 4294 tokens. Please reduce the length of the messages.\n" +
			"openai.error.ServiceUnavailableError: The server is overloaded or not ready yet.\n",
			[]want{{429, SourcePython, 1, RPMLimited}, {429, SourcePython, 2, QuotaExhausted}, {400, SourcePython, 3, ContextLengthExceeded}, {503, SourcePython, 4, ServerOverloaded}}},
		{"go-openai", "2025/01/01 12:00:00 error, status code: 429, status: 429 Too Many Requests, message: Rate limit reached for gpt-4o in organization org-XXXX on tokens per min (TPM): Limit 30000, Used 29937, Requested 385. Please try again in 644ms.\n",
			[]want{{429, SourceGoOpenAI, 1, TPMLimited}}},
		{"go-openai quota", "error, status code: 429, status: 429 Too Many Requests, message: You exceeded your current quota, please check your plan and billing details.",
			[]want{{429, SourceGoOpenAI, 1, QuotaExhausted}}},
		{"node", "RateLimitError: 429 Rate limit reached for gpt-4o-mini in organization org-XXXX on requests per day (RPD): Limit 200, Used 200, Requested 1. Please try again in 7m12s.\n    at APIError.generate (node_modules/openai/error.js:44:20)\n",
			[]want{{429, SourceNode, 1, RPDLimited}}},
		{"node no body", "Error: 503 status code (no body)", []want{{503, SourceNode, 1, ServerOverloaded}}},
		{"batch output line", `{"id":"batch_req_1","custom_id":"a","response":{"status_code":429,"request_id":"r","body":{"error":{"message":"Rate limit reached for gpt-4o in organization org-X on tokens per min (TPM): Limit 30000, Used 30000, Requested 10. Please try again in 1s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}},"error":null}` + "\n" +
			`{"id":"batch_req_2","custom_id":"b","response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}`,
			[]want{{429, SourceJSON, 1, TPMLimited}, {0, SourceJSON, 2, NotExecuted}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps, err := ParseSaved(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(caps) != len(tt.want) {
				for _, c := range caps {
					t.Logf("capture %d %s line %d %q", c.Status, c.Source, c.Line, c.Body)
				}
				t.Fatalf("got %d captures, want %d", len(caps), len(tt.want))
			}
			for i, w := range tt.want {
				c := caps[i]
				f := Classify(c.Status, c.Header, c.Body, testNow)
				if c.Status != w.status || c.Source != w.source || c.Line != w.line || f.Verdict != w.verdict {
					t.Errorf("capture %d = status %d %s line %d %s, want %d %s line %d %s (body %q)",
						i, c.Status, c.Source, c.Line, f.Verdict, w.status, w.source, w.line, w.verdict, c.Body)
				}
			}
		})
	}
}

func TestParseSavedPreservesHeaders(t *testing.T) {
	caps, err := ParseSaved(strings.NewReader("HTTP/1.1 429 Too Many Requests\nDate: Mon, 13 Oct 2025 09:00:00 GMT\nretry-after: Mon, 13 Oct 2025 09:00:07 GMT\nopenai-project: proj_abcdefgh\n\n{\"error\":{\"message\":\"m\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}"))
	if err != nil {
		t.Fatal(err)
	}
	f := Classify(caps[0].Status, caps[0].Header, caps[0].Body, time.Now())
	if f.Wait != 7*time.Second || f.WaitSource != "retry-after-date" || f.Project != "proj_abcdefgh" {
		t.Errorf("got wait %v %s project %q", f.Wait, f.WaitSource, f.Project)
	}
}

func TestParseSavedUnreadable(t *testing.T) {
	for _, in := range []string{"", "hello world\nnothing here\n", "{\"error\": {broken"} {
		_, err := ParseSaved(strings.NewReader(in))
		if !errors.Is(err, ErrNoResponse) {
			t.Errorf("%q: err = %v, want ErrNoResponse", in, err)
		}
	}
	_, err := ParseSaved(iotestErrReader{})
	if err == nil || errors.Is(err, ErrNoResponse) {
		t.Errorf("read error: got %v", err)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, fmt.Errorf("disk on fire") }

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"6m0s", 6 * time.Minute, true}, {"1s", time.Second, true}, {"1.5s", 1500 * time.Millisecond, true},
		{"20ms", 20 * time.Millisecond, true}, {"0s", 0, true}, {"8.64s", 8640 * time.Millisecond, true},
		{"23h55m16.126s", 23*time.Hour + 55*time.Minute + 16126*time.Millisecond, true},
		{"1m26.4s", 86400 * time.Millisecond, true}, {"1.984999999s", 1984999999 * time.Nanosecond, true},
		{"9m38.016s", 9*time.Minute + 38016*time.Millisecond, true},
		{"55", 55 * time.Second, true}, {"0.5", 500 * time.Millisecond, true}, {"0", 0, true},
		{"", 0, false}, {"-1", 0, false}, {"soon", 0, false}, {"-5s", 0, false}, {"NaN", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseDuration(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseRateLimits(t *testing.T) {
	// Free tier: the request window is daily (wire-formats.md §1.1).
	rl := ParseRateLimits(hdr("x-ratelimit-limit-requests: 200", "x-ratelimit-remaining-requests: 0",
		"x-ratelimit-reset-requests: 23h55m16.126s", "x-ratelimit-limit-tokens: 40000", "x-ratelimit-reset-tokens: 34ms"))
	if !rl.Requests.Known || rl.Requests.Limit != 200 || rl.Requests.Remaining != 0 || !rl.Requests.Daily || rl.Provider != "openai" {
		t.Errorf("requests = %+v provider %q", rl.Requests, rl.Provider)
	}
	if !rl.Tokens.Known || rl.Tokens.Limit != 40000 || rl.Tokens.Remaining != -1 || rl.Tokens.Reset != 34*time.Millisecond || rl.Tokens.Daily {
		t.Errorf("tokens = %+v", rl.Tokens)
	}
	// Free tier after one request: 199 of 200 left, reset 7m12s: the
	// implied window is a day; a tier-1 RPM window is not.
	rl = ParseRateLimits(hdr("x-ratelimit-limit-requests: 200", "x-ratelimit-remaining-requests: 199", "x-ratelimit-reset-requests: 7m12s",
		"x-ratelimit-limit-tokens: 40000", "x-ratelimit-remaining-tokens: 39991", "x-ratelimit-reset-tokens: 13ms"))
	if !rl.Requests.Daily || rl.Tokens.Daily {
		t.Errorf("free tier after one request: requests daily %v, tokens daily %v", rl.Requests.Daily, rl.Tokens.Daily)
	}
	rl = ParseRateLimits(hdr("x-ratelimit-limit-requests: 500", "x-ratelimit-remaining-requests: 499", "x-ratelimit-reset-requests: 120ms"))
	if rl.Requests.Daily {
		t.Error("tier-1 RPM window marked daily")
	}
	// Azure: bare seconds, misspelled header, -1 sentinels.
	rl = ParseRateLimits(hdr("x-rate-limit-reset-tokens: 55", "x-ratelimit-remaining-requests: 79", "apim-request-id: x",
		"x-ratelimit-limit-tokens: -1", "x-ratelimit-remaining-tokens: -1"))
	if rl.Provider != "azure" || rl.Tokens.Known || rl.Tokens.Reset != 55*time.Second || rl.Requests.Remaining != 79 {
		t.Errorf("azure = %+v", rl)
	}
	// Groq: request headers are per day.
	rl = ParseRateLimits(hdr("x-groq-region: x", "x-ratelimit-limit-requests: 14400", "x-ratelimit-remaining-requests: 14370", "x-ratelimit-reset-requests: 2m59.56s"))
	if rl.Provider != "groq" || !rl.Requests.Daily {
		t.Errorf("groq = %+v", rl)
	}
	// Anthropic: RFC 3339 resets against the Date header; the scarcer of
	// the input/output buckets.
	rl = ParseRateLimits(hdr("date: Thu, 21 Aug 2025 12:40:00 GMT",
		"anthropic-ratelimit-requests-limit: 1000", "anthropic-ratelimit-requests-remaining: 999", "anthropic-ratelimit-requests-reset: 2025-08-21T12:40:01Z",
		"anthropic-ratelimit-input-tokens-limit: 80000", "anthropic-ratelimit-input-tokens-remaining: 70000", "anthropic-ratelimit-input-tokens-reset: 2025-08-21T12:40:59Z",
		"anthropic-ratelimit-output-tokens-limit: 16000", "anthropic-ratelimit-output-tokens-remaining: 1000", "anthropic-ratelimit-output-tokens-reset: 2025-08-21T12:40:30Z"))
	if rl.Provider != "anthropic" || rl.Requests.Limit != 1000 || rl.Requests.Reset != time.Second ||
		rl.Tokens.Limit != 16000 || rl.Tokens.Remaining != 1000 || rl.Tokens.Reset != 30*time.Second {
		t.Errorf("anthropic = %+v", rl)
	}
	if rl := ParseRateLimits(nil); rl.Requests.Known || rl.Provider != "" {
		t.Errorf("nil = %+v", rl)
	}
}

func TestExitCodes(t *testing.T) {
	tests := map[Verdict]int{
		OK: exitcode.OK, AuthFailed: exitcode.Auth, ModelUnavailable: exitcode.Auth, QuotaExhausted: exitcode.Quota,
		RPMLimited: exitcode.RateLimited, TPMLimited: exitcode.RateLimited, RPDLimited: exitcode.RateLimited,
		TPDLimited: exitcode.RateLimited, RampLimited: exitcode.RateLimited, ConcurrencyLimited: exitcode.RateLimited,
		RequestTooLarge: exitcode.Failure, ServerError: exitcode.Failure, ServerOverloaded: exitcode.Failure,
		NetworkError: exitcode.Failure, EdgeThrottled: exitcode.RateLimited, InvalidRequest: exitcode.Failure, NotExecuted: exitcode.Failure,
		ContextLengthExceeded: exitcode.Failure, BatchQueueFull: exitcode.RateLimited, Unknown: exitcode.Failure,
	}
	for v, want := range tests {
		if got := (Finding{Verdict: v}).ExitCode(); got != want {
			t.Errorf("%s: exit %d, want %d", v, got, want)
		}
	}
}

func TestClassifyTransportError(t *testing.T) {
	tests := []struct {
		err   error
		retry bool
		code  string
	}{
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true, "connection_refused"},
		{fmt.Errorf("post: %w", syscall.ECONNRESET), true, "connection_reset"},
		{fmt.Errorf("post: %w", io.EOF), true, "connection_closed_before_a_response"},
		{fmt.Errorf("post: %w", context.DeadlineExceeded), true, "timeout"},
		{fmt.Errorf("post: %w", context.Canceled), false, "cancelled"},
		{errors.New("tls: bad certificate"), true, "network_error"},
	}
	for _, tt := range tests {
		f := ClassifyTransportError(tt.err)
		if f.Verdict != NetworkError || f.Retryable != tt.retry || f.Code != tt.code || f.Summary == "" {
			t.Errorf("%v: %s retry=%v code=%q", tt.err, f.Verdict, f.Retryable, f.Code)
		}
	}
	if f := ClassifyTransportError(nil); f.Verdict != Unknown {
		t.Errorf("nil: %s", f.Verdict)
	}
}

func TestClassifyResponse(t *testing.T) {
	if f := ClassifyResponse(nil, nil, testNow); f.Verdict != Unknown {
		t.Errorf("nil response: %s", f.Verdict)
	}
}

func TestFormatWait(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 120 * time.Millisecond: "120ms", 1500 * time.Millisecond: "1.5s", 7 * time.Second: "7s",
		10 * time.Minute: "10m", 86400 * time.Millisecond: "1m26.4s", 9*time.Minute + 38016*time.Millisecond: "9m38s",
		time.Hour: "1h", 23*time.Hour + 55*time.Minute + 16*time.Second: "23h55m", 24 * time.Hour: "24h",
		90 * time.Minute: "1h30m",
	} {
		if got := FormatWait(d); got != want {
			t.Errorf("FormatWait(%v) = %q, want %q", d, got, want)
		}
	}
}

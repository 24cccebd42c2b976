// Package diagnose turns an OpenAI-compatible HTTP response (status, headers,
// body) or a transport error into a Finding: a verdict such as rpm_limited or
// quota_exhausted, whether retrying can help, how long the response says to
// wait, the parsed x-ratelimit-* windows, and the fixes most likely to help.
//
// It understands OpenAI, Azure OpenAI, Anthropic (anthropic-ratelimit-*),
// Groq (per-day request windows), vLLM and OpenRouter error shapes; see
// /work/shared/research/wire-formats.md for the captures this is tested on.
//
// ParseSaved reads saved responses (curl -i output, raw JSON bodies, Python
// SDK, go-openai and Node SDK log lines) for `oairl diagnose --from`.
package diagnose

import (
	"net/http"
	"time"

	"github.com/oairl/oairl/internal/exitcode"
)

// Verdict names what a response means. The values are stable (they appear
// in `oairl diagnose --json` and in run/batch results).
type Verdict string

// Verdicts.
const (
	OK                    Verdict = "ok"
	RPMLimited            Verdict = "rpm_limited"             // requests per minute exhausted
	TPMLimited            Verdict = "tpm_limited"             // tokens per minute exhausted
	RPDLimited            Verdict = "rpd_limited"             // requests per day exhausted
	TPDLimited            Verdict = "tpd_limited"             // tokens per day exhausted
	RequestTooLarge       Verdict = "request_too_large"       // one request exceeds the TPM limit by itself; never retryable
	RampLimited           Verdict = "ramp_limited"            // usage rising too fast ("slow down")
	ConcurrencyLimited    Verdict = "concurrency_limited"     // 429 while requests and tokens remain
	QuotaExhausted        Verdict = "quota_exhausted"         // insufficient_quota and billing codes; never retryable
	BatchQueueFull        Verdict = "batch_queue_full"        // Batch API enqueued-token limit (token_limit_exceeded)
	ContextLengthExceeded Verdict = "context_length_exceeded" // prompt + output exceed the context window
	AuthFailed            Verdict = "auth_failed"             // 401/403: key, organization, project, region
	ModelUnavailable      Verdict = "model_unavailable"       // model not found or not allowed for this key
	ServerOverloaded      Verdict = "server_overloaded"       // 503/529 or 429 server_error: retryable
	ServerError           Verdict = "server_error"            // other 5xx: retryable
	NetworkError          Verdict = "network_error"           // no HTTP response: retryable
	EdgeThrottled         Verdict = "edge_throttled"          // non-JSON 429 from a CDN/proxy (Cloudflare 1015)
	InvalidRequest        Verdict = "invalid_request"         // other 4xx: fix the request
	Unknown               Verdict = "unknown"
)

// Window is one x-ratelimit dimension (requests or tokens). Limit and
// Remaining are in requests or tokens; Reset is the time until the window
// refills fully, parsed from ResetRaw (the header verbatim). Known is false
// when the response carried no header for this dimension.
type Window struct {
	Limit     int64         `json:"limit"`
	Remaining int64         `json:"remaining"`
	Reset     time.Duration `json:"-"`
	ResetRaw  string        `json:"reset,omitempty"`
	Known     bool          `json:"known"`
}

// RateLimits are the parsed rate-limit headers of one response. Provider is
// "openai" (x-ratelimit-*; also Azure and Groq), "anthropic"
// (anthropic-ratelimit-*) or "" when none were present.
type RateLimits struct {
	Requests Window `json:"requests"`
	Tokens   Window `json:"tokens"`
	Provider string `json:"provider,omitempty"`
}

// Fix is one remedy. Code is a stable identifier (e.g. "lower_rpm"), Text
// one sentence for people.
type Fix struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// Finding is the diagnosis of one response.
//
// Wait is the delay the response itself implies (0 = none given); callers
// compare it with their own --max-wait and apply their own floor: a
// Retry-After of 0 counts as "no hint", never as "retry at once".
// WaitSource names where Wait came from: "retry-after-ms", "retry-after",
// "retry-after-date", "message", "reset-requests", "reset-tokens" or "".
//
// LimitKind ("RPM", "TPM", "RPD", "TPD" or "") and Limit, Used, Requested
// (requests or tokens) are parsed from the error message.
type Finding struct {
	Verdict    Verdict       `json:"verdict"`
	Retryable  bool          `json:"retryable"`
	Wait       time.Duration `json:"-"`
	WaitSource string        `json:"wait_source,omitempty"`

	Status       int    `json:"status"`
	Provider     string `json:"provider,omitempty"`
	Code         string `json:"code,omitempty"`
	Type         string `json:"type,omitempty"`
	Message      string `json:"message,omitempty"`
	Model        string `json:"model,omitempty"`
	Organization string `json:"organization,omitempty"`
	Project      string `json:"project,omitempty"`
	RequestID    string `json:"request_id,omitempty"`

	LimitKind string `json:"limit_kind,omitempty"`
	Limit     int64  `json:"limit,omitempty"`
	Used      int64  `json:"used,omitempty"`
	Requested int64  `json:"requested,omitempty"`

	RateLimits RateLimits `json:"rate_limits"`
	Summary    string     `json:"summary"`
	Fixes      []Fix      `json:"fixes"`
}

// Capture is one saved response read by ParseSaved. Source names the format
// it was read from: "curl -i", "json", "python-sdk", "go-openai" or
// "node-sdk". Line is the 1-based line where it starts.
type Capture struct {
	Status int
	Header http.Header
	Body   []byte
	Source string
	Line   int
}

// Classify diagnoses one HTTP response. now is used only when Retry-After
// is an HTTP-date and the response has no Date header.
func Classify(status int, h http.Header, body []byte, now time.Time) Finding {
	return classify(status, h, body, now)
}

// ClassifyResponse is Classify on resp's status and headers; body is the
// already-read body (resp.Body is not touched).
func ClassifyResponse(resp *http.Response, body []byte, now time.Time) Finding {
	if resp == nil {
		return Finding{Verdict: Unknown, Summary: "no response"}
	}
	return Classify(resp.StatusCode, resp.Header, body, now)
}

// ExitCode maps the verdict to oairl's exit codes: ok 0, auth/model 4,
// quota 5, rate limits 6, everything else 1.
func (f Finding) ExitCode() int {
	switch {
	case f.Verdict == OK:
		return exitcode.OK
	case f.Verdict == AuthFailed || f.Verdict == ModelUnavailable:
		return exitcode.Auth
	case f.Verdict == QuotaExhausted:
		return exitcode.Quota
	case f.IsRateLimit():
		return exitcode.RateLimited
	}
	return exitcode.Failure
}

// IsRateLimit reports whether the verdict is a rate limit (RPM, TPM, RPD,
// TPD, ramp or concurrency).
func (f Finding) IsRateLimit() bool {
	switch f.Verdict {
	case RPMLimited, TPMLimited, RPDLimited, TPDLimited, RampLimited, ConcurrencyLimited:
		return true
	}
	return false
}


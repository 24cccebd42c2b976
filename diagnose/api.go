// Package diagnose turns an OpenAI-compatible HTTP response (status, headers,
// body) or a transport error into a Finding: a verdict such as rpm_limited or
// quota_exhausted, whether retrying can help, how long the response says to
// wait, the parsed rate-limit windows, the figures in the message, and the
// fixes most likely to help. It is the one classifier behind `oairl
// diagnose`, the retry decisions of `oairl run` (internal/runner) and the
// API error handling of `oairl batch`.
//
// Callers with a response:
//
//	f := diagnose.Classify(resp.StatusCode, resp.Header, body, clk.Now())
//	switch {
//	case f.Verdict == diagnose.OK:
//	case !f.Retryable: // quota, auth, model, request too large, bad request
//	case f.Wait > maxWait: // e.g. a daily limit: stop, resumable
//	default: // sleep max(f.Wait, floor) plus backoff and jitter, retry
//	}
//
// and without one (connection refused/reset, EOF, timeout):
// diagnose.ClassifyTransportError(err).
//
// Classification reads the status, error.type and error.code, and the
// rate-limit headers together; the message text comes last
// (wire-formats.md §7.1). It understands OpenAI (current and 2023 message
// grammars), Azure OpenAI (retry-after-ms, bare-second resets, code "429"),
// Anthropic (anthropic-ratelimit-* with RFC 3339 resets, rate_limit_error,
// overloaded_error 529), Groq (per-day request headers), OpenRouter and vLLM
// (integer code), Mistral, DeepSeek and CDN throttling pages; errors inside
// a 200 (Responses API response.failed, Realtime response.done, SSE error
// events) and JSON bodies cut short (salvaged, Finding.Truncated). The
// formats and the captures the tests use are in
// /work/shared/research/wire-formats.md, /work/shared/cases/CASES.md (B10,
// B16, B17, B19, B21) and testdata/breaker.
//
// ParseSaved reads saved responses (curl -i output, raw JSON bodies, SSE
// streams, Batch output lines, Python, go-openai and Node SDK log lines;
// UTF-8 or UTF-16) for `oairl diagnose --from`; Probe and
// ProbeConcurrency run the live check; Report renders findings as text,
// tab-separated rows or the stable JSON document (JSONSchemaHelp).
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
	NotExecuted           Verdict = "not_executed"            // a Batch request that never ran (batch_expired, batch_cancelled): resubmit it
	NotAPIResponse        Verdict = "not_api_response"        // a 2xx whose body is not the API's (an HTML login or proxy page): check the base URL
	StreamTruncated       Verdict = "stream_truncated"        // a 2xx event stream that ended before its final event ([DONE], response.completed): retryable
	// FlexUnavailable: a service_tier "flex" request refused for lack of
	// capacity (429 resource_unavailable, OpenAI flex processing guide):
	// retry later or send as "auto"; not billed, not a rate limit (the
	// rate-limit buckets are not to be paused).
	FlexUnavailable Verdict = "resource_unavailable"
	// Unaffordable: the account can pay for fewer output tokens than the
	// request's max_tokens allows (OpenRouter's 402 "can only afford N",
	// case B41b): this request fails as sent, a smaller max_tokens may
	// pass, other requests may still succeed. Limit is what can be
	// afforded, Requested what was asked.
	Unaffordable Verdict = "request_unaffordable"
	Unknown      Verdict = "unknown"
)

// Window is one rate-limit dimension (requests or tokens) as the
// x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers report it.
// Limit and Remaining are in requests or tokens (-1 when the header is
// absent or a sentinel such as Azure's -1); Reset is the time until the
// window is full again, parsed from ResetRaw (the header verbatim: OpenAI
// "6m0s"/"20ms", Azure bare seconds, Anthropic an RFC 3339 time). Known is
// false when the response carried no usable header for this dimension.
// Daily is true when the window is a per-day one: a reset of an hour or
// more, or an implied window length (reset × limit / used) of an hour or
// more (OpenAI reports whichever request window binds, e.g. the free tier's
// 200 RPD with "23h55m16.126s") or Groq's request headers, which are always
// per day (console.groq.com/docs/rate-limits).
type Window struct {
	Limit     int64
	Remaining int64
	Reset     time.Duration
	ResetRaw  string
	// ResetKnown is true when ResetRaw parsed; an unparseable reset
	// ("-1", "1d", "soon") leaves Reset 0 and ResetKnown false: unknown,
	// never "0 s".
	ResetKnown bool
	Known      bool
	Daily      bool
}

// RateLimits are the parsed rate-limit headers of one response. Provider
// names the header family: "openai" (x-ratelimit-*), "azure" (the same
// headers plus Azure's apim-request-id/x-ms-region, bare-second resets),
// "groq" (x-ratelimit-* where requests are per day), "mistral"
// (x-ratelimit-*-{req,tokens}-minute), "anthropic"
// (anthropic-ratelimit-*), or "" when no rate-limit header was present.
type RateLimits struct {
	Requests Window
	Tokens   Window
	Provider string
	// ProjectTokens is the project's token window
	// (x-ratelimit-{limit,remaining,reset}-project-tokens, sent when a
	// project token limit applies; OpenAI rate-limits guide); ProjectRequests
	// the same for -project-requests. Known is false when absent.
	ProjectTokens   Window
	ProjectRequests Window
	// InputTokens and OutputTokens are Anthropic's separate per-minute
	// input and output token buckets (anthropic-ratelimit-input-tokens-*,
	// -output-tokens-*; case B31); Known is false elsewhere.
	InputTokens  Window
	OutputTokens Window
}

// Binding reports which token window binds: "project" when the project's
// window has fewer tokens left than the organization's (or is the only
// one), "organization" when the organization's does, "" when neither is
// known.
func (rl RateLimits) Binding() string {
	switch {
	case rl.ProjectTokens.Known && (!rl.Tokens.Known || rl.ProjectTokens.Remaining >= 0 && rl.ProjectTokens.Remaining < rl.Tokens.Remaining):
		return "project"
	case rl.Tokens.Known:
		return "organization"
	}
	return ""
}

// Fix is one remedy. Code is a stable identifier (the Fix* constants, e.g.
// "pace_under_limit"), Text one sentence for people.
type Fix struct {
	Code string
	Text string
}

// Finding is the diagnosis of one response (or of a transport error).
//
// Retryable says whether sending the same request again can succeed:
// true for the rate limits, overload, server and network errors,
// edge_throttled, batch_queue_full, not_executed and stream_truncated;
// never for not_api_response (the endpoint, not the request),
// quota_exhausted (which includes Azure's "retry after 86400 seconds", a
// zero or trial quota that never recovers, wire-formats.md §3),
// request_too_large, context_length_exceeded, auth_failed,
// model_unavailable or invalid_request. An "x-should-retry: false" header
// forces false.
//
// Wait is the delay the response itself implies, 0 when it gives none. It
// is taken, in this order of trust, from retry-after-ms (float ms),
// retry-after (seconds, decimals allowed, or an HTTP-date measured against
// the response's Date header, else against now), the message's "Please try
// again in 1m26.4s" / "retry after 60 seconds", then the reset header of
// the exhausted window (x-ratelimit-reset-requests for RPM/RPD,
// -tokens for TPM/TPD). Zero, negative and unparseable values are skipped
// as "no hint": a "retry-after: 0" never means "retry at once"; a positive
// value under a millisecond ("retry-after: 0.0001") is rounded up to 1 ms,
// so a hint is never reported as 0. The reset header is read whatever its
// spelling (Azure's x-rate-limit-reset-tokens, x-ratelimit-reset-
// tokens_usage_based) and even without limit/remaining headers. Wait is
// only set when Retryable. Callers compare Wait with their own --max-wait
// (a daily limit may ask for hours) and apply their own floor and jitter
// (e.g. at least 250 ms, plus exponential backoff when Wait is 0).
// WaitSource names where Wait came from: "retry-after-ms", "retry-after",
// "retry-after-date", "message", "reset-requests", "reset-tokens" or "".
//
// Status is the HTTP status (0 for a transport error, or a saved body that
// does not say; a status is never guessed from the body, though the
// verdict is chosen from what the body says). Provider is who answered: "openai", "azure", "anthropic",
// "groq", "mistral", "openrouter", "vllm", "openai-compatible",
// "cloudflare" or "".
// Code, Type and Message are error.code (an integer code is rendered in
// decimal), error.type and error.message of the body (for a transport
// error, Code is e.g. "connection_refused" and Message the error text).
// Model, Organization, Project and RequestID come from the headers
// (openai-model, openai-organization / anthropic-organization-id,
// openai-project, x-request-id / request-id / apim-request-id) or, failing
// them, from the message.
//
// LimitKind ("RPM", "TPM", "RPD", "TPD" or "") and Limit, Used, Requested
// (requests or tokens; 0 = not given) are parsed from the message, in the
// current grammar ("Limit 30000, Used 29937, Requested 385"), the 2023 ones
// ("Limit: 10000 / min", "Limit: 20.000000 / min. Current: 24.000000 /
// min") and Anthropic's ("rate limit of 20,000 input tokens per minute").
// For context_length_exceeded, Limit is the context window and Requested
// the tokens the request needs as the message states them (the prompt, or
// prompt plus output budget: vLLM's "'max_tokens' … is too large: 8000 …
// your request has 2778 input tokens" gives 10778); for batch_queue_full,
// Limit is the enqueued-token limit. For request_too_large, LimitKind is
// "TPM" when one request exceeds the token bucket, "" when the limit is the
// request's size in bytes (Anthropic's 413 request_too_large, a proxy's 413).
//
// For a body that is not JSON (an HTML error or login page), Message is a
// one-line excerpt: the page's <title>, else its text without tags,
// at most 120 characters.
//
// Summary is one line for people; Fixes are the remedies that apply, most
// likely first (never nil for a classified response).
type Finding struct {
	Verdict    Verdict
	Retryable  bool
	Wait       time.Duration
	WaitSource string

	Status       int
	Provider     string
	Code         string
	Type         string
	Message      string
	Model        string
	Organization string
	Project      string
	RequestID    string
	// ContentType is the response's content-type header (media type only),
	// shown with the excerpt of a body that is not the API's JSON.
	ContentType string

	LimitKind string
	Limit     int64
	Used      int64
	Requested int64

	RateLimits RateLimits
	Summary    string
	Fixes      []Fix

	// Truncated is true when the body (or, for a saved capture, the
	// headers) was cut short: the finding rests on what was readable
	// (status, headers, fields salvaged from the partial JSON), and the
	// Summary says so.
	Truncated bool

	// Scope is "project" when the limit hit is the project's (the message
	// says "in project proj_… organization …", or the project token window
	// is the exhausted one), "organization" for an organization limit, ""
	// when not a limit or unknown.
	Scope string
}

// Response is one whole HTTP answer, as the raw sender of internal/api
// returns it (api.Response is this type): the status, the headers and the
// body, read to the end.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Capture is one saved response read by ParseSaved. Source names the format
// it was read from: "curl -i", "json", "sse" (a server-sent event stream),
// "python-sdk", "go-openai" or "node-sdk". Line is the 1-based line where
// it starts. Status is 0 when the capture does not give one (a bare JSON
// body, an event stream, a Batch error without status_code): it is never
// guessed.
type Capture struct {
	Status int
	Header http.Header
	Body   []byte
	Source string
	Line   int
	// Truncated is true when the capture is cut short: inside the headers
	// (no blank line, a partial last header line, which is dropped) or
	// inside a JSON body.
	Truncated bool
}

// ClassifyCapture is Classify on a saved capture; a truncated capture
// gives a finding marked Truncated whose summary says it rests on the
// readable part.
func ClassifyCapture(c Capture, now time.Time) Finding {
	return ClassifyCaptureAs("", c, now)
}

// ClassifyCaptureAs is ClassifyCapture for a capture from a known provider
// (see ClassifyAs); "" detects it.
func ClassifyCaptureAs(providerName string, c Capture, now time.Time) Finding {
	f := ClassifyAs(providerName, c.Status, c.Header, c.Body, now)
	if c.Truncated && !f.Truncated {
		f.Truncated = true
		f.Summary = summarize(f)
	}
	return f
}

// Classify diagnoses one HTTP response from its status, headers (nil is
// fine) and body, reading status, error.type/error.code and the rate-limit
// headers together, the message text last (wire-formats.md §7.1). now is
// used only for an HTTP-date Retry-After or an RFC 3339 reset when the
// response has no Date header. Classify never fails: an unrecognised
// response is verdict unknown (retryable for 429 and 5xx).
func Classify(status int, h http.Header, body []byte, now time.Time) Finding {
	return classify(status, h, body, now, "")
}

// ClassifyAs is Classify for a response from a known provider
// (internal/provider names: "azure", "groq", "openrouter", "vllm",
// "anthropic", "openai"): the provider's header semantics apply even when
// the response carries no fingerprint of it (Groq's request headers are
// per day; Azure's resets are bare seconds). "" detects as Classify does.
func ClassifyAs(providerName string, status int, h http.Header, body []byte, now time.Time) Finding {
	return classify(status, h, body, now, providerName)
}

// ClassifyResponse is Classify on resp's status and headers; body is the
// already-read body (resp.Body is not touched).
func ClassifyResponse(resp *http.Response, body []byte, now time.Time) Finding {
	if resp == nil {
		return Finding{Verdict: Unknown, Summary: "no response"}
	}
	return Classify(resp.StatusCode, resp.Header, body, now)
}

// ExitCode maps the verdict to oairl's exit codes (internal/exitcode): ok
// 0; auth_failed and model_unavailable 4; quota_exhausted 5; the rate
// limits (IsRateLimit), batch_queue_full (an account queue limit, "limit"
// in case B10) and edge_throttled (a CDN's rate limit, retryable later) 6;
// everything else 1 (not_executed included).
func (f Finding) ExitCode() int {
	switch {
	case f.Verdict == OK:
		return exitcode.OK
	case f.Verdict == AuthFailed || f.Verdict == ModelUnavailable:
		return exitcode.Auth
	case f.Verdict == QuotaExhausted || f.Verdict == Unaffordable:
		return exitcode.Quota
	case f.IsRateLimit() || f.Verdict == BatchQueueFull || f.Verdict == EdgeThrottled:
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

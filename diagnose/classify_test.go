package diagnose

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, ":")
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return h
}

var testNow = time.Date(2025, 10, 13, 9, 0, 0, 0, time.UTC)

// classifyRow is one captured response and what it must classify as. Every
// field of want is asserted (zero values included), except strings left
// empty in wantModel/wantOrg/wantProject/wantProvider/wantCode.
type classifyRow struct {
	name    string
	status  int
	h       http.Header
	body    string
	verdict Verdict
	retry   bool
	wait    time.Duration
	source  string
	kind    string
	limit   int64
	used    int64
	req     int64

	wantModel, wantOrg, wantProject, wantProvider string
}

func openaiErr(msg, typ, code string) string {
	c := `null`
	if code != "" {
		c = `"` + code + `"`
	}
	return `{"error":{"message":"` + msg + `","type":"` + typ + `","param":null,"code":` + c + `}}`
}

// Rows are the captures in /work/shared/research/wire-formats.md (source
// URLs there), by section.
var classifyRows = []classifyRow{
	// §1.4 RPM, free tier (feder-cr/invisible_playwright_mcp#249).
	{name: "rpm free tier", status: 429,
		body:    `{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-XXXX on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit https://platform.openai.com/account/rate-limits to learn more. You can increase your rate limit by adding a payment method to your account at https://platform.openai.com/account/billing.","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
		verdict: RPMLimited, retry: true, wait: 20 * time.Second, source: "message", kind: "RPM", limit: 3, used: 3, req: 1,
		wantModel: "gpt-4o-mini", wantOrg: "org-XXXX", wantProvider: "openai"},
	// §1.4 RPM without model (openai/codex#10060).
	{name: "rpm no model", status: 429,
		body:    openaiErr("Rate limit reached for organization org-abc123def on requests per min (RPM): Limit 3000, Used 3000, Requested 1. Please try again in 20ms.", "requests", "rate_limit_exceeded"),
		verdict: RPMLimited, retry: true, wait: 20 * time.Millisecond, source: "message", kind: "RPM", limit: 3000, used: 3000, req: 1,
		wantOrg: "org-abc123def"},
	// §1.4 TPM (BuilderIO/micro-agent#86).
	{name: "tpm", status: 429,
		body:    openaiErr("Rate limit reached for gpt-4o in organization org-XXXX on tokens per min (TPM): Limit 30000, Used 29937, Requested 385. Please try again in 644ms.", "tokens", "rate_limit_exceeded"),
		verdict: TPMLimited, retry: true, wait: 644 * time.Millisecond, source: "message", kind: "TPM", limit: 30000, used: 29937, req: 385,
		wantModel: "gpt-4o"},
	// §1.4 TPM with project.
	{name: "tpm project", status: 429,
		body:    openaiErr("Rate limit reached for gpt-4o-mini in project proj_XXXX organization org-XXXX on tokens per min (TPM): Limit 50000, Used 47949, Requested 3006. Please try again in 1.146s. Visit https://platform.openai.com/account/rate-limits to learn more.", "tokens", "rate_limit_exceeded"),
		verdict: TPMLimited, retry: true, wait: 1146 * time.Millisecond, source: "message", kind: "TPM", limit: 50000, used: 47949, req: 3006,
		wantModel: "gpt-4o-mini", wantOrg: "org-XXXX", wantProject: "proj_XXXX"},
	// §1.4 Used >= Limit (openai/codex#10060): still a wait, Requested < Limit.
	{name: "tpm used over limit", status: 429,
		body:    openaiErr("Rate limit reached for organization org-XXXX on tokens per min (TPM): Limit 250000, Used 250000, Requested 57059. Please try again in 13.694s.", "tokens", "rate_limit_exceeded"),
		verdict: TPMLimited, retry: true, wait: 13694 * time.Millisecond, source: "message", kind: "TPM", limit: 250000, used: 250000, req: 57059},
	// §1.4 request too large (vanderschaarlab/climb#1).
	{name: "request too large", status: 429,
		body:    `{"error":{"message":"Request too large for gpt-4o in organization org-XXXX on tokens per min (TPM): Limit 30000, Requested 30601. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`,
		verdict: RequestTooLarge, retry: false, kind: "TPM", limit: 30000, req: 30601, wantModel: "gpt-4o"},
	// §1.4 RPD (openai/openai-agents-js#1022).
	{name: "rpd realtime", status: 429,
		body:    openaiErr("Rate limit reached for gpt-4o-mini-realtime in organization org-XXXX on requests per day (RPD): Limit 1000, Used 1000, Requested 1. Please try again in 1m26.4s.", "requests", "rate_limit_exceeded"),
		verdict: RPDLimited, retry: true, wait: 86400 * time.Millisecond, source: "message", kind: "RPD", limit: 1000, used: 1000, req: 1,
		wantModel: "gpt-4o-mini-realtime"},
	// §1.4 TPD by analogy with Groq (continuedev/continue#10920).
	{name: "tpd groq", status: 429,
		body:    openaiErr("Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01kesabc` service tier `on_demand` on tokens per day (TPD): Limit 100000, Used 97050, Requested 3619. Please try again in 9m38.016s. Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing", "tokens", "rate_limit_exceeded"),
		verdict: TPDLimited, retry: true, wait: 9*time.Minute + 38016*time.Millisecond, source: "message", kind: "TPD", limit: 100000, used: 97050, req: 3619,
		wantModel: "llama-3.3-70b-versatile", wantOrg: "org_01kesabc", wantProvider: "groq"},
	// §1.4 images per minute, Limit 0 = not enabled for the tier (songquanpeng/one-api#881).
	{name: "images limit zero", status: 429,
		body:    openaiErr("Rate limit exceeded for images per minute in organization org-XXXX. Limit: 0/1min. Current: 1/1min. Please visit https://platform.openai.com/docs/guides/rate-limits to learn how to increase your rate limit.", "requests", ""),
		verdict: ModelUnavailable, retry: false, kind: "RPM", limit: 0, used: 1},
	{name: "images per minute", status: 429,
		body:    openaiErr("Rate limit exceeded for images per minute in organization org-XXXX. Limit: 5/1min. Current: 6/1min.", "requests", ""),
		verdict: RPMLimited, retry: true, kind: "RPM", limit: 5, used: 6},
	// §1.4 2023 grammars.
	{name: "2023 10KTPM", status: 429,
		body:    openaiErr("Rate limit reached for 10KTPM-200RPM in organization org-XXXX on tokens per min. Limit: 10000 / min. Please try again in 6ms. Contact us through our help center at help.openai.com if you continue to have issues.", "tokens", ""),
		verdict: TPMLimited, retry: true, wait: 6 * time.Millisecond, source: "message", kind: "TPM", limit: 10000},
	{name: "2023 default-gpt-4", status: 429,
		body:    openaiErr("Rate limit reached for default-gpt-4 in organization org-XXXX on tokens per min. Limit: 40000 / min. Please try again in 1ms. Contact us through our help center at help.openai.com if you continue to have issues.", "tokens", ""),
		verdict: TPMLimited, retry: true, wait: time.Millisecond, source: "message", kind: "TPM", limit: 40000, wantModel: "default-gpt-4"},
	{name: "2023 default-gpt-3.5 rpm", status: 429,
		body:    openaiErr("Rate limit reached for default-gpt-3.5-turbo in organization org-XXXX on requests per min. Limit: 3 / min. Please try again in 20s. Contact us through our help center at help.openai.com if you continue to have issues. Please add a payment method to your account to increase your rate limit.", "requests", ""),
		verdict: RPMLimited, retry: true, wait: 20 * time.Second, source: "message", kind: "RPM", limit: 3, wantModel: "default-gpt-3.5-turbo"},
	{name: "2023 codex current", status: 429,
		body:    openaiErr("Rate limit reached for default-codex in organization org-XXXX on requests per min. Limit: 20.000000 / min. Current: 24.000000 / min. Contact support@openai.com if you continue to have issues.", "requests", ""),
		verdict: RPMLimited, retry: true, kind: "RPM", limit: 20, used: 24, wantModel: "default-codex"},
	{name: "2023 tokens_usage_based", status: 429,
		body:    openaiErr("Rate limit reached for default-gpt-3.5-turbo in organization org-XXXX on tokens_usage_based per min: Limit 10000, Used 8782, Requested 8172. Please try again in 41.724s.", "tokens_usage_based", "rate_limit_exceeded"),
		verdict: TPMLimited, retry: true, wait: 41724 * time.Millisecond, source: "message", kind: "TPM", limit: 10000, used: 8782, req: 8172},
	{name: "2023 slow down text", status: 429,
		body:    openaiErr("You've exceeded the 5 request/min rate limit, please slow down and try again.", "invalid_request_error", "rate_limit_exceeded"),
		verdict: RPMLimited, retry: true, kind: "RPM", limit: 5},
	// §1.4 ramp (error-codes guide).
	{name: "slow_down", status: 429,
		body:    openaiErr("Please slow down: your traffic is ramping up too fast.", "rate_limit_error", "slow_down"),
		verdict: RampLimited, retry: true},
	{name: "slow_down 503", status: 503, h: hdr("retry-after: 4"),
		body:    openaiErr("Slow down.", "rate_limit_error", "slow_down"),
		verdict: RampLimited, retry: true, wait: 4 * time.Second, source: "retry-after"},
	// §1.4 quota and billing.
	{name: "insufficient_quota", status: 429,
		body:    openaiErr("You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.", "insufficient_quota", "insufficient_quota"),
		verdict: QuotaExhausted},
	{name: "insufficient_quota code null", status: 429,
		body:    openaiErr("You exceeded your current quota, please check your plan and billing details.", "insufficient_quota", ""),
		verdict: QuotaExhausted},
	{name: "credit_balance_exhausted", status: 429, h: hdr("retry-after: 20"),
		body:    `{"error":{"message":"You have no credits remaining...","type":"insufficient_quota","code":"credit_balance_exhausted"}}`,
		verdict: QuotaExhausted},
	{name: "org spend limit", status: 429, body: openaiErr("x", "insufficient_quota", "organization_spend_limit_exceeded"), verdict: QuotaExhausted},
	{name: "project spend limit", status: 429, body: openaiErr("x", "insufficient_quota", "project_spend_limit_exceeded"), verdict: QuotaExhausted},
	{name: "org usage limit", status: 429, body: openaiErr("x", "insufficient_quota", "organization_usage_limit_exceeded"), verdict: QuotaExhausted},
	{name: "billing hard limit", status: 400, body: openaiErr("Billing hard limit has been reached", "invalid_request_error", "billing_hard_limit_reached"), verdict: QuotaExhausted},
	{name: "old overloaded as 429", status: 429,
		body:    openaiErr("The server is currently overloaded with other requests. Sorry about that! You can retry your request, or contact us through our help center at help.openai.com if the error persists.", "server_error", ""),
		verdict: ServerOverloaded, retry: true},
	// §1.5 non-429.
	{name: "context length", status: 400,
		body:    `{"error":{"message":"This model's maximum context length is 4097 tokens. However, your messages resulted in 4294 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`,
		verdict: ContextLengthExceeded, limit: 4097, req: 4294},
	{name: "context length completion", status: 400,
		body:    openaiErr("This model's maximum context length is 4097 tokens. However, you requested 4268 tokens (4012 in the messages, 256 in the completion). Please reduce the length of the messages or completion.", "invalid_request_error", "context_length_exceeded"),
		verdict: ContextLengthExceeded, limit: 4097, req: 4268},
	{name: "invalid api key", status: 401,
		body:    `{"error":{"message":"Incorrect API key provided: sk-XXXX. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
		verdict: AuthFailed},
	{name: "region", status: 403, body: openaiErr("Country, region, or territory not supported", "request_forbidden", "unsupported_country_region_territory"), verdict: AuthFailed},
	{name: "wrong org", status: 401, body: openaiErr("You must be a member of an organization to use the API.", "invalid_request_error", "no_organization"), verdict: AuthFailed},
	{name: "model not found", status: 404,
		body:    openaiErr("The model `gpt-4` does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"),
		verdict: ModelUnavailable, wantModel: "gpt-4"},
	{name: "model not allowed 403", status: 403, body: openaiErr("Project `proj_abc` does not have access to model `o3`", "invalid_request_error", ""), verdict: ModelUnavailable},
	{name: "service tier 400", status: 400, body: openaiErr("Invalid service_tier argument: The requested service tier is not allowed for this project.", "invalid_request_error", ""), verdict: InvalidRequest},
	{name: "500", status: 500,
		body:    openaiErr("The server had an error while processing your request. Sorry about that!", "server_error", ""),
		verdict: ServerError, retry: true},
	{name: "503 overloaded", status: 503,
		body:    openaiErr("That model is currently overloaded with other requests. You can retry your request, or contact us through our help center at help.openai.com if the error persists.", "server_error", ""),
		verdict: ServerOverloaded, retry: true},
	{name: "503 server_is_overloaded", status: 503, body: openaiErr("Overloaded", "service_unavailable_error", "server_is_overloaded"), verdict: ServerOverloaded, retry: true},
	// §1.6 Batch enqueued-token limit (openai/openai-python#2084).
	{name: "batch queue", status: 400,
		body:    `{"error":{"code":"token_limit_exceeded","line":null,"message":"Enqueued token limit reached for gpt-4o-mini in organization org-XXXX. Limit: 2,000,000 enqueued tokens. Please try again once some in_progress batches have been completed.","param":null}}`,
		verdict: BatchQueueFull, retry: true, limit: 2000000, wantModel: "gpt-4o-mini"},
	{name: "batch queue 429 text", status: 429,
		body:    openaiErr("Enqueued token limit reached for gpt-5-mini in organization org-XXXX. Limit: 5,000,000 enqueued tokens.", "invalid_request_error", ""),
		verdict: BatchQueueFull, retry: true, limit: 5000000, wantModel: "gpt-5-mini"},
	// §3 Azure.
	{name: "azure token 86400", status: 429, h: hdr("apim-request-id: abc", "x-ms-region: East US", "x-rate-limit-reset-tokens: 55", "x-ratelimit-remaining-requests: 79"),
		body: `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-08-01-preview have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 86400 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}`,
		// "Please retry after 86400 seconds": a zero/trial quota that never
		// recovers (wire-formats.md §3): quota-like, not retryable.
		verdict: QuotaExhausted, retry: false, wantProvider: "azure"},
	{name: "azure call rate", status: 429, h: hdr("retry-after-ms: 2500", "retry-after: 3"),
		body:    `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2023-07-01-preview have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after 3 seconds."}}`,
		verdict: RPMLimited, retry: true, wait: 2500 * time.Millisecond, source: "retry-after-ms", kind: "RPM", wantProvider: "azure"},
	{name: "azure 2025", status: 429,
		body:    `{"error":{"code":"429","message":"Your requests to gpt-5.1 for gpt-5.1 in East US 2 have exceeded the token rate limit for your current AIServices S0 pricing tier. This request was for ChatCompletions_Create under Azure OpenAI API version 2025-03-01-preview. Please retry after 60 seconds."}}`,
		verdict: TPMLimited, retry: true, wait: time.Minute, source: "message", kind: "TPM", wantModel: "gpt-5.1", wantProvider: "azure"},
	{name: "azure short", status: 429,
		body:    `{"error":{"code":"429","message":"Rate limit is exceeded. Try again in 50 seconds."}}`,
		verdict: RPMLimited, retry: true, wait: 50 * time.Second, source: "message", kind: "RPM"},
	{name: "azure responses sentinels", status: 429, h: hdr("x-ratelimit-limit-tokens: -1", "x-ratelimit-remaining-tokens: -1", "x-ratelimit-reset-tokens: 0"),
		body:    `{"error":{"code":"429","message":"Rate limit is exceeded."}}`,
		verdict: RPMLimited, retry: true, kind: "RPM"},
	// §4 Anthropic.
	{name: "anthropic itpm", status: 429, h: hdr("retry-after: 17", "anthropic-ratelimit-input-tokens-limit: 20000", "anthropic-ratelimit-input-tokens-remaining: 0", "anthropic-ratelimit-input-tokens-reset: 2025-10-13T09:00:30Z", "date: Mon, 13 Oct 2025 09:00:00 GMT", "request-id: req_011abc"),
		body:    `{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization (0dccdde6-1234) of 20,000 input tokens per minute. For details, refer to: https://docs.anthropic.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later."}}`,
		verdict: TPMLimited, retry: true, wait: 17 * time.Second, source: "retry-after", kind: "TPM", limit: 20000, wantOrg: "0dccdde6-1234", wantProvider: "anthropic"},
	{name: "anthropic 2026 model", status: 429,
		body:    `{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your organization's rate limit of 30,000 input tokens per minute (org: 8016abcd, model: claude-opus-4-6). For details, refer to: https://docs.claude.com/en/api/rate-limits."},"request_id":"req_011xyz"}`,
		verdict: TPMLimited, retry: true, kind: "TPM", limit: 30000, wantModel: "claude-opus-4-6", wantOrg: "8016abcd", wantProvider: "anthropic"},
	{name: "anthropic otpm", status: 429,
		body:    `{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your organization's rate limit of 80,000 output tokens per minute."}}`,
		verdict: TPMLimited, retry: true, kind: "TPM", limit: 80000, wantProvider: "anthropic"},
	{name: "anthropic concurrency", status: 429,
		body:    `{"type":"error","error":{"type":"rate_limit_error","message":"Number of concurrent connections has exceeded your rate limit. Please try again later or contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase."}}`,
		verdict: ConcurrencyLimited, retry: true},
	{name: "anthropic old request tokens", status: 429,
		body:    `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit (https://docs.anthropic.com/en/api/rate-limits); see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later."}}`,
		verdict: TPMLimited, retry: true, kind: "TPM"},
	{name: "anthropic 529", status: 529, body: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
		verdict: ServerOverloaded, retry: true, wantProvider: "anthropic"},
	{name: "anthropic via openai compat", status: 429,
		body:    `{"error": {"code": "rate_limit_error", "message": "This request would exceed the rate limit for your organization (abc) of 20,000 input tokens per minute.", "type": "invalid_request_error", "param": null}}`,
		verdict: TPMLimited, retry: true, kind: "TPM", limit: 20000},
	{name: "anthropic billing 400", status: 400, body: `{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}`,
		verdict: QuotaExhausted},
	// §5 Groq, Mistral, OpenRouter, vLLM, DeepSeek.
	{name: "groq tpm", status: 429, h: hdr("x-groq-region: us-east", "retry-after: 12", "x-ratelimit-limit-requests: 14400", "x-ratelimit-remaining-requests: 14370", "x-ratelimit-reset-requests: 2m59.56s", "x-ratelimit-limit-tokens: 12000", "x-ratelimit-remaining-tokens: 0", "x-ratelimit-reset-tokens: 7.66s"),
		body:    "{\"error\":{\"message\":\"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01kesxyz` service tier `on_demand` on tokens per minute (TPM): Limit 12000, Used 4437, Requested 9854. Please try again in 11.455s. Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing\",\"type\":\"tokens\",\"code\":\"rate_limit_exceeded\"}}",
		verdict: TPMLimited, retry: true, wait: 12 * time.Second, source: "retry-after", kind: "TPM", limit: 12000, used: 4437, req: 9854,
		wantModel: "llama-3.3-70b-versatile", wantOrg: "org_01kesxyz", wantProvider: "groq"},
	{name: "groq 413", status: 413, h: hdr("x-should-retry: false"),
		body:    openaiErr("Request too large for model `llama-3.1-8b-instant` in organization `org_01abc` service tier `on_demand` on tokens per minute (TPM): Limit 6000, Requested 12328, please reduce your message size and try again.", "tokens", "rate_limit_exceeded"),
		verdict: RequestTooLarge, kind: "TPM", limit: 6000, req: 12328, wantModel: "llama-3.1-8b-instant"},
	{name: "mistral", status: 429, body: `{"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}`,
		verdict: RPMLimited, retry: true, kind: "RPM"},
	{name: "mistral old", status: 429, body: `{"message":"Requests rate limit exceeded"}`, verdict: RPMLimited, retry: true, kind: "RPM"},
	{name: "openrouter int code", status: 429,
		body:    `{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","metadata":{"headers":{"X-RateLimit-Limit":"50"}}}}`,
		verdict: RPDLimited, retry: true, kind: "RPD", wantProvider: "openrouter"},
	{name: "openrouter 402", status: 402, body: `{"error":{"code":402,"message":"Insufficient credits"}}`, verdict: QuotaExhausted},
	{name: "vllm int code context", status: 400,
		body:    `{"error":{"message":"This model's maximum context length is 4096 tokens. However, you requested 8000 tokens (7000 in the messages, 1000 in the completion).","type":"BadRequestError","param":null,"code":400}}`,
		verdict: ContextLengthExceeded, limit: 4096, req: 8000, wantProvider: "vllm"},
	{name: "vllm max tokens too large", status: 400,
		body: `{"object":"error","message":"'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context length is 4096 tokens and your request has 2778 input tokens (8000 > 4096 - 2778).","type":"BadRequestError","param":null,"code":400}`,
		// The request needs 2778 input + 8000 output tokens.
		verdict: ContextLengthExceeded, limit: 4096, req: 10778},
	{name: "deepseek 402", status: 402, body: `{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}`, verdict: QuotaExhausted},
	{name: "qwen concurrency", status: 429, body: openaiErr("Too many concurrent requests for this model", "requests", "rate_limit_exceeded"), verdict: ConcurrencyLimited, retry: true},
	// §7 Cloudflare (lobehub/lobehub#2795).
	{name: "cloudflare 1015", status: 429, h: hdr("content-type: text/plain", "retry-after: 54749", "cf-ray: 1234"),
		body: "error code: 1015", verdict: EdgeThrottled, retry: true, wait: 54749 * time.Second, source: "retry-after", wantProvider: "cloudflare"},
	// Headers alone.
	{name: "empty 429 requests exhausted", status: 429,
		h:       hdr("x-ratelimit-limit-requests: 500", "x-ratelimit-remaining-requests: 0", "x-ratelimit-reset-requests: 120ms", "x-ratelimit-limit-tokens: 30000", "x-ratelimit-remaining-tokens: 29000", "x-ratelimit-reset-tokens: 2s"),
		verdict: RPMLimited, retry: true, wait: 120 * time.Millisecond, source: "reset-requests", kind: "RPM"},
	{name: "rpd from reset hours", status: 429,
		h:       hdr("x-ratelimit-limit-requests: 200", "x-ratelimit-remaining-requests: 0", "x-ratelimit-reset-requests: 23h55m16.126s", "x-ratelimit-limit-tokens: 40000", "x-ratelimit-remaining-tokens: 40000", "x-ratelimit-reset-tokens: 34ms"),
		body:    openaiErr("Rate limit reached.", "requests", "rate_limit_exceeded"),
		verdict: RPDLimited, retry: true, wait: 23*time.Hour + 55*time.Minute + 16126*time.Millisecond, source: "reset-requests", kind: "RPD"},
	{name: "tpm from type and headers", status: 429,
		h:       hdr("x-ratelimit-limit-requests: 500", "x-ratelimit-remaining-requests: 400", "x-ratelimit-reset-requests: 1s", "x-ratelimit-limit-tokens: 30000", "x-ratelimit-remaining-tokens: 100", "x-ratelimit-reset-tokens: 8.64s"),
		body:    openaiErr("Rate limit reached.", "tokens", "rate_limit_exceeded"),
		verdict: TPMLimited, retry: true, wait: 8640 * time.Millisecond, source: "reset-tokens", kind: "TPM"},
	{name: "requests type nearly drained", status: 429,
		h:       hdr("x-ratelimit-limit-requests: 500", "x-ratelimit-remaining-requests: 3", "x-ratelimit-reset-requests: 400ms", "x-ratelimit-limit-tokens: 30000", "x-ratelimit-remaining-tokens: 29000", "x-ratelimit-reset-tokens: 2s"),
		body:    openaiErr("Rate limit reached.", "requests", "rate_limit_exceeded"),
		verdict: RPMLimited, retry: true, wait: 400 * time.Millisecond, source: "reset-requests", kind: "RPM"},
	{name: "azure roomy headers are not concurrency", status: 429,
		h:       hdr("apim-request-id: x", "x-ratelimit-limit-requests: 10", "x-ratelimit-remaining-requests: 5", "x-ratelimit-limit-tokens: 1000", "x-ratelimit-remaining-tokens: 900"),
		body:    `{"error":{"code":"429","message":"Rate limit is exceeded."}}`,
		verdict: RPMLimited, retry: true, kind: "RPM", wantProvider: "azure"},
	{name: "ok 200", status: 200, h: hdr("x-ratelimit-limit-requests: 500", "x-ratelimit-remaining-requests: 499", "x-ratelimit-reset-requests: 120ms", "x-ratelimit-limit-tokens: 30000", "x-ratelimit-remaining-tokens: 29962", "x-ratelimit-reset-tokens: 76ms", "x-request-id: req_XXXX"),
		body: `{"id":"chatcmpl-1","object":"chat.completion","choices":[]}`, verdict: OK, wantProvider: "openai"},
	// §1.3/§7.8: a rate limit inside a 200 (Responses API background
	// response that failed).
	{name: "responses failed in 200", status: 200,
		body:    `{"id":"resp_1","object":"response","status":"failed","error":{"code":"rate_limit_exceeded","message":"Rate limit reached for gpt-4o in organization org-XXXX on tokens per min (TPM): Limit 30000, Used 30000, Requested 500. Please try again in 11.054s."}}`,
		verdict: TPMLimited, retry: true, wait: 11054 * time.Millisecond, source: "message", kind: "TPM", limit: 30000, used: 30000, req: 500},
	{name: "responses ok error null", status: 200, body: `{"id":"resp_1","object":"response","status":"completed","error":null}`, verdict: OK},
	{name: "apim quota 403", status: 403, body: `{"statusCode":403,"message":"Out of call volume quota. Quota will be replenished in 00:00:59."}`, verdict: QuotaExhausted},
	// §1.1 tier-5 headers with the undocumented tokens_usage_based bucket;
	// 2026 fixture with openai-project and a 0s token reset.
	{name: "tier 5 headers", status: 200,
		h:       hdr("x-ratelimit-limit-requests: 5000", "x-ratelimit-limit-tokens: 160000", "x-ratelimit-limit-tokens_usage_based: 160000", "x-ratelimit-remaining-requests: 4999", "x-ratelimit-remaining-tokens: 159000", "x-ratelimit-reset-requests: 12ms", "x-ratelimit-reset-tokens: 9ms", "x-ratelimit-reset-tokens_usage_based: 9ms"),
		body:    `{"object":"chat.completion"}`,
		verdict: OK, wantProvider: "openai"},
	{name: "2026 project header", status: 200, h: hdr("openai-project: proj_2026abcdef", "x-ratelimit-reset-tokens: 0s", "x-ratelimit-limit-tokens: 200000", "x-ratelimit-remaining-tokens: 200000"),
		body: `{"object":"chat.completion"}`, verdict: OK, wantProject: "proj_2026abcdef"},
	// §1.5 more.
	{name: "context functions", status: 400,
		body:    openaiErr("This model's maximum context length is 128000 tokens. However, your messages resulted in 202868 tokens (202767 in the messages, 101 in the functions). Please reduce the length of the messages or functions.", "invalid_request_error", "context_length_exceeded"),
		verdict: ContextLengthExceeded, limit: 128000, req: 202868},
	{name: "503 engine overloaded", status: 503, body: openaiErr("The engine is currently overloaded, please try again later", "server_error", ""), verdict: ServerOverloaded, retry: true},
	{name: "429 engine_overloaded_error", status: 429, body: openaiErr("The engine is currently overloaded, please try again later.", "engine_overloaded_error", ""), verdict: ServerOverloaded, retry: true},
	{name: "batch file too large", status: 400, body: openaiErr("The batch input file is larger than the 209715200 maximum for the gpt-4.1-nano model", "invalid_request_error", ""), verdict: InvalidRequest},
	// §5 DeepSeek, Scaleway.
	{name: "deepseek 429", status: 429, body: `{"error":{"message":"Rate Limit Reached","type":"rate_limit_error","param":null,"code":"rate_limit_reached"}}`, verdict: RPMLimited, retry: true, kind: "RPM"},
	{name: "deepseek 503", status: 503, body: `{"error":{"message":"Server Overloaded","type":"server_error","param":null,"code":null}}`, verdict: ServerOverloaded, retry: true},
	{name: "deepseek context", status: 400,
		body:    `{"error":{"message":"This model's maximum context length is 65536 tokens. However, you requested 70000 tokens (69000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}`,
		verdict: ContextLengthExceeded, limit: 65536, req: 70000},
	{name: "scaleway concurrency", status: 429, body: `{"detail":"Too Many Requests - You exceeded your current threshold of concurrent requests"}`, verdict: ConcurrencyLimited, retry: true},
	{name: "generic 404 url", status: 404, body: `<html>Not Found</html>`, verdict: InvalidRequest},
	{name: "408", status: 408, verdict: ServerError, retry: true},
	{name: "502 html", status: 502, body: "<html>Bad gateway</html>", verdict: ServerError, retry: true},
}

func TestGroqByMessage(t *testing.T) {
	// No x-groq-region header: the body names Groq, so the request
	// window (per day at Groq) is marked daily and a drained one is RPD.
	h := hdr("x-ratelimit-limit-requests: 14400", "x-ratelimit-remaining-requests: 0", "x-ratelimit-reset-requests: 2m59.56s",
		"x-ratelimit-limit-tokens: 6000", "x-ratelimit-remaining-tokens: 5000", "x-ratelimit-reset-tokens: 7.66s")
	f := Classify(429, h, []byte(openaiErr("Rate limit reached for model `llama3-8b` in organization `org_01abc` service tier `on_demand` on requests per day (RPD): Limit 14400, Used 14400, Requested 1. Please try again in 2m59.56s. Visit https://console.groq.com/docs/rate-limits", "requests", "rate_limit_exceeded")), testNow)
	if f.Verdict != RPDLimited || f.RateLimits.Provider != "groq" || !f.RateLimits.Requests.Daily || f.Wait != 2*time.Minute+59560*time.Millisecond {
		t.Errorf("got %s provider %q daily %v wait %v", f.Verdict, f.RateLimits.Provider, f.RateLimits.Requests.Daily, f.Wait)
	}
}

func TestClassifyCaptures(t *testing.T) {
	for _, r := range classifyRows {
		t.Run(r.name, func(t *testing.T) {
			f := Classify(r.status, r.h, []byte(r.body), testNow)
			checkRow(t, f, r)
		})
	}
}

func checkRow(t *testing.T, f Finding, r classifyRow) {
	t.Helper()
	if f.Verdict != r.verdict {
		t.Errorf("verdict = %s, want %s (summary %q)", f.Verdict, r.verdict, f.Summary)
	}
	if f.Retryable != r.retry {
		t.Errorf("retryable = %v, want %v", f.Retryable, r.retry)
	}
	if f.Wait != r.wait || f.WaitSource != r.source {
		t.Errorf("wait = %v from %q, want %v from %q", f.Wait, f.WaitSource, r.wait, r.source)
	}
	if f.LimitKind != r.kind || f.Limit != r.limit || f.Used != r.used || f.Requested != r.req {
		t.Errorf("figures = %q L%d U%d R%d, want %q L%d U%d R%d", f.LimitKind, f.Limit, f.Used, f.Requested, r.kind, r.limit, r.used, r.req)
	}
	for _, c := range []struct{ name, got, want string }{
		{"model", f.Model, r.wantModel}, {"organization", f.Organization, r.wantOrg},
		{"project", f.Project, r.wantProject}, {"provider", f.Provider, r.wantProvider},
	} {
		if c.want != "" && c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if f.Summary == "" {
		t.Error("empty summary")
	}
	if f.Verdict != OK && len(f.Fixes) == 0 {
		t.Error("no fixes")
	}
	if (f.Verdict == QuotaExhausted || f.Verdict == RequestTooLarge) && (f.Retryable || f.Wait != 0) {
		t.Errorf("%s must never be retryable or imply a wait", f.Verdict)
	}
}

// Package provider is the one place where the servers oairl talks to
// differ: OpenAI itself, Azure OpenAI, and OpenAI-compatible servers
// (Groq, OpenRouter, vLLM), plus Anthropic's Messages API, which
// `oairl diagnose` reads. Each entry says how the server authenticates,
// where a request goes, what its x-ratelimit-* windows count over, which
// status it gives a request larger than the token bucket or an account out
// of credit, and names the evidence: documentation and the captures in
// diagnose/testdata/cases that show the difference (wire-formats.md §1–§5,
// cases B31, B33, B41 in shared/cases/CASES.md).
//
// The HTTP layer (internal/api) uses SetAuth and URL; diagnose uses
// RequestWindow and the status fields to read answers; cmd resolves
// --provider or detects the provider from the base URL (Detect).
package provider

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Provider describes one kind of server.
type Provider struct {
	// Name is the --provider value: openai, azure, groq, openrouter,
	// vllm, anthropic.
	Name string
	// Hosts are base-URL host suffixes that identify the provider.
	Hosts []string
	// AuthHeader is the header that carries the key: "Authorization"
	// (sent as "Bearer KEY"), Azure's "api-key" or Anthropic's "x-api-key".
	AuthHeader string
	// DeploymentPath is true when the model is a path segment
	// (Azure: /openai/deployments/{deployment}/chat/completions?api-version=V)
	// rather than only the body's "model".
	DeploymentPath bool
	// APIVersion is the api-version sent when the caller gives none
	// (Azure's GA data-plane version).
	APIVersion string
	// RequestWindow is what x-ratelimit-*-requests count over: a minute
	// (OpenAI, where the header reports whichever request window binds),
	// a day (Groq), 10 s (Azure evaluates RPM over 1 s or 10 s windows).
	// 0: the server sends no request window.
	RequestWindow time.Duration
	// ResetSeconds is true when x-ratelimit-reset-* are bare seconds
	// (Azure: "55", also spelled x-rate-limit-reset-tokens) rather than
	// Go-style durations ("6m0s").
	ResetSeconds bool
	// RetryAfterMS is true when 429s carry retry-after-ms (Azure).
	RetryAfterMS bool
	// TooLargeStatus is the status of a request larger than the whole
	// token bucket: 429 (OpenAI), 413 (Groq).
	TooLargeStatus int
	// PaymentStatus is the status of "out of credit": 429
	// insufficient_quota (OpenAI, Azure), 402 (OpenRouter), 400
	// invalid_request_error "credit balance is too low" (Anthropic).
	PaymentStatus int
	// IntegerCode is true when error.code is a number (OpenRouter: the
	// HTTP status; vLLM: the HTTP status with an exception-class type).
	IntegerCode bool
	// RateLimited is false for servers with no rate limiter (vLLM queues
	// requests: overload shows as latency or a proxy's 503).
	RateLimited bool
	// Sources name the evidence for the fields above.
	Sources []string
	// Captures are the files in diagnose/testdata/cases that show the
	// differences.
	Captures []string
}

var table = []Provider{
	{
		Name: "openai", Hosts: []string{"api.openai.com"}, AuthHeader: "Authorization",
		RequestWindow: time.Minute, TooLargeStatus: 429, PaymentStatus: 429, RateLimited: true,
		Sources: []string{"developers.openai.com/api/docs/guides/rate-limits (headers, project headers)",
			"developers.openai.com/api/docs/guides/error-codes", "developers.openai.com/api/docs/guides/flex-processing (429 resource_unavailable)"},
		Captures: []string{"B16.http", "B17a_missing.http", "B19.http", "flex_resource_unavailable.http", "project_tokens.http"},
	},
	{
		Name: "azure", Hosts: []string{".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com"},
		AuthHeader: "api-key", DeploymentPath: true, APIVersion: "2024-10-21",
		RequestWindow: 10 * time.Second, ResetSeconds: true, RetryAfterMS: true, TooLargeStatus: 429, PaymentStatus: 429, RateLimited: true,
		Sources: []string{"learn.microsoft.com/azure/ai-services/openai/how-to/quota (RPM over 1 s/10 s windows; TPM estimate incl. max_tokens)",
			"Azure/azure-openai-benchmark benchmark/oairequester.py (retry-after-ms)", "openai/openai-python#937 (x-rate-limit-reset-tokens: 55)",
			"wire-formats.md §3"},
		Captures: []string{"azure_429_token_rate.http"},
	},
	{
		Name: "groq", Hosts: []string{"api.groq.com"}, AuthHeader: "Authorization",
		RequestWindow: 24 * time.Hour, TooLargeStatus: 413, PaymentStatus: 429, RateLimited: true,
		Sources: []string{"console.groq.com/docs/rate-limits (request headers per day, token headers per minute)",
			"continuedev/continue#10218 (413 Request too large)", "crewAIInc/crewAI#494 (Requested ~N)"},
		Captures: []string{"B33a_413_request_too_large.http", "B33b_429_tilde.http"},
	},
	{
		Name: "openrouter", Hosts: []string{"openrouter.ai"}, AuthHeader: "Authorization",
		RequestWindow: time.Minute, TooLargeStatus: 429, PaymentStatus: 402, IntegerCode: true, RateLimited: true,
		Sources: []string{"openrouter.ai/docs/api-reference/errors (code = HTTP status; 402 out of credits)",
			"QwenLM/qwen-code#73 (402 can only afford N)"},
		Captures: []string{"B41b_openrouter_402_afford.http", "B41c_openrouter_402_credits.http"},
	},
	{
		Name: "vllm", AuthHeader: "Authorization", TooLargeStatus: 400, PaymentStatus: 0, IntegerCode: true,
		Sources:  []string{"vllm-project/vllm vllm/entrypoints/openai/protocol.py (ErrorResponse code: int)"},
		Captures: []string{"vllm_400_context.http"},
	},
	{
		Name: "anthropic", Hosts: []string{"api.anthropic.com"}, AuthHeader: "x-api-key",
		RequestWindow: time.Minute, TooLargeStatus: 413, PaymentStatus: 400, RateLimited: true,
		Sources: []string{"docs.anthropic.com/en/api/rate-limits (anthropic-ratelimit-* with RFC 3339 resets; input and output token buckets)",
			"anthropics/claude-code#4684 (400 credit balance is too low)"},
		Captures: []string{"B31a_429_requests_reset_only.http", "B31b_429_output_tokens.http", "B41a_anthropic_400_credit.http"},
	},
}

// Names returns the provider names, in the table's order.
func Names() []string {
	out := make([]string, len(table))
	for i, p := range table {
		out[i] = p.Name
	}
	return out
}

// Get returns the provider called name (case-insensitive).
func Get(name string) (Provider, bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	i := slices.IndexFunc(table, func(p Provider) bool { return p.Name == name })
	if i < 0 {
		return Provider{}, false
	}
	return table[i], true
}

// Detect returns the provider a base URL points at, by host suffix; any
// other URL (api.openai.com, oairl sim on loopback, a gateway) is openai.
func Detect(baseURL string) Provider {
	host := baseURL
	if u, err := url.Parse(baseURL); err == nil && u.Host != "" {
		host = u.Hostname()
	}
	host = strings.ToLower(host)
	for _, p := range table {
		for _, h := range p.Hosts {
			if host == strings.TrimPrefix(h, ".") || strings.HasSuffix(host, h) && strings.HasPrefix(h, ".") {
				return p
			}
		}
	}
	p, _ := Get("openai")
	return p
}

// Resolve returns the provider named by name, or detected from baseURL
// when name is "" or "auto". ok is false for an unknown name.
func Resolve(name, baseURL string) (Provider, bool) {
	if name == "" || strings.EqualFold(name, "auto") {
		return Detect(baseURL), true
	}
	return Get(name)
}

// SetAuth puts the key in the provider's auth header.
func (p Provider) SetAuth(h http.Header, key string) {
	switch p.AuthHeader {
	case "", "Authorization":
		h.Set("Authorization", "Bearer "+key)
	default:
		h.Set(p.AuthHeader, key)
	}
}

// URL joins base and a Batch-style path ("/v1/chat/completions") for a
// request whose body is body. For a provider with deployment paths
// (Azure) it is base + /openai/deployments/{model}/chat/completions
// ?api-version=V, the deployment taken from the body's "model"; a base URL
// that is already Azure's v1 API (".../openai/v1") takes the path as is.
// Otherwise a base ending in /v1 is not doubled.
func (p Provider) URL(base, path string, body []byte, apiVersion string) string {
	base = strings.TrimRight(base, "/")
	if p.DeploymentPath && !strings.HasSuffix(base, "/openai/v1") {
		var m struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(body, &m)
		if m.Model != "" && strings.HasPrefix(path, "/v1/") {
			if apiVersion == "" {
				apiVersion = p.APIVersion
			}
			base = strings.TrimSuffix(base, "/openai")
			return base + "/openai/deployments/" + url.PathEscape(m.Model) + strings.TrimPrefix(path, "/v1") +
				"?api-version=" + url.QueryEscape(apiVersion)
		}
	}
	if strings.HasSuffix(base, "/v1") && strings.HasPrefix(path, "/v1/") {
		path = strings.TrimPrefix(path, "/v1")
	}
	return base + path
}

package diagnose

import (
	"fmt"
	"strings"
	"time"

	"github.com/oairl/oairl/internal/humanize"
)

// Fix codes, stable (they appear in --format json).
const (
	FixHonourRetryAfter  = "honour_retry_after"
	FixPace              = "pace_under_limit"
	FixLowerMaxTokens    = "lower_max_tokens"
	FixCountTokens       = "count_tokens"
	FixShrinkRequest     = "shrink_request"
	FixUseBatch          = "use_batch_api"
	FixUpgradeTier       = "upgrade_tier"
	FixCheckBilling      = "check_billing"
	FixWaitDaily         = "wait_for_daily_reset"
	FixRampGradually     = "ramp_gradually"
	FixReduceConcurrency = "reduce_concurrency"
	FixRetryBackoff      = "retry_with_backoff"
	FixCheckKey          = "check_api_key"
	FixCheckOrgProject   = "check_org_project"
	FixCheckRegion       = "check_region"
	FixCheckModel        = "check_model"
	FixReduceContext     = "reduce_context"
	FixWaitBatchQueue    = "wait_for_batch_queue"
	FixEdge              = "check_proxy_or_cdn"
	FixFixRequest        = "fix_request"
	FixCheckNetwork      = "check_network"
	FixSharedBudget      = "check_shared_budget"
	FixRaiseAzureQuota   = "raise_azure_quota"
	FixResubmit          = "resubmit_request"
	FixCheckBaseURL      = "check_base_url"
	FixRetryLater        = "retry_later"
	FixFlexFallback      = "flex_fallback_auto"
)

// FormatWait renders a wait for people: milliseconds below a minute
// ("120ms", "1.146s", "7s"), tenths of a second below an hour ("10m",
// "1m26.4s"), minutes above ("23h55m").
func FormatWait(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		d = d.Round(100 * time.Millisecond)
	default:
		d = d.Round(time.Minute)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func kindWords(kind string) string {
	switch kind {
	case "RPM":
		return "requests per minute"
	case "TPM":
		return "tokens per minute"
	case "RPD":
		return "requests per day"
	case "TPD":
		return "tokens per day"
	}
	return ""
}

func figures(f Finding) string {
	var parts []string
	if f.Limit > 0 {
		parts = append(parts, fmt.Sprintf("limit %s", human(f.Limit)))
	}
	if f.Used > 0 {
		parts = append(parts, fmt.Sprintf("used %s", human(f.Used)))
	}
	if f.Requested > 0 {
		parts = append(parts, fmt.Sprintf("requested %s", human(f.Requested)))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// human formats an integer with thousands separators: 2000000 → "2,000,000".
func human(n int64) string {
	return humanize.Int(n)
}

func waitPhrase(f Finding) string {
	if f.Wait <= 0 {
		return ""
	}
	return fmt.Sprintf("; the response says wait %s (%s)", FormatWait(f.Wait), f.WaitSource)
}

func summarize(f Finding) string {
	s := summarizeVerdict(f)
	if f.Truncated {
		s += " (the capture was cut short: classified from the readable part)"
	}
	return s
}

// httpWords renders a status for a summary: "HTTP 429", or "no HTTP status
// given" for a saved body without one.
func httpWords(status int) string {
	if status == 0 {
		return "no HTTP status given"
	}
	return fmt.Sprintf("HTTP %d", status)
}

// pageWords renders the status of a finding with, for a body that is not
// the API's JSON (an HTML error or login page), its content type and a
// one-line excerpt: `HTTP 502, text/html: "502 Bad Gateway"`.
func pageWords(f Finding) string {
	s := httpWords(f.Status)
	if f.Code != "" || f.Type != "" || strings.Contains(f.ContentType, "json") {
		return s
	}
	if f.ContentType != "" {
		s += ", " + f.ContentType
	}
	if f.Message != "" {
		s += fmt.Sprintf(": %q", f.Message)
	}
	return s
}

// isAzureDayQuota reports whether f is an Azure 429 that asks to wait a day
// or more, classified as quota_exhausted.
func isAzureDayQuota(f Finding) bool {
	return f.Verdict == QuotaExhausted && f.Provider == "azure" && parseMessage(f.Message).wait >= 24*time.Hour
}

func summarizeVerdict(f Finding) string {
	model := ""
	if f.Model != "" {
		model = " for " + f.Model
	}
	switch f.Verdict {
	case OK:
		return "ok: the request succeeded"
	case RPMLimited, TPMLimited, RPDLimited, TPDLimited:
		scope := ""
		if f.Scope == "project" {
			scope = " (the project's limit, not the organization's)"
		}
		s := fmt.Sprintf("%s (%s) limit reached%s%s%s%s", kindWords(f.LimitKind), f.LimitKind, model, scope, figures(f), waitPhrase(f))
		if ob := f.RateLimits.OutputTokens; f.RateLimits.Provider == "anthropic" && ob.Known && ob.Remaining == 0 && f.Verdict == TPMLimited {
			s = fmt.Sprintf("output tokens per minute exhausted (%s/%s)", human(ob.Remaining), human(ob.Limit))
			if ib := f.RateLimits.InputTokens; ib.Known {
				s += fmt.Sprintf("; input tokens fine (%s/%s)", human(ib.Remaining), human(ib.Limit))
			}
			s += waitPhrase(f) + "; output is charged as max_tokens up front: a smaller max_tokens lets more requests through"
		}
		if f.Verdict == RPDLimited || f.Verdict == TPDLimited {
			s += "; a daily limit: waits are minutes to hours"
		}
		return s
	case FlexUnavailable:
		return "flex capacity unavailable (429 resource_unavailable): not a rate limit and not billed; retry later, or resend with service_tier \"auto\"" + waitPhrase(f)
	case Unaffordable:
		s := fmt.Sprintf("payment: the account can fund only %s output tokens for this request (asked up to %s)", human(f.Limit), human(f.Requested))
		if f.Provider == "openrouter" {
			s = fmt.Sprintf("payment: OpenRouter can fund only %s output tokens for this request (asked up to %s)", human(f.Limit), human(f.Requested))
		}
		return s + "; not a rate limit: lower max_tokens or add credit (with no max_tokens the provider assumes the model's maximum output)"
	case RequestTooLarge:
		if f.Code == "max_tokens_per_request" || f.Type == "max_tokens_per_request" {
			return fmt.Sprintf("request too large for the embeddings endpoint%s: not a rate limit, not retried; split it into smaller requests", figures(f))
		}
		if f.LimitKind == "" && f.Limit == 0 {
			return fmt.Sprintf("request body larger than the maximum request size the API accepts (a limit in bytes, %s), not a token or rate limit: it can never succeed as sent", httpWords(f.Status))
		}
		return fmt.Sprintf("request larger than the %s limit%s%s: not transient, it can never succeed as sent",
			kindWords(firstNonEmpty(f.LimitKind, "TPM")), model, figures(f))
	case RampLimited:
		return "slow_down: traffic grew faster than allowed (ramp-rate limit), even if under RPM/TPM" + waitPhrase(f)
	case ConcurrencyLimited:
		s := "concurrency limit: too many requests in flight"
		if f.RateLimits.Requests.Known && f.RateLimits.Tokens.Known {
			s += fmt.Sprintf("; per-minute headers show room (%s requests, %s tokens left)",
				human(f.RateLimits.Requests.Remaining), human(f.RateLimits.Tokens.Remaining))
		}
		return s + waitPhrase(f)
	case QuotaExhausted:
		if isAzureDayQuota(f) {
			return "Azure asks to retry after a day or more: the deployment's effective quota is zero or a trial/free-tier quota; this is not a per-minute limit and retrying will not recover"
		}
		if f.Provider == "azure" && f.Code == "429" {
			return "Azure quota exhausted: retrying will not recover"
		}
		c := firstNonEmpty(f.Code, f.Type, "insufficient_quota")
		return c + ": no usable credit or a spend/usage limit reached; this is not a rate limit and waiting will not fix it"
	case BatchQueueFull:
		return fmt.Sprintf("Batch API enqueued-token limit reached%s%s: resubmit once in-progress batches complete", model, figures(f))
	case ContextLengthExceeded:
		return fmt.Sprintf("context length exceeded%s%s: prompt plus output budget exceed the model's context window", model, figures(f))
	case AuthFailed:
		switch {
		case f.Code == "unsupported_country_region_territory" || strings.Contains(strings.ToLower(f.Message), "territory"):
			return "auth failed: the API is not available in this country, region or territory"
		case strings.Contains(f.Code, "organization") || strings.Contains(f.Code, "project"):
			return "auth failed: the key does not belong to the organization or project sent (" + f.Code + ")"
		case f.Code == "access_terminated" || f.Code == "account_deactivated":
			return "auth failed: access to the API was terminated for this account (" + f.Code + ")"
		}
		return fmt.Sprintf("auth failed (%s): the API key, organization or project was rejected", httpWords(f.Status))
	case ModelUnavailable:
		if f.Model != "" {
			return fmt.Sprintf("model %s is unavailable: it does not exist or this key/project has no access", f.Model)
		}
		return "model unavailable: it does not exist or this key/project has no access"
	case ServerOverloaded:
		return fmt.Sprintf("server capacity (overload, %s), not your rate limit; retry with backoff%s", pageWords(f), waitPhrase(f))
	case ServerError:
		if f.Code == "request_timeout" {
			return "the request timed out inside the Batch API (request_timeout); resubmit it" + waitPhrase(f)
		}
		return fmt.Sprintf("server error (%s); retry a few times with backoff%s", pageWords(f), waitPhrase(f))
	case NetworkError:
		return "network error: no HTTP response"
	case EdgeThrottled:
		return fmt.Sprintf("a CDN or proxy throttled the request before the API saw it (non-JSON 429: %q)%s", f.Message, waitPhrase(f))
	case InvalidRequest:
		return fmt.Sprintf("invalid request (%s): fix the request; retrying will not help", pageWords(f))
	case NotAPIResponse:
		return fmt.Sprintf("not an API response (%s): check the base URL; the API answers JSON or an event stream, this is another server's page (a login, proxy or web page)", pageWords(f))
	case StreamTruncated:
		return fmt.Sprintf("stream truncated (%s): the event stream ended before its final event (data: [DONE] or response.completed); the answer is incomplete, retry the request", httpWords(f.Status))
	case NotExecuted:
		if f.Code == "batch_cancelled" {
			return "batch_cancelled: the batch was cancelled before this request ran; resubmit it if you still need it"
		}
		return firstNonEmpty(f.Code, "not executed") + ": the request never ran before the batch's completion window ended; resubmit it in a new batch"
	}
	if f.Status == 429 {
		return "HTTP 429 without details" + waitPhrase(f)
	}
	return fmt.Sprintf("unrecognised response (%s)", pageWords(f))
}

func fix(code, format string, a ...any) Fix { return Fix{Code: code, Text: fmt.Sprintf(format, a...)} }

func fixesFor(f Finding) []Fix {
	retry := func() Fix {
		if f.Wait > 0 {
			return fix(FixHonourRetryAfter, "Wait %s as the response says, then retry with exponential backoff and full jitter; never retry at once.", FormatWait(f.Wait))
		}
		return fix(FixHonourRetryAfter, "Honour Retry-After when present; otherwise retry with exponential backoff and full jitter (0.5 s doubling, capped), never at once.")
	}
	pace := fix(FixPace, "Pace under 90%% of the limit so spikes queue instead of failing: oairl run --rpm N --tpm N (token buckets).")
	lower := fix(FixLowerMaxTokens, "Lower max_tokens / max_completion_tokens: the output budget counts toward TPM when the request is admitted.")
	count := fix(FixCountTokens, "Count tokens first (oairl count FILE.jsonl) to see each request's TPM charge.")
	batch := fix(FixUseBatch, "Move bulk work to the Batch API (oairl batch submit): half the price and separate limits.")
	upgrade := fix(FixUpgradeTier, "Raise the usage tier (limits grow with paid usage) or ask OpenAI for higher limits.")
	shared := fix(FixSharedBudget, "Limits are per organization/project and model, not per key: other processes and keys share this budget.")
	switch f.Verdict {
	case RPMLimited:
		return []Fix{retry(), pace, shared, batch, upgrade}
	case TPMLimited:
		return []Fix{retry(), pace, lower, count, batch, upgrade}
	case RPDLimited, TPDLimited:
		w := "A daily limit: retrying within seconds will not help"
		if f.Wait > 0 {
			w += fmt.Sprintf("; the response says %s", FormatWait(f.Wait))
		}
		return []Fix{fix(FixWaitDaily, "%s. Stop and resume later.", w), batch, upgrade, lower}
	case FlexUnavailable:
		return []Fix{
			fix(FixRetryLater, "Flex capacity is short: retry later with backoff, without slowing your RPM/TPM pacing (this is not a rate limit and is not billed)."),
			fix(FixFlexFallback, "Or resend the request with service_tier \"auto\" (standard price) after a few misses (oairl run --flex-fallback N)."),
		}
	case Unaffordable:
		return []Fix{
			fix(FixLowerMaxTokens, "Lower max_tokens to at most %s for this request (and set one where none is sent: the provider then assumes the model's maximum output).", human(f.Limit)),
			fix(FixCheckBilling, "Or add credit to the account."),
		}
	case RequestTooLarge:
		if f.Code == "max_tokens_per_request" || f.Type == "max_tokens_per_request" {
			return []Fix{fix(FixShrinkRequest, "Split the input array into requests of at most 300,000 tokens in total (each input at most 8,192 tokens, at most 2,048 inputs); do not retry as sent."), count}
		}
		if f.LimitKind == "" && f.Limit == 0 {
			return []Fix{
				fix(FixShrinkRequest, "Make the request body smaller in bytes (fewer or smaller images and documents, shorter inputs; send large files by reference or split the work): it can never succeed as sent; do not retry."),
			}
		}
		return []Fix{
			fix(FixShrinkRequest, "Shrink the prompt or max_tokens: this one request needs more tokens than the whole per-minute bucket, so it can never succeed; do not retry."),
			lower, count, upgrade,
		}
	case RampLimited:
		return []Fix{fix(FixRampGradually, "Ramp traffic up gradually (OpenAI's guidance: at most ~50%% more every 15 minutes) and retry at a lower rate."), retry(), pace}
	case ConcurrencyLimited:
		return []Fix{fix(FixReduceConcurrency, "Lower the number of requests in flight (oairl run --max-concurrent N); do not lower RPM/TPM pacing."), retry()}
	case QuotaExhausted:
		if isAzureDayQuota(f) || f.Provider == "azure" && f.Code == "429" {
			return []Fix{
				fix(FixRaiseAzureQuota, "Raise the deployment's TPM quota in Azure AI Foundry (Quotas) or move it to a paid (S0) resource/region with quota (https://aka.ms/oai/quotaincrease). Do not retry in a loop."),
				fix(FixCheckOrgProject, "Check that the endpoint and deployment are the ones you expect (a trial or free resource has near-zero quota)."),
			}
		}
		return []Fix{
			fix(FixCheckBilling, "Check billing: add credit or raise the organization/project spend limit (https://platform.openai.com/settings/organization/billing). Do not retry."),
			fix(FixCheckOrgProject, "Check that the key bills the organization/project you expect (OPENAI_ORG_ID, OPENAI_PROJECT_ID)."),
		}
	case BatchQueueFull:
		return []Fix{
			fix(FixWaitBatchQueue, "Wait until in-progress batches for this model complete, then resubmit; do not resubmit in a loop."),
			fix(FixCountTokens, "Split the file so each batch's prompt + output-budget tokens fit the enqueued limit (oairl count, oairl batch submit splits)."),
			upgrade,
		}
	case ContextLengthExceeded:
		return []Fix{fix(FixReduceContext, "Shorten the messages or lower max_tokens so prompt + output fit the model's context window; do not retry."), count}
	case AuthFailed:
		if f.Code == "unsupported_country_region_territory" || strings.Contains(strings.ToLower(f.Message), "territory") {
			return []Fix{fix(FixCheckRegion, "The API refuses requests from this country or region; it is not a key problem.")}
		}
		return []Fix{
			fix(FixCheckKey, "Check OPENAI_API_KEY: it must be a current key (keys are shown once at https://platform.openai.com/api-keys)."),
			fix(FixCheckOrgProject, "Check OPENAI_ORG_ID / OPENAI_PROJECT_ID: the key must be a member of them; unset them to use the key's default."),
		}
	case ModelUnavailable:
		return []Fix{
			fix(FixCheckModel, "Check the model name and that this project may use it (GET /v1/models lists what the key can see); some models need a higher tier or verification."),
			fix(FixCheckOrgProject, "Check OPENAI_ORG_ID / OPENAI_PROJECT_ID: model access is granted per organization and project."),
		}
	case ServerOverloaded, ServerError:
		return []Fix{fix(FixRetryBackoff, "Retry with exponential backoff and jitter; nothing is wrong with your pacing, keep your RPM/TPM settings."), retry()}
	case NetworkError:
		return []Fix{fix(FixCheckNetwork, "Check connectivity, proxies and --base-url; retry with backoff.")}
	case EdgeThrottled:
		return []Fix{fix(FixEdge, "A CDN or proxy (e.g. Cloudflare error 1015) throttled you: slow down, honour retry-after, and check shared IPs, VPNs or gateways."), retry()}
	case NotExecuted:
		return []Fix{fix(FixResubmit, "Resubmit the requests that never ran (oairl batch submit on the failed custom_ids); a smaller batch finishes inside the 24 h window more easily.")}
	case NotAPIResponse:
		return []Fix{
			fix(FixCheckBaseURL, "Check --base-url / OPENAI_BASE_URL: it must point at the API root (e.g. https://api.openai.com/v1), not a web page, login portal or proxy sign-in."),
			fix(FixCheckNetwork, "A corporate proxy or captive portal may answer in the API's place: sign in to it or bypass it for the API host."),
		}
	case StreamTruncated:
		return []Fix{fix(FixRetryBackoff, "Retry the request: the connection closed mid-stream (a proxy timeout, a server restart); keep the partial text out of your results."), retry()}
	case InvalidRequest:
		return []Fix{fix(FixFixRequest, "Fix the request as the message says (oairl count validates request files); retrying sends the same error.")}
	}
	if f.Retryable {
		return []Fix{retry()}
	}
	return []Fix{}
}

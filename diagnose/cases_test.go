package diagnose

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCases runs the shared real-world cases (/work/shared/cases/CASES.md,
// copied into testdata/cases) through ParseSaved and Classify.
func TestCases(t *testing.T) {
	rpm := func(wait time.Duration, src string) classifyRow {
		return classifyRow{verdict: RPMLimited, retry: true, wait: wait, source: src, kind: "RPM", limit: 500, used: 500, req: 1,
			wantModel: "gpt-4o-mini", wantOrg: "org-XXXX", wantProvider: "openai"}
	}
	tests := []struct {
		file string
		want classifyRow
	}{
		// B16: insufficient_quota is a 429 that must never be retried.
		{"B16.http", classifyRow{verdict: QuotaExhausted}},
		// B17a: no retry-after: the message's 120ms (same as the reset of the
		// exhausted request window).
		{"B17a_missing.http", rpm(120*time.Millisecond, "message")},
		// B17b: retry-after 0 is no hint; retry-after-ms 1500 wins.
		{"B17b_zero_and_ms.http", rpm(1500*time.Millisecond, "retry-after-ms")},
		// B17c: HTTP-date 7 s after the response's Date header.
		{"B17c_httpdate.http", rpm(7*time.Second, "retry-after-date")},
		// B17d: 600 s is reported as is; callers decide it is too long.
		{"B17d_huge.http", rpm(10*time.Minute, "retry-after")},
		// B17e: decimals.
		{"B17e_fraction.http", rpm(2500*time.Millisecond, "retry-after")},
		// B17f: garbage retry-after and a negative retry-after-ms are ignored.
		{"B17f_garbage.http", rpm(120*time.Millisecond, "message")},
		// B19: one request over the TPM bucket: never retryable.
		{"B19.http", classifyRow{verdict: RequestTooLarge, kind: "TPM", limit: 30000, req: 31538, wantModel: "gpt-4o"}},
		// B21: capacity errors that are not your limit.
		{"B21a_429_overloaded.http", classifyRow{verdict: ServerOverloaded, retry: true}},
		{"B21b_503_overloaded.http", classifyRow{verdict: ServerOverloaded, retry: true, wait: 3 * time.Second, source: "retry-after"}},
		{"B21c_429_concurrency.http", classifyRow{verdict: ConcurrencyLimited, retry: true}},
		{"B21d_500.http", classifyRow{verdict: ServerError, retry: true}},
		// B10: a failed batch's token_limit_exceeded error.
		{"B10.batch_failed.json", classifyRow{verdict: BatchQueueFull, retry: true, limit: 90000, wantModel: "gpt-4o", wantOrg: "org-XXXX"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			fh, err := os.Open(filepath.Join("testdata", "cases", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			caps, err := ParseSaved(fh)
			if err != nil {
				t.Fatal(err)
			}
			if len(caps) != 1 {
				t.Fatalf("got %d captures, want 1", len(caps))
			}
			c := caps[0]
			// The local clock is far from the Date header: the HTTP-date
			// wait must come from the header, not from now.
			f := Classify(c.Status, c.Header, c.Body, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			checkRow(t, f, tt.want)
			if f.RequestID == "" && c.Source == SourceCurl {
				t.Error("request id not read")
			}
		})
	}
}

// TestB21cHeaders checks the concurrency verdict rests on the headers: the
// same body with the request window drained is an RPM limit.
func TestB21cHeaders(t *testing.T) {
	body := []byte(`{"error":{"message":"Rate limit reached.","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)
	roomy := hdr("x-ratelimit-limit-requests: 5000", "x-ratelimit-remaining-requests: 4990", "x-ratelimit-reset-requests: 12ms",
		"x-ratelimit-limit-tokens: 2000000", "x-ratelimit-remaining-tokens: 1990000", "x-ratelimit-reset-tokens: 300ms")
	if f := Classify(429, roomy, body, testNow); f.Verdict != ConcurrencyLimited {
		t.Errorf("roomy headers: %s, want concurrency_limited", f.Verdict)
	}
	drained := roomy.Clone()
	drained.Set("x-ratelimit-remaining-requests", "0")
	f := Classify(429, drained, body, testNow)
	if f.Verdict != RPMLimited || f.Wait != 12*time.Millisecond || f.WaitSource != "reset-requests" {
		t.Errorf("drained: %s %v %s, want rpm_limited 12ms reset-requests", f.Verdict, f.Wait, f.WaitSource)
	}
}

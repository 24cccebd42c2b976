package diagnose

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNoFalseModel(t *testing.T) {
	for _, msg := range []string{
		"That model is currently overloaded with other requests.",
		"Too many concurrent requests for this model.",
		"This model's maximum context length is 4097 tokens.",
		"The model produced invalid content.",
	} {
		f := Classify(503, nil, []byte(openaiErr(msg, "server_error", "")), testNow)
		if f.Model != "" {
			t.Errorf("%q: model %q, want none", msg, f.Model)
		}
	}
}

func fuzzSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "cases", "*"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	for _, r := range classifyRows {
		f.Add([]byte(r.body))
	}
	f.Add([]byte("Error code: 429 - {'error': {'message': 'x\\'y', 'code': None}}"))
	f.Add([]byte("error, status code: 500, status: 500, message: x, body: {}"))
	f.Add([]byte("HTTP/2 429\n< x: y\n\n"))
}

// FuzzParseSaved: any input either fails with an error or yields captures
// that Classify accepts; nothing panics.
func FuzzParseSaved(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		caps, err := ParseSaved(bytes.NewReader(in))
		if err != nil {
			if len(caps) != 0 {
				t.Fatal("captures with an error")
			}
			return
		}
		for _, c := range caps {
			if c.Line < 1 || c.Source == "" {
				t.Fatalf("bad capture %+v", c)
			}
			fd := Classify(c.Status, c.Header, c.Body, testNow)
			if fd.Verdict == "" || fd.Summary == "" || fd.Wait < 0 {
				t.Fatalf("bad finding %+v", fd)
			}
		}
	})
}

// FuzzClassify: arbitrary bodies and header values never panic, and the
// invariants hold (no wait without retry; quota never retryable).
func FuzzClassify(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		h := http.Header{}
		parts := strings.SplitN(string(body), "\n", 4)
		if len(parts) == 4 {
			h.Set("retry-after", parts[0])
			h.Set("retry-after-ms", parts[1])
			h.Set("x-ratelimit-reset-requests", parts[2])
			h.Set("x-ratelimit-remaining-requests", "0")
		}
		for _, st := range []int{0, 200, 400, 401, 403, 404, 413, 429, 500, 503, 529} {
			fd := Classify(st, h, body, testNow)
			if fd.Verdict == "" || fd.Wait < 0 || (fd.Wait > 0 && !fd.Retryable) {
				t.Fatalf("status %d: %+v", st, fd)
			}
			if fd.Verdict == QuotaExhausted && fd.Retryable {
				t.Fatalf("retryable quota: %+v", fd)
			}
		}
	})
}

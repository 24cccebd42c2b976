package diagnose

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 14 §3: a 2xx whose body is not the API's is not "ok".
func TestNotAPIResponse(t *testing.T) {
	h := http.Header{"Content-Type": {"text/html; charset=utf-8"}}
	page := "<!DOCTYPE html>\n<html><head><title>Sign in &ndash; Corp SSO</title></head>\n<body><form>Please log in</form></body></html>"
	f := Classify(200, h, []byte(page), time.Now())
	if f.Verdict != NotAPIResponse || f.Retryable || f.ExitCode() != 1 {
		t.Fatalf("verdict %s retryable %v exit %d", f.Verdict, f.Retryable, f.ExitCode())
	}
	for _, want := range []string{"not an API response", "check the base URL", "HTTP 200", "text/html", "Sign in – Corp SSO"} {
		if !strings.Contains(f.Summary, want) {
			t.Errorf("summary %q lacks %q", f.Summary, want)
		}
	}
	if f.ContentType != "text/html" || f.Fixes[0].Code != FixCheckBaseURL {
		t.Errorf("content type %q fixes %v", f.ContentType, f.Fixes)
	}
	// Plain text without a title: the text, one line, cut.
	f = Classify(200, http.Header{"Content-Type": {"text/plain"}}, []byte(strings.Repeat("proxy says hello\n", 40)), time.Now())
	if f.Verdict != NotAPIResponse || strings.Contains(f.Message, "\n") || len([]rune(f.Message)) > 121 {
		t.Errorf("text page: %s %q", f.Verdict, f.Message)
	}
	// The API's own answers stay ok.
	for _, body := range []string{`{"id":"chatcmpl-1","object":"chat.completion","choices":[]}`, `[{"embedding":[]}]`, "data: {\"object\":\"chat.completion.chunk\"}\n\ndata: [DONE]\n\n"} {
		if f := Classify(200, nil, []byte(body), time.Now()); f.Verdict != OK {
			t.Errorf("%q: %s", body, f.Verdict)
		}
	}
}

// Issue 14 §3: a 502/503 page shows status, content type and a one-line
// excerpt, not "<!DOCTYPE html>".
func TestErrorPageExcerpt(t *testing.T) {
	page := "<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"
	for _, status := range []int{502, 503} {
		f := Classify(status, http.Header{"Content-Type": {"text/html"}}, []byte(page), time.Now())
		for _, want := range []string{"text/html", `"502 Bad Gateway"`} {
			if !strings.Contains(f.Summary, want) {
				t.Errorf("%d: summary %q lacks %q", status, f.Summary, want)
			}
		}
		if !strings.Contains(f.Summary, "HTTP "+strconv.Itoa(status)) || strings.Contains(f.Summary+f.Message, "DOCTYPE") || !f.Retryable {
			t.Errorf("%d: summary %q message %q", status, f.Summary, f.Message)
		}
	}
	// Without a title: the page's text, tags dropped.
	if got := Excerpt([]byte("<html><body><h1>Service   Unavailable</h1><p>Back soon</p></body></html>"), 120); got != "Service Unavailable Back soon" {
		t.Errorf("excerpt %q", got)
	}
}

// Issue 14 §3: a stream that ends before its final event is truncated and
// retryable; error events inside a 200 stream are classified by their code
// (case B37).
func TestStreamTruncatedAndErrorEvents(t *testing.T) {
	chat := "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
	resp := "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"error\":null}}\n\n" +
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n"
	for name, body := range map[string]string{"chat": chat, "responses": resp} {
		for _, status := range []int{200, 0} {
			f := Classify(status, http.Header{"Content-Type": {"text/event-stream"}}, []byte(body), time.Now())
			if f.Verdict != StreamTruncated || !f.Retryable {
				t.Errorf("%s (status %d): %s retryable %v", name, status, f.Verdict, f.Retryable)
			}
		}
	}
	if f := Classify(200, nil, []byte(chat+"data: [DONE]\n\n"), time.Now()); f.Verdict != OK {
		t.Errorf("complete chat stream: %s", f.Verdict)
	}
	done := "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"error\":null}}\n\n"
	if f := Classify(200, nil, []byte(resp+done), time.Now()); f.Verdict != OK {
		t.Errorf("complete responses stream: %s", f.Verdict)
	}
	for file, want := range map[string]struct {
		v     Verdict
		retry bool
	}{
		"B37a_responses_failed_ratelimit.sse": {TPMLimited, true},
		"B37b_error_event_quota.sse":          {QuotaExhausted, false},
		"B37c_partial_then_failed.sse":        {ServerError, true},
		"B37d_completed.sse":                  {OK, false},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", "cases", file))
		if err != nil {
			t.Fatal(err)
		}
		caps, err := ParseSaved(bytes.NewReader(b))
		if err != nil || len(caps) != 1 {
			t.Fatalf("%s: %v", file, err)
		}
		if f := ClassifyCapture(caps[0], time.Now()); f.Verdict != want.v || f.Retryable != want.retry {
			t.Errorf("%s: %s retryable %v, want %s %v", file, f.Verdict, f.Retryable, want.v, want.retry)
		}
	}
}

// Issue 14 §6: an unparseable reset ("-1", "1d", "soon") is unknown: null
// in JSON, "-" in TSV, "unknown" in the text table; never 0 s.
func TestUnparseableResetUnknown(t *testing.T) {
	for _, reset := range []string{"-1", "1d", "soon"} {
		h := http.Header{}
		h.Set("x-ratelimit-limit-requests", "500")
		h.Set("x-ratelimit-remaining-requests", "0")
		h.Set("x-ratelimit-reset-requests", reset)
		h.Set("x-ratelimit-limit-tokens", "30000")
		h.Set("x-ratelimit-remaining-tokens", "20000")
		h.Set("x-ratelimit-reset-tokens", "1s")
		f := Classify(429, h, []byte(`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`), time.Now())
		if f.RateLimits.Requests.ResetKnown || !f.RateLimits.Tokens.ResetKnown {
			t.Fatalf("%s: reset known %v", reset, f.RateLimits.Requests.ResetKnown)
		}
		rep := Report{Mode: "saved", Findings: []Entry{{Finding: f, Origin: "x:1", Format: "curl -i"}}}
		var js, tsv, txt bytes.Buffer
		_ = rep.WriteJSON(&js)
		_ = rep.WriteTSV(&tsv)
		_ = rep.WriteText(&txt)
		var doc struct {
			Findings []struct {
				RateLimits struct {
					Requests struct {
						Reset        string   `json:"reset"`
						ResetSeconds *float64 `json:"reset_seconds"`
					} `json:"requests"`
				} `json:"rate_limits"`
			} `json:"findings"`
		}
		if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if w := doc.Findings[0].RateLimits.Requests; w.ResetSeconds != nil || w.Reset != reset {
			t.Errorf("%s: JSON reset %q reset_seconds %v", reset, w.Reset, w.ResetSeconds)
		}
		cols := strings.Split(strings.TrimSpace(tsv.String()), "\t")
		if cols[12] != "-" || cols[15] != "1" {
			t.Errorf("%s: TSV requests reset %q tokens reset %q", reset, cols[12], cols[15])
		}
		if !strings.Contains(txt.String(), "unknown") {
			t.Errorf("%s: text table lacks unknown:\n%s", reset, txt.String())
		}
	}
}

package runner

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/send"
)

func htmlLogin() *api.Response {
	h := http.Header{}
	h.Set("content-type", "text/html; charset=utf-8")
	return &api.Response{StatusCode: 200, Header: h, Body: []byte("<!DOCTYPE html><html><head><title>Sign in - Corp SSO</title></head><body>log in</body></html>")}
}

func invalidURL() *api.Response {
	return errResponse(404, "invalid_request_error", "", "Invalid URL (POST /v1/v1/chat/completions)")
}

// Issue 14 §0, §3: answers that blame the endpoint (an HTML page in a
// 200, a 404 Invalid URL for every request) stop the run after a few,
// exit 1, with nothing recorded and nothing counted as sent; a rerun
// against the right server sends everything.
func TestWrongEndpointStops(t *testing.T) {
	for name, bad := range map[string]func() *api.Response{"html 200": htmlLogin, "404 invalid url": invalidURL} {
		for _, workers := range []int{1, 4} {
			dir := t.TempDir()
			in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 20, 5))
			out := filepath.Join(dir, "out.jsonl")
			p := &funcPoster{fn: func(int, call) (*api.Response, error) { return bad(), nil }}
			var log bytes.Buffer
			o := baseOptions(out, in)
			o.Client, o.RPM, o.TPM, o.Clock, o.MaxConcurrent, o.Log = p, 1000, 1_000_000, newInstant(), workers, &log
			sum, err := Run(context.Background(), o)
			if err != nil || sum.ExitCode != exitcode.Failure || !strings.Contains(sum.StopReason, "check --base-url") {
				t.Fatalf("%s/%d: err %v exit %d stop %q", name, workers, err, sum.ExitCode, sum.StopReason)
			}
			if n := len(p.Calls()); n > send.EndpointStop+workers {
				t.Errorf("%s/%d: %d calls, want at most %d", name, workers, n, send.EndpointStop+workers)
			}
			if rs := readResults(t, out); len(rs) != 0 || sum.Sent != 0 || sum.Failed != 0 {
				t.Errorf("%s/%d: %d results, sent %d, failed %d", name, workers, len(rs), sum.Sent, sum.Failed)
			}
			if name == "html 200" && !strings.Contains(sum.StopReason, "Sign in - Corp SSO") {
				t.Errorf("stop reason lacks the page excerpt: %q", sum.StopReason)
			}
			p.fn = func(int, call) (*api.Response, error) { return okResponse(), nil }
			if sum, err := Run(context.Background(), o); err != nil || sum.Succeeded != 20 {
				t.Errorf("%s/%d: rerun: %v %+v", name, workers, err, sum)
			}
		}
	}
}

// After successes, a 404 is the request's own: recorded, not a stop.
func TestNotFoundAfterSuccessIsRecorded(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 6, 5))
	out := filepath.Join(dir, "out.jsonl")
	p := &funcPoster{fn: func(n int, c call) (*api.Response, error) {
		if customIDOf(c.Body) == "c5" {
			return invalidURL(), nil
		}
		return okResponse(), nil
	}}
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM, o.Clock = p, 1000, 1_000_000, newInstant()
	sum, err := Run(context.Background(), o)
	if err != nil || sum.Succeeded != 5 || sum.Failed != 1 || sum.StopReason != "" {
		t.Fatalf("err %v succeeded %d failed %d stop %q", err, sum.Succeeded, sum.Failed, sum.StopReason)
	}
}

// --retry-failed resends failures recorded by an older version that were
// the endpoint's fault (404 Invalid URL), not only the retryable ones.
func TestRetryFailedResendsEndpointFaults(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 3, 5))
	var lines []string
	for i := 0; i < 3; i++ {
		lines = append(lines, fmt.Sprintf(`{"id":"batch_req_%d","custom_id":"c%d","response":{"status_code":404,"request_id":"","body":{"error":{"message":"Invalid URL (POST /v1/v1/chat/completions)","type":"invalid_request_error","param":null,"code":null}}},"error":{"code":"invalid_request","message":"Invalid URL (POST /v1/v1/chat/completions)"}}`, i, i))
	}
	out := writeLines(t, dir, "out.jsonl", lines)
	p := okPoster()
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM, o.RetryFailed = p, 1000, 1_000_000, true
	sum, err := Run(context.Background(), o)
	if err != nil || len(p.Calls()) != 3 || sum.Succeeded != 3 {
		t.Fatalf("err %v calls %d succeeded %d", err, len(p.Calls()), sum.Succeeded)
	}
	b, _ := os.ReadFile(out)
	if strings.Contains(string(b), "Invalid URL") {
		t.Errorf("the endpoint failures stayed: %s", b)
	}
}

// Issue 14 §0: with no limits known (no --tier), the first request is a
// probe the others wait behind; a quota answer to it stops the run before
// they are released: exactly one call.
func TestQuotaProbeStopsBeforeRelease(t *testing.T) {
	for i := 0; i < 5; i++ {
		dir := t.TempDir()
		in := writeLines(t, dir, "in.jsonl", chatLines("q", "gpt-4o-mini", 50, 20))
		quota := capture(t, "B16.http")
		p := &funcPoster{fn: func(int, call) (*api.Response, error) { return quota, nil }}
		o := baseOptions(dir+"/out.jsonl", in)
		o.Client, o.MaxConcurrent = p, 8
		sum, _ := Run(context.Background(), o)
		if sum.ExitCode != exitcode.Quota {
			t.Fatalf("exit %d", sum.ExitCode)
		}
		if n := len(p.Calls()); n != 1 {
			t.Fatalf("%d requests went out; only the probe should have", n)
		}
	}
}

package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/clock"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/exitcode"
)

func okPoster() *funcPoster {
	return &funcPoster{fn: func(int, call) (*api.Response, error) { return okResponse(), nil }}
}

// D1: a second run on the same results file is refused (exit 1).
func TestLockRefusesSecondRun(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 3, 5))
	out := filepath.Join(dir, "out.jsonl")
	unlock, err := lockOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	p := okPoster()
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM = p, 1000, 1_000_000
	sum, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "in use by another oairl run") || sum.ExitCode != exitcode.Failure {
		t.Fatalf("err %v exit %d, want a lock refusal (exit 1)", err, sum.ExitCode)
	}
	if len(p.Calls()) != 0 {
		t.Fatalf("%d requests sent by the refused run", len(p.Calls()))
	}
	unlock()
	if _, err := Run(context.Background(), o); err != nil || len(p.Calls()) != 3 {
		t.Fatalf("after unlock: %v, %d calls", err, len(p.Calls()))
	}
}

// D3: the input itself (a symlink or hard link to it) as -o is refused.
func TestOutputIsInputRefused(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 3, 5))
	for _, mk := range []func(string) error{
		func(p string) error { return os.Symlink(in, p) },
		func(p string) error { return os.Link(in, p) },
	} {
		out := filepath.Join(dir, fmt.Sprintf("out%d.jsonl", len(dir)))
		os.Remove(out)
		if err := mk(out); err != nil {
			t.Fatal(err)
		}
		p := okPoster()
		o := baseOptions(out, in)
		o.Client, o.RPM, o.TPM = p, 1000, 1_000_000
		sum, err := Run(context.Background(), o)
		if err == nil || sum.ExitCode != exitcode.Usage || !strings.Contains(err.Error(), "is the input file") || len(p.Calls()) != 0 {
			t.Fatalf("err %v exit %d calls %d", err, sum.ExitCode, len(p.Calls()))
		}
	}
}

// D3: lines with a custom_id but no response and no error (a copy of the
// input, {"custom_id":…} alone) are not results: their requests are sent.
func TestNonResultLinesAreNotDone(t *testing.T) {
	dir := t.TempDir()
	lines := chatLines("c", "gpt-4o-mini", 3, 5)
	in := writeLines(t, dir, "in.jsonl", lines)
	out := writeLines(t, dir, "out.jsonl", []string{lines[0], `{"custom_id":"c1"}`, `{"custom_id":"c2","response":null,"error":null}`})
	p := okPoster()
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM = p, 1000, 1_000_000
	sum, err := Run(context.Background(), o)
	if err != nil || len(p.Calls()) != 3 || sum.Skipped != 0 {
		t.Fatalf("err %v calls %d skipped %d, want 3 sent", err, len(p.Calls()), sum.Skipped)
	}
}

// D2: bare bodies (auto ids line-N): a changed input is refused on resume;
// explicit custom_ids whose body changed are resent with a warning.
func TestInputChangedOnResume(t *testing.T) {
	dir := t.TempDir()
	bare := func(s string) string {
		return fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":%q}],"max_tokens":5}`, s)
	}
	in := writeLines(t, dir, "in.jsonl", []string{bare("A1"), bare("A2")})
	out := filepath.Join(dir, "out.jsonl")
	p := okPoster()
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM = p, 1000, 1_000_000
	if _, err := Run(context.Background(), o); err != nil || len(p.Calls()) != 2 {
		t.Fatalf("first run: %v, %d calls", err, len(p.Calls()))
	}
	// Unchanged: nothing sent.
	if sum, err := Run(context.Background(), o); err != nil || len(p.Calls()) != 2 || sum.Skipped != 2 {
		t.Fatalf("unchanged rerun: %v, %d calls", err, len(p.Calls()))
	}
	// A line inserted at the top.
	writeLines(t, dir, "in.jsonl", []string{bare("NEW0"), bare("A1"), bare("A2")})
	sum, err := Run(context.Background(), o)
	if err == nil || sum.ExitCode != exitcode.Input || !strings.Contains(err.Error(), "input changed") || len(p.Calls()) != 2 {
		t.Fatalf("inserted line: err %v exit %d calls %d; want refusal (exit 3)", err, sum.ExitCode, len(p.Calls()))
	}
	// Explicit custom_ids: the changed line is resent, the other skipped.
	in2 := writeLines(t, dir, "in2.jsonl", chatLines("c", "gpt-4o-mini", 2, 5))
	out2 := filepath.Join(dir, "out2.jsonl")
	o2 := baseOptions(out2, in2)
	var log bytes.Buffer
	o2.Client, o2.RPM, o2.TPM, o2.Log = p, 1000, 1_000_000, &log
	if _, err := Run(context.Background(), o2); err != nil {
		t.Fatal(err)
	}
	writeLines(t, dir, "in2.jsonl", []string{chatLine("c0", "gpt-4o-mini", 5), chatLine("c1", "gpt-4o-mini", 7)})
	n := len(p.Calls())
	sum, err = Run(context.Background(), o2)
	if err != nil || len(p.Calls()) != n+1 || sum.Skipped != 1 || !strings.Contains(log.String(), "different body") {
		t.Fatalf("explicit ids: err %v calls %d skipped %d log %q", err, len(p.Calls())-n, sum.Skipped, log.String())
	}
	// And a further rerun finds the new result for c1.
	if sum, err := Run(context.Background(), o2); err != nil || len(p.Calls()) != n+1 || sum.Skipped != 2 {
		t.Fatalf("third run: err %v calls %d skipped %d", err, len(p.Calls())-n, sum.Skipped)
	}
}

// D4: a recorded success is never removed or resent, whatever later
// lines for the same custom_id say.
func TestSuccessWinsOverLaterFailure(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 1, 5))
	succ := `{"id":"batch_req_1","custom_id":"c0","response":{"status_code":200,"request_id":"r","body":{"id":"x"}},"error":null}`
	fail := `{"id":"batch_req_2","custom_id":"c0","response":{"status_code":500,"request_id":"r","body":{"error":{"message":"boom","type":"server_error"}}},"error":{"code":"server_error","message":"boom"}}`
	out := writeLines(t, dir, "out.jsonl", []string{succ, fail})
	p := okPoster()
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM, o.RetryFailed = p, 1000, 1_000_000, true
	sum, err := Run(context.Background(), o)
	if err != nil || len(p.Calls()) != 0 || sum.ExitCode != exitcode.OK {
		t.Fatalf("err %v calls %d exit %d", err, len(p.Calls()), sum.ExitCode)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), `"batch_req_1"`) {
		t.Fatalf("the success was removed: %s", b)
	}
}

// D5: a 200 whose body is not a good answer is a retryable failure.
func TestBad200IsRetried(t *testing.T) {
	for _, body := range []string{`{"id":"chatcmpl-1","choi`, ``, `{"error":{"message":"The server had an error while processing your request.","type":"server_error","code":null}}`} {
		dir := t.TempDir()
		in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 1, 5))
		out := filepath.Join(dir, "out.jsonl")
		clk := newInstant()
		p := &funcPoster{fn: func(n int, _ call) (*api.Response, error) {
			return &api.Response{StatusCode: 200, Header: http.Header{}, Body: []byte(body)}, nil
		}}
		o := baseOptions(out, in)
		o.Client, o.RPM, o.TPM, o.MaxAttempts, o.Clock = p, 1000, 1_000_000, 3, clk
		sum, err := Run(context.Background(), o)
		if err != nil || len(p.Calls()) != 3 || sum.Succeeded != 0 || sum.Failed != 1 || sum.ExitCode != exitcode.Partial {
			t.Fatalf("body %q: err %v calls %d succeeded %d failed %d exit %d", body, err, len(p.Calls()), sum.Succeeded, sum.Failed, sum.ExitCode)
		}
		rs := readResults(t, out)
		if len(rs) != 1 || rs[0].Error == nil {
			t.Fatalf("body %q: recorded %+v", body, rs)
		}
		// --retry-failed sends it again (it is retryable).
		p.fn = func(int, call) (*api.Response, error) { return okResponse(), nil }
		o.RetryFailed = true
		if sum, err := Run(context.Background(), o); err != nil || sum.Succeeded != 1 {
			t.Fatalf("body %q: retry: %v %+v", body, err, sum)
		}
	}
}

// D6: a complete last line without "\n" is kept (the "\n" added), not
// resent; a torn one is still truncated.
func TestCompleteTailKept(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 2, 5))
	out := filepath.Join(dir, "out.jsonl")
	succ := `{"id":"batch_req_1","custom_id":"c0","response":{"status_code":200,"request_id":"r","body":{}},"error":null}` + "\n" +
		`{"id":"batch_req_2","custom_id":"c1","response":{"status_code":200,"request_id":"r","body":{}},"error":null}`
	if err := os.WriteFile(out, []byte(succ), 0o644); err != nil {
		t.Fatal(err)
	}
	p := okPoster()
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM = p, 1000, 1_000_000
	sum, err := Run(context.Background(), o)
	if err != nil || len(p.Calls()) != 0 || sum.Skipped != 2 || sum.TornBytes != 0 {
		t.Fatalf("err %v calls %d skipped %d", err, len(p.Calls()), sum.Skipped)
	}
	if rs := readResults(t, out); len(rs) != 2 {
		t.Fatalf("%d results", len(rs))
	}
}

// D7: a rerun whose results hold failures for the input exits 7 and says so.
func TestRecordedFailuresExit7(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 2, 5))
	var lines []string
	for i := 0; i < 2; i++ {
		lines = append(lines, fmt.Sprintf(`{"id":"batch_req_%d","custom_id":"c%d","response":{"status_code":500,"request_id":"r","body":{"error":{"message":"boom","type":"server_error"}}},"error":{"code":"server_error","message":"boom"}}`, i, i))
	}
	out := writeLines(t, dir, "out.jsonl", lines)
	p := okPoster()
	var log bytes.Buffer
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM, o.Log = p, 1000, 1_000_000, &log
	sum, err := Run(context.Background(), o)
	if err != nil || len(p.Calls()) != 0 || sum.ExitCode != exitcode.Partial || sum.SkippedFailed != 2 || !strings.Contains(log.String(), "--retry-failed") {
		t.Fatalf("err %v calls %d exit %d skipped_failed %d log %q", err, len(p.Calls()), sum.ExitCode, sum.SkippedFailed, log.String())
	}
	// With something else to send too, the recorded failures still make it 7.
	writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 3, 5))
	sum, err = Run(context.Background(), o)
	if err != nil || len(p.Calls()) != 1 || sum.ExitCode != exitcode.Partial {
		t.Fatalf("mixed: err %v calls %d exit %d", err, len(p.Calls()), sum.ExitCode)
	}
}

// D7: nothing reachable (connection refused) stops early, exit 1, and
// records nothing, so a rerun sends everything.
func TestUnreachableStopsEarly(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 40, 5))
	out := filepath.Join(dir, "out.jsonl")
	p := &funcPoster{fn: func(int, call) (*api.Response, error) {
		return nil, fmt.Errorf("dial tcp 127.0.0.1:1: %w", syscall.ECONNREFUSED)
	}}
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM, o.Clock, o.BaseURL = p, 1000, 1_000_000, newInstant(), "http://127.0.0.1:1/v1"
	sum, err := Run(context.Background(), o)
	if err != nil || sum.ExitCode != exitcode.Failure || !strings.Contains(sum.StopReason, "cannot reach http://127.0.0.1:1/v1") {
		t.Fatalf("err %v exit %d stop %q", err, sum.ExitCode, sum.StopReason)
	}
	if n := len(p.Calls()); n > unreachableStop {
		t.Errorf("%d attempts, want at most %d", n, unreachableStop)
	}
	if rs := readResults(t, out); len(rs) != 0 || sum.Sent != 0 || sum.Unsent != 40 {
		t.Errorf("%d results, sent %d unsent %d", len(rs), sum.Sent, sum.Unsent)
	}
}

// D8: a key echoed by the server is masked everywhere.
func TestKeyRedacted(t *testing.T) {
	const key = "sk-test-SECRET123456789"
	for _, status := range []int{400, 401} {
		dir := t.TempDir()
		in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 1, 5))
		out := filepath.Join(dir, "out.jsonl")
		p := &funcPoster{fn: func(int, call) (*api.Response, error) {
			return errResponse(status, "invalid_request_error", "bad", "your key "+key+" is wrong"), nil
		}}
		var log bytes.Buffer
		o := baseOptions(out, in)
		o.Client, o.RPM, o.TPM, o.Log, o.APIKey = p, 1000, 1_000_000, &log, key
		sum, _ := Run(context.Background(), o)
		b, _ := os.ReadFile(out)
		for what, s := range map[string]string{"log": log.String(), "results": string(b), "stop_reason": sum.StopReason} {
			if strings.Contains(s, "SECRET123456789") {
				t.Errorf("HTTP %d: key in %s: %s", status, what, s)
			}
		}
		readResults(t, out) // still valid JSON
	}
}

// D12: a server "request too large" is filed as request_too_large.
func TestServerRequestTooLargeKind(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 1, 5))
	out := filepath.Join(dir, "out.jsonl")
	resp := capture(t, "B19.http")
	p := &funcPoster{fn: func(int, call) (*api.Response, error) { return resp, nil }}
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM = p, 1000, 1_000_000
	sum, err := Run(context.Background(), o)
	if err != nil || sum.FailedByKind["request_too_large"] != 1 || sum.RateLimited["request_too_large"] != 1 || sum.RateLimited["other"] != 0 {
		t.Fatalf("err %v failed_by_kind %v rate_limited %v", err, sum.FailedByKind, sum.RateLimited)
	}
	if rs := readResults(t, out); rs[0].Error.Code != "request_too_large" {
		t.Fatalf("code %q", rs[0].Error.Code)
	}
}

// D14: an overflowing retry-after is a huge wait: stop, exit 6.
func TestRetryAfterOverflowStops(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 1, 5))
	out := filepath.Join(dir, "out.jsonl")
	p := &funcPoster{fn: func(int, call) (*api.Response, error) {
		return errResponse(429, "requests", "rate_limit_exceeded", "Rate limit reached for requests", "retry-after", "99999999999999999999"), nil
	}}
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM, o.Clock = p, 1000, 1_000_000, newInstant()
	sum, err := Run(context.Background(), o)
	if err != nil || sum.ExitCode != exitcode.RateLimited || len(p.Calls()) != 1 {
		t.Fatalf("err %v exit %d calls %d stop %q", err, sum.ExitCode, len(p.Calls()), sum.StopReason)
	}
}

// edge_throttled (a CDN 429) is retried after its retry-after.
func TestEdgeThrottledRetried(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 1, 5))
	out := filepath.Join(dir, "out.jsonl")
	p := &funcPoster{fn: func(n int, _ call) (*api.Response, error) {
		if n == 0 {
			h := http.Header{}
			h.Set("content-type", "text/html")
			h.Set("server", "cloudflare")
			h.Set("retry-after", "3")
			return &api.Response{StatusCode: 429, Header: h, Body: []byte("<html><title>Error 1015</title>You are being rate limited</html>")}, nil
		}
		return okResponse(), nil
	}}
	clk := newInstant()
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM, o.Clock = p, 1000, 1_000_000, clk
	sum, err := Run(context.Background(), o)
	if err != nil || sum.Succeeded != 1 || len(p.Calls()) != 2 {
		t.Fatalf("err %v succeeded %d calls %d failed %v", err, sum.Succeeded, len(p.Calls()), sum.FailedByKind)
	}
	if sl := clk.Sleeps(); len(sl) != 1 || sl[0] < 3*time.Second {
		t.Errorf("waits %v, want the 3 s retry-after", sl)
	}
	if sum.RateLimited["edge_throttled"] != 1 {
		t.Errorf("rate_limited %v", sum.RateLimited)
	}
}

// D11: achieved rates exclude the initial full bucket, so they never read
// as over the limit the limiter enforced.
func TestSteadyRate(t *testing.T) {
	// evs: n successes, one every gap, starting at start.
	evs := func(n int, gap time.Duration) []doneEvent {
		var out []doneEvent
		for i := 0; i < n; i++ {
			out = append(out, doneEvent{start.Add(time.Duration(i) * gap).UnixNano(), 10})
		}
		return out
	}
	burst := append(evs(90, 0), evs(11, time.Second)[1:]...) // 90 at once, then 1/s for 10 s
	tests := []struct {
		name     string
		evs      []doneEvent
		w        func(doneEvent) float64
		capacity float64
		want     float64
	}{
		{"all within the initial bucket: per minute", evs(90, 0), one, 90, 90},
		{"burst then 60/min: the steady 60, not 600", burst, one, 90, 60},
		{"tokens weighted", burst, charge, 900, 600},
		{"unknown limit, short run", evs(10, time.Second), one, 0, 10},
		{"unknown limit, long run", evs(301, time.Second), one, 0, 60.2},
		{"none", nil, one, 10, 0},
	}
	for _, tt := range tests {
		if got := steadyRate(tt.evs, tt.w, tt.capacity); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// D11: a short run at the limits reports at most 100% of them.
func TestShortRunPercentAtMost100(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 30, 5))
	out := filepath.Join(dir, "out.jsonl")
	clk := clock.NewFake(start)
	p := &funcPoster{clk: clk, fn: func(int, call) (*api.Response, error) { return okResponse(), nil }}
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM, o.Clock, o.MaxConcurrent = p, 20, 1_000_000, clk, 4
	done := make(chan *Summary)
	go func() { s, _ := Run(context.Background(), o); done <- s }()
	var sum *Summary
	for sum == nil {
		select {
		case sum = <-done:
		default:
			clk.Advance(100 * time.Millisecond)
			runtime.Gosched()
		}
	}
	if sum.Succeeded != 30 {
		t.Fatalf("succeeded %d", sum.Succeeded)
	}
	if m := sum.Models[0]; m.RPMPercent > 100.0001 || m.RPMPercent <= 0 {
		t.Errorf("rpm_percent %.1f (achieved %.1f of %d), want (0, 100]", m.RPMPercent, m.AchievedRPM, m.RPMLimit)
	}
}

// Off a terminal, a slow run prints a plain progress line periodically.
func TestHeartbeatLines(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 2, 5))
	out := filepath.Join(dir, "out.jsonl")
	release := make(chan struct{})
	p := &funcPoster{fn: func(n int, _ call) (*api.Response, error) {
		if n == 1 {
			<-release
		}
		return okResponse(), nil
	}}
	var log syncBuf
	o := baseOptions(out, in)
	o.Client, o.RPM, o.TPM, o.Log, o.Heartbeat = p, 1000, 1_000_000, &log, time.Millisecond
	go func() {
		for !strings.Contains(log.String(), "progress: 1/2") {
			time.Sleep(time.Millisecond)
		}
		close(release)
	}()
	sum, err := Run(context.Background(), o)
	if err != nil || sum.Succeeded != 2 {
		t.Fatalf("%v %+v", err, sum)
	}
	if !strings.Contains(log.String(), " RPM of 1000") {
		t.Errorf("heartbeat %q", log.String())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Re-check: the lock follows the file, not its name: a symlink or a hard
// link to a results file in use is refused too.
func TestLockCoversLinks(t *testing.T) {
	for _, kind := range []string{"symlink", "hardlink"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 3, 5))
			out := filepath.Join(dir, "out.jsonl")
			if err := os.WriteFile(out, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			other := filepath.Join(dir, "other.jsonl")
			mk := os.Symlink
			if kind == "hardlink" {
				mk = os.Link
			}
			if err := mk(out, other); err != nil {
				t.Fatal(err)
			}
			unlock, err := lockOutput(out)
			if err != nil {
				t.Fatal(err)
			}
			defer unlock()
			p := okPoster()
			o := baseOptions(other, in)
			o.Client, o.RPM, o.TPM = p, 1000, 1_000_000
			sum, err := Run(context.Background(), o)
			if err == nil || sum.ExitCode != exitcode.Failure || len(p.Calls()) != 0 {
				t.Fatalf("run on a %s of a locked results file: err %v exit %d, %d calls", kind, err, sum.ExitCode, len(p.Calls()))
			}
		})
	}
}

// Re-check: reformatting the input (whitespace, key order, escapes) is not
// a changed request: nothing is sent again.
func TestFingerprintIgnoresFormatting(t *testing.T) {
	a := []byte(`{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "caf\u00e9"}], "max_tokens": 5, "seed": 12345678901234567890}`)
	b := []byte(`{"max_tokens":5,"messages":[{"content":"café","role":"user"}],"model":"gpt-4o-mini","seed":12345678901234567890}`)
	if bodyFingerprint(a) != bodyFingerprint(b) {
		t.Fatal("same JSON, different fingerprints")
	}
	c := []byte(`{"max_tokens":6,"messages":[{"content":"café","role":"user"}],"model":"gpt-4o-mini","seed":12345678901234567890}`)
	if bodyFingerprint(b) == bodyFingerprint(c) {
		t.Fatal("different bodies, same fingerprint")
	}
	d := []byte(`{"seed":12345678901234567891,"max_tokens":5,"messages":[{"content":"café","role":"user"}],"model":"gpt-4o-mini"}`)
	if bodyFingerprint(b) == bodyFingerprint(d) {
		t.Fatal("big numbers must keep their digits")
	}
	if bodyFingerprint([]byte("not json")) == "" {
		t.Fatal("invalid JSON must still fingerprint")
	}
}

// Issue 14 §0: a key echoed with JSON \u escapes, doubled escapes or
// without its prefix is masked in the results file, the log and the stop
// reason, and the stored body stays valid JSON.
func TestEscapedKeyRedacted(t *testing.T) {
	const key = "sk-proj-SECRETabcdef123456789"
	for _, echoed := range []string{
		`\u0073k-proj-SECRETabcdef123456789`,
		`\u0073\u006b\u002d\u0070roj-SECRET\u0061bcdef123456789`,
		`proj-SECRETabcdef123456789`,
	} {
		dir := t.TempDir()
		in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 1, 5))
		out := filepath.Join(dir, "out.jsonl")
		p := &funcPoster{fn: func(int, call) (*api.Response, error) {
			body := `{"error":{"message":"Invalid header value for key ` + echoed + `.","type":"invalid_request_error","param":null,"code":"invalid_value"}}`
			return &api.Response{StatusCode: 400, Header: http.Header{}, Body: []byte(body)}, nil
		}}
		var log bytes.Buffer
		o := baseOptions(out, in)
		o.Client, o.RPM, o.TPM, o.Log, o.APIKey = p, 1000, 1_000_000, &log, key
		sum, _ := Run(context.Background(), o)
		b, _ := os.ReadFile(out)
		for what, s := range map[string]string{"log": log.String(), "results": string(b), "stop_reason": sum.StopReason} {
			if strings.Contains(s, "SECRET") {
				t.Errorf("%s: key in %s: %s", echoed, what, s)
			}
		}
		rs := readResults(t, out)
		if len(rs) != 1 {
			t.Fatalf("%s: %d results", echoed, len(rs))
		}
		for _, r := range rs { // still valid JSON
			if !json.Valid(r.Response.Body) {
				t.Errorf("%s: body not JSON: %s", echoed, r.Response.Body)
			}
		}
	}
}

// Issue 14 §6: --dry-run exits 3 when no line is valid, like the real run.
func TestDryRunNoValidLineExit3(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", []string{`{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini"`, `not json`})
	for _, dry := range []bool{true, false} {
		var out, log bytes.Buffer
		o := baseOptions(filepath.Join(dir, "out.jsonl"), in)
		o.DryRun, o.Out, o.Log, o.Client = dry, &out, &log, okPoster()
		sum, err := Run(context.Background(), o)
		if err == nil || sum.ExitCode != exitcode.Input || !strings.Contains(err.Error(), "no valid request") {
			t.Errorf("dry run %v: exit %d err %v", dry, sum.ExitCode, err)
		}
	}
}

// Issue 14 §7: after Ctrl-C the summary lists each unfinished request
// once ("not sent" was also counted in "no result yet").
func TestSummaryNoDoubleListing(t *testing.T) {
	s := &Summary{Requests: 1000, Sent: 188, Succeeded: 180, Unsent: 812, Abandoned: 3, NoResult: 812 + 3 + 5}
	var b bytes.Buffer
	if err := s.WriteTable(&b, true); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Count(out, "812") != 1 || strings.Contains(out, "no result yet") || !strings.Contains(out, "stopped before a final answer (resumable)") {
		t.Errorf("summary:\n%s", out)
	}
}

// Issue 14 §7: a rate over the limit shows its true figure and says why
// it can exceed the limit, instead of "30024 of 30000 (100.0%)".
func TestSummaryOverLimitTrueFigure(t *testing.T) {
	s := &Summary{Requests: 10, Sent: 10, Succeeded: 10, Models: []ModelSummary{{Model: "gpt-4o",
		RPMLimit: 500, AchievedRPM: 510, RPMPercent: 102, TPMLimit: 30000, AchievedTPM: 29000, TPMPercent: 96.7}}}
	var b bytes.Buffer
	if err := s.WriteTable(&b, true); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "510 of 500 (102.0%)") || !strings.Contains(out, "bucket starts full") {
		t.Errorf("over-limit RPM not shown true with its reason:\n%s", out)
	}
	if strings.Count(out, "bucket starts full") != 1 {
		t.Errorf("the reason belongs only to the rate over its limit:\n%s", out)
	}
}

package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/exitcode"
)

// TestRetryRules answers the first attempt with a saved response and every
// later one with 200, and checks the attempts, the wait before the retry
// (on the instant clock) and the exit code. The waits are the cases of B17
// (Retry-After missing, 0 with ms, HTTP-date, huge, fractional, garbage)
// and B21 (overload, 503, 500).
func TestRetryRules(t *testing.T) {
	tests := []struct {
		name         string
		first        func(t *testing.T) *api.Response
		wantAttempts int
		minWait      time.Duration // the first wait recorded
		maxWait      time.Duration
		wantExit     int
		wantResult   string // "ok", "failed" or "" (no line)
	}{
		{"B17a no retry-after: message/reset hint, floored", fromCase("B17a_missing.http"), 2, 250 * time.Millisecond, 250 * time.Millisecond, exitcode.OK, "ok"},
		{"B17b retry-after 0 with retry-after-ms 1500", fromCase("B17b_zero_and_ms.http"), 2, 1500 * time.Millisecond, 1500 * time.Millisecond, exitcode.OK, "ok"},
		{"B17c HTTP-date 7s after the date header", fromCase("B17c_httpdate.http"), 2, 7 * time.Second, 7 * time.Second, exitcode.OK, "ok"},
		{"B17d huge 600s stops (exit 6), not sent again", fromCase("B17d_huge.http"), 1, 0, 0, exitcode.RateLimited, ""},
		{"B17e fractional 2.5s", fromCase("B17e_fraction.http"), 2, 2500 * time.Millisecond, 2500 * time.Millisecond, exitcode.OK, "ok"},
		{"B17f garbage falls back", fromCase("B17f_garbage.http"), 2, 250 * time.Millisecond, 20 * time.Second, exitcode.OK, "ok"},
		{"retry-after 0 alone is no hint: backoff, never a hot loop", func(*testing.T) *api.Response {
			return errResponse(429, "server_error", "", "The server is overloaded.", "retry-after", "0")
		}, 2, 250 * time.Millisecond, 500 * time.Millisecond, exitcode.OK, "ok"},
		{"B21a 429 overloaded: backoff", fromCase("B21a_429_overloaded.http"), 2, 250 * time.Millisecond, 500 * time.Millisecond, exitcode.OK, "ok"},
		{"B21b 503 retry-after 3", fromCase("B21b_503_overloaded.http"), 2, 3 * time.Second, 3 * time.Second, exitcode.OK, "ok"},
		{"B21d 500: backoff", fromCase("B21d_500.http"), 2, 250 * time.Millisecond, 500 * time.Millisecond, exitcode.OK, "ok"},
		{"408 retried", func(*testing.T) *api.Response { return errResponse(408, "timeout", "", "Request timed out.") }, 2, 250 * time.Millisecond, 500 * time.Millisecond, exitcode.OK, "ok"},
		{"409 retried", func(*testing.T) *api.Response { return errResponse(409, "conflict", "", "Conflict.") }, 2, 250 * time.Millisecond, 500 * time.Millisecond, exitcode.OK, "ok"},
		{"400 never retried", func(*testing.T) *api.Response {
			return errResponse(400, "invalid_request_error", "context_length_exceeded", "This model's maximum context length is 128000 tokens.")
		}, 1, 0, 0, exitcode.Partial, "failed"},
		{"B19 request too large from the server: never retried", fromCase("B19.http"), 1, 0, 0, exitcode.Partial, "failed"},
		{"404 model not found: failed, exit 4", func(*testing.T) *api.Response {
			return errResponse(404, "invalid_request_error", "model_not_found", "The model `gpt-9` does not exist or you do not have access to it.")
		}, 1, 0, 0, exitcode.Auth, "failed"},
		{"401 stops the run (exit 4), no result", func(*testing.T) *api.Response {
			return errResponse(401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-test***.")
		}, 1, 0, 0, exitcode.Auth, ""},
		{"B16 insufficient_quota stops at once (exit 5), no retry", fromCase("B16.http"), 1, 0, 0, exitcode.Quota, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			in := writeLines(t, dir, "in.jsonl", []string{chatLine("a", "gpt-4o-mini", 20)})
			out := dir + "/out.jsonl"
			clk := newInstant()
			first := tt.first(t)
			p := &funcPoster{clk: clk, fn: func(n int, c call) (*api.Response, error) {
				if n == 0 {
					return first, nil
				}
				return okResponse(), nil
			}}
			o := baseOptions(out, in)
			o.Client, o.Clock = p, clk
			sum, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(p.Calls()); got != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
			}
			if sum.ExitCode != tt.wantExit {
				t.Errorf("exit = %d, want %d (stop: %s)", sum.ExitCode, tt.wantExit, sum.StopReason)
			}
			if tt.wantAttempts > 1 {
				calls := p.Calls()
				gap := calls[1].At.Sub(calls[0].At)
				if gap < tt.minWait || gap > tt.maxWait {
					t.Errorf("waited %s before the retry, want %s..%s (sleeps %v)", gap, tt.minWait, tt.maxWait, clk.Sleeps())
				}
			}
			rs := readResults(t, out)
			switch tt.wantResult {
			case "":
				if len(rs) != 0 {
					t.Errorf("a result was written: %+v", rs)
				}
				if sum.NoResult != 1 {
					t.Errorf("no_result = %d, want 1 (resumable)", sum.NoResult)
				}
			case "ok":
				if len(rs) != 1 || rs[0].Error != nil || rs[0].Response.StatusCode != 200 {
					t.Errorf("results = %+v, want one success", rs)
				}
			case "failed":
				if len(rs) != 1 || rs[0].Error == nil || rs[0].Response == nil || rs[0].Response.StatusCode != first.StatusCode {
					t.Errorf("results = %+v, want one failure carrying the answer", rs)
				}
			}
		})
	}
}

func fromCase(name string) func(t *testing.T) *api.Response {
	return func(t *testing.T) *api.Response { return capture(t, name) }
}

func TestHugeWaitMessage(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", []string{chatLine("a", "gpt-4o-mini", 20), chatLine("b", "gpt-4o-mini", 20)})
	clk := newInstant()
	huge := capture(t, "B17d_huge.http")
	p := &funcPoster{clk: clk, fn: func(int, call) (*api.Response, error) { return huge, nil }}
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Clock = p, clk
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sum.StopReason, "server asked to wait 10m0s") || !strings.Contains(sum.StopReason, "rerun later or raise --max-wait") {
		t.Errorf("stop reason %q", sum.StopReason)
	}
	if sum.ExitCode != exitcode.RateLimited || sum.NoResult != 2 || sum.Unsent != 1 || sum.Sent != 1 || len(p.Calls()) != 1 {
		t.Errorf("exit %d no_result %d unsent %d sent %d calls %d; want 6, 2, 1, 1, 1", sum.ExitCode, sum.NoResult, sum.Unsent, sum.Sent, len(p.Calls()))
	}
	// Raising --max-wait sleeps through it.
	o.MaxWait = 15 * time.Minute
	n := 0
	p.fn = func(int, call) (*api.Response, error) {
		n++
		if n == 1 {
			return huge, nil
		}
		return okResponse(), nil
	}
	sum, _ = Run(context.Background(), o)
	if sum.ExitCode != exitcode.OK || sum.Succeeded != 2 {
		t.Errorf("with --max-wait 15m: exit %d succeeded %d", sum.ExitCode, sum.Succeeded)
	}
}

func TestRetriesExhausted(t *testing.T) {
	for _, tt := range []struct {
		name     string
		answer   func() (*api.Response, error)
		wantExit int
		wantCode string
	}{
		{"500 every time", func() (*api.Response, error) { return capture(t, "B21d_500.http"), nil }, exitcode.Partial, "server_error"},
		{"connection reset every time", func() (*api.Response, error) {
			return nil, fmt.Errorf("post: %w", syscall.ECONNRESET)
		}, exitcode.Partial, "network_error"},
		{"TPM 429 every time", func() (*api.Response, error) {
			return errResponse(429, "tokens", "rate_limit_exceeded", "Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM): Limit 200000, Used 199990, Requested 40. Please try again in 12ms.",
				"x-ratelimit-limit-tokens", "200000", "x-ratelimit-remaining-tokens", "10", "x-ratelimit-reset-tokens", "12ms"), nil
		}, exitcode.RateLimited, "rate_limit_exceeded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			in := writeLines(t, dir, "in.jsonl", []string{chatLine("a", "gpt-4o-mini", 20)})
			clk := newInstant()
			p := &funcPoster{clk: clk, fn: func(int, call) (*api.Response, error) { return tt.answer() }}
			o := baseOptions(dir+"/out.jsonl", in)
			o.Client, o.Clock, o.MaxAttempts = p, clk, 4
			sum, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Calls()) != 4 {
				t.Errorf("attempts %d, want --max-attempts 4", len(p.Calls()))
			}
			if sum.ExitCode != tt.wantExit || sum.Retries != 3 {
				t.Errorf("exit %d retries %d, want %d, 3", sum.ExitCode, sum.Retries, tt.wantExit)
			}
			rs := readResults(t, dir+"/out.jsonl")
			if len(rs) != 1 || rs[0].Error == nil || rs[0].Error.Code != tt.wantCode || !strings.Contains(rs[0].Error.Message, "after 4 attempts") {
				t.Fatalf("results %+v, want one failure %s", rs, tt.wantCode)
			}
			// Backoff grows: each wait at most twice the ceiling of the one before.
			calls := p.Calls()
			for i := 2; i < len(calls); i++ {
				if calls[i].At.Before(calls[i-1].At.Add(250 * time.Millisecond)) {
					t.Errorf("retry %d after %s: under the 250ms floor", i, calls[i].At.Sub(calls[i-1].At))
				}
			}
			// --retry-failed sends it again, and the file keeps one line for it.
			p.fn = func(int, call) (*api.Response, error) { return okResponse(), nil }
			o.RetryFailed = true
			sum, err = Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			rs = readResults(t, dir+"/out.jsonl")
			if len(rs) != 1 || rs[0].Error != nil || sum.Succeeded != 1 {
				t.Fatalf("after --retry-failed: %+v", rs)
			}
		})
	}
}

func TestNonRetryableFailureNotResentByRetryFailed(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", []string{chatLine("a", "gpt-4o-mini", 20)})
	clk := newInstant()
	p := &funcPoster{clk: clk, fn: func(int, call) (*api.Response, error) {
		return errResponse(400, "invalid_request_error", "invalid_value", "Invalid value for 'temperature'."), nil
	}}
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Clock, o.RetryFailed = p, clk, true
	for i := 0; i < 2; i++ {
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.Calls()) != 1 {
		t.Errorf("a 400 was sent %d times", len(p.Calls()))
	}
}

// TestQuotaStopsDispatch: after the first insufficient_quota answer no
// further request is sent (B16), the results already received are kept,
// nothing is retried, exit 5; a rerun after billing is fixed sends the rest.
func TestQuotaStopsDispatch(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("q", "gpt-4o-mini", 30, 20))
	out := dir + "/out.jsonl"
	clk := newInstant()
	quota := capture(t, "B16.http")
	p := &funcPoster{clk: clk, fn: func(n int, c call) (*api.Response, error) {
		if n < 5 {
			return okResponse(), nil
		}
		return quota, nil
	}}
	o := baseOptions(out, in)
	o.Client, o.Clock, o.MaxConcurrent = p, clk, 1
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ExitCode != exitcode.Quota {
		t.Errorf("exit %d, want 5", sum.ExitCode)
	}
	if n := len(p.Calls()); n != 6 {
		t.Errorf("%d requests sent, want 5 successes + 1 quota answer, then nothing", n)
	}
	if !strings.Contains(sum.StopReason, "insufficient_quota") || !strings.Contains(sum.StopReason, "billing") {
		t.Errorf("stop reason %q", sum.StopReason)
	}
	rs := byID(t, readResults(t, out))
	if len(rs) != 5 || sum.NoResult != 25 || sum.Sent+sum.Unsent != sum.ToSend {
		t.Errorf("%d results kept, %d without result, sent %d + unsent %d != %d; want 5, 25", len(rs), sum.NoResult, sum.Sent, sum.Unsent, sum.ToSend)
	}
	if sum.QuotaErrors == 0 || len(sum.RateLimited) != 0 {
		t.Errorf("quota errors %d, rate_limited %v: a quota 429 is not a rate limit", sum.QuotaErrors, sum.RateLimited)
	}
	// Billing fixed: the rerun sends exactly the 25 others.
	p.fn = func(int, call) (*api.Response, error) { return okResponse(), nil }
	before := len(p.Calls())
	sum, _ = Run(context.Background(), o)
	if sent := len(p.Calls()) - before; sent != 25 || sum.ExitCode != 0 {
		t.Errorf("rerun sent %d (exit %d), want 25 (exit 0)", sent, sum.ExitCode)
	}
	if rs := byID(t, readResults(t, out)); len(rs) != 30 {
		t.Errorf("%d results after the rerun, want 30", len(rs))
	}
}

// TestQuotaWithConcurrency: with 8 workers, in-flight requests finish but
// nothing new is dispatched after the quota answer.
func TestQuotaWithConcurrency(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("q", "gpt-4o-mini", 200, 20))
	clk := newInstant()
	quota := capture(t, "B16.http")
	p := &funcPoster{clk: clk, fn: func(n int, c call) (*api.Response, error) { return quota, nil }}
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Clock, o.MaxConcurrent, o.RPM, o.TPM = p, clk, 8, 10_000, 10_000_000
	sum, _ := Run(context.Background(), o)
	if sum.ExitCode != exitcode.Quota || sum.Retries != 0 {
		t.Errorf("exit %d retries %d", sum.ExitCode, sum.Retries)
	}
	if n := len(p.Calls()); n > 8 {
		t.Errorf("%d requests sent after a quota answer; at most the 8 in flight may go", n)
	}
}

func TestTransportErrorRetried(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", []string{chatLine("a", "gpt-4o-mini", 20)})
	clk := newInstant()
	p := &funcPoster{clk: clk, fn: func(n int, c call) (*api.Response, error) {
		if n < 2 {
			return nil, fmt.Errorf("post: %w", io.ErrUnexpectedEOF)
		}
		return okResponse(), nil
	}}
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Clock = p, clk
	sum, err := Run(context.Background(), o)
	if err != nil || sum.ExitCode != 0 || len(p.Calls()) != 3 || sum.Retries != 2 {
		t.Fatalf("err %v exit %d calls %d retries %d", err, sum.ExitCode, len(p.Calls()), sum.Retries)
	}
}

// TestRateLimitPauseIsGlobal: a TPM 429 seen by one worker holds every
// worker until the wait is over.
func TestRateLimitPauseIsGlobal(t *testing.T) {
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("p", "gpt-4o-mini", 6, 20))
	clk := newInstant()
	tpm429 := errResponse(429, "tokens", "rate_limit_exceeded",
		"Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM): Limit 200000, Used 199990, Requested 40. Please try again in 5s.",
		"retry-after", "5")
	p := &funcPoster{clk: clk, fn: func(n int, c call) (*api.Response, error) {
		if n == 0 {
			return tpm429, nil
		}
		return okResponse(), nil
	}}
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Clock, o.RPM, o.TPM = p, clk, 10_000, 10_000_000
	sum, err := Run(context.Background(), o)
	if err != nil || sum.ExitCode != 0 {
		t.Fatal(err, sum.ExitCode)
	}
	calls := p.Calls()
	for _, c := range calls[1:] {
		if c.At.Before(calls[0].At.Add(5 * time.Second)) {
			t.Errorf("a request went %s after the TPM 429 asked for 5s", c.At.Sub(calls[0].At))
		}
	}
	if sum.RateLimited["TPM"] != 1 {
		t.Errorf("429s by type %v", sum.RateLimited)
	}
}

var _ = errors.New
var _ = http.StatusOK

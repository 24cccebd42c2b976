package send

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/pace"
)

// stubLimiter admits at once and records what the cycle tells it.
type stubLimiter struct {
	mu       sync.Mutex
	reserved int
	outcomes []pace.Outcome
	pauses   []pace.Kind
	tooLarge bool
}

func (l *stubLimiter) Reserve(ctx context.Context, model string, tokens int64) (pace.Permit, error) {
	if l.tooLarge {
		return nil, &pace.TooLargeError{Model: model, Tokens: tokens, Limit: 1}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.reserved++
	l.mu.Unlock()
	return permitFunc(func(o pace.Outcome) {
		l.mu.Lock()
		l.outcomes = append(l.outcomes, o)
		l.mu.Unlock()
	}), nil
}
func (l *stubLimiter) Observe(string, pace.Observation, time.Time) {}
func (l *stubLimiter) Pause(_ string, k pace.Kind, _ time.Time) {
	l.mu.Lock()
	l.pauses = append(l.pauses, k)
	l.mu.Unlock()
}

type permitFunc func(pace.Outcome)

func (p permitFunc) Done(o pace.Outcome) { p(o) }

func answer(status int, hdr map[string]string, body string) *Answer {
	h := http.Header{}
	for k, v := range hdr {
		h.Set(k, v)
	}
	return &Answer{Response: api.Response{StatusCode: status, Header: h, Body: []byte(body)}}
}

const tpm429 = `{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 1500. Please try again in 1ms.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`

func fastBackoff() *pace.Backoff {
	b := pace.NewBackoff(1)
	b.Base, b.Max, b.Floor = time.Millisecond, 2*time.Millisecond, time.Millisecond
	return b
}

// script answers attempt i with steps[i] (the last one repeats).
func script(steps ...func() (*Answer, error)) (func(context.Context) (*Answer, error), *int) {
	n := 0
	return func(context.Context) (*Answer, error) {
		s := steps[min(n, len(steps)-1)]
		n++
		return s()
	}, &n
}

func TestCycleDecisions(t *testing.T) {
	ok := func() (*Answer, error) { return answer(200, nil, `{"id":"x"}`), nil }
	rl := func() (*Answer, error) {
		return answer(429, map[string]string{"x-ratelimit-limit-tokens": "30000", "retry-after-ms": "1"}, tpm429), nil
	}
	quota := func() (*Answer, error) {
		return answer(429, nil, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`), nil
	}
	auth := func() (*Answer, error) {
		return answer(401, nil, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`), nil
	}
	s500 := func() (*Answer, error) {
		return answer(500, nil, `{"error":{"message":"boom","type":"server_error"}}`), nil
	}
	reset := func() (*Answer, error) { return nil, errors.New("read: connection reset by peer") }
	broken200 := func() (*Answer, error) { return answer(200, nil, `{"id":`), nil }
	delivered500 := func() (*Answer, error) {
		a := answer(200, nil, "")
		a.Delivered = true
		return a, errors.New("stream cut after the first byte")
	}
	tests := []struct {
		name         string
		steps        []func() (*Answer, error)
		want         Outcome
		wantAttempts int
		wantPauses   int
		wantCode     string
	}{
		{"success", []func() (*Answer, error){ok}, Succeeded, 1, 0, ""},
		{"rate limit then success pauses the bucket", []func() (*Answer, error){rl, rl, ok}, Succeeded, 3, 2, ""},
		{"quota is never retried", []func() (*Answer, error){quota, ok}, QuotaExhausted, 1, 0, ""},
		{"auth is never retried", []func() (*Answer, error){auth, ok}, AuthFailed, 1, 0, ""},
		{"5xx retried", []func() (*Answer, error){s500, reset, ok}, Succeeded, 3, 0, ""},
		{"broken 200 retried", []func() (*Answer, error){broken200, ok}, Succeeded, 2, 0, ""},
		{"gives up after MaxAttempts", []func() (*Answer, error){s500}, Failed, 3, 0, "server_error"},
		{"delivered answer is final", []func() (*Answer, error){delivered500, ok}, Succeeded, 1, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := &stubLimiter{}
			c := New(Config{Limiter: lim, Backoff: fastBackoff(), MaxAttempts: 3})
			att, n := script(tt.steps...)
			var failed, retried int
			res := c.Do(context.Background(), context.Background(), Request{Model: "gpt-4o", Charge: 100, Attempt: att,
				Hooks: Hooks{Failed: func(diagnose.Finding) { failed++ }, Retrying: func(diagnose.Finding, time.Duration) { retried++ }}})
			if res.Outcome != tt.want {
				t.Fatalf("outcome %v, want %v (finding %+v)", res.Outcome, tt.want, res.Finding)
			}
			if *n != tt.wantAttempts || res.Attempts != tt.wantAttempts {
				t.Errorf("%d attempts (result says %d), want %d", *n, res.Attempts, tt.wantAttempts)
			}
			if lim.reserved != tt.wantAttempts || len(lim.outcomes) != tt.wantAttempts {
				t.Errorf("reserved %d, done %d, want %d each", lim.reserved, len(lim.outcomes), tt.wantAttempts)
			}
			if len(lim.pauses) != tt.wantPauses {
				t.Errorf("%d pauses, want %d", len(lim.pauses), tt.wantPauses)
			}
			if tt.wantCode != "" && res.Code != tt.wantCode {
				t.Errorf("code %q, want %q", res.Code, tt.wantCode)
			}
			if tt.want == Succeeded && failed != tt.wantAttempts-1 {
				t.Errorf("Failed hook called %d times, want %d", failed, tt.wantAttempts-1)
			}
			if tt.want == Succeeded && retried != tt.wantAttempts-1 {
				t.Errorf("Retrying hook called %d times, want %d", retried, tt.wantAttempts-1)
			}
		})
	}
}

func TestCycleTooLargeAndNotAdmitted(t *testing.T) {
	c := New(Config{Limiter: &stubLimiter{tooLarge: true}})
	res := c.Do(context.Background(), context.Background(), Request{Model: "m", Charge: 5, Attempt: func(context.Context) (*Answer, error) {
		t.Fatal("a request too large was sent")
		return nil, nil
	}})
	var tl *pace.TooLargeError
	if res.Outcome != Failed || res.Code != "request_too_large" || !errors.As(res.Err, &tl) {
		t.Fatalf("got %+v", res)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = New(Config{Limiter: &stubLimiter{}}).Do(ctx, context.Background(), Request{Model: "m", Attempt: func(context.Context) (*Answer, error) {
		t.Fatal("sent after the admission context ended")
		return nil, nil
	}})
	if res.Outcome != NotAdmitted || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("got %+v", res)
	}
}

// orderLimiter admits at once and logs "done" when a permit is released.
type orderLimiter struct {
	stubLimiter
	log *[]string
}

func (l *orderLimiter) Reserve(ctx context.Context, model string, tokens int64) (pace.Permit, error) {
	return permitFunc(func(pace.Outcome) { *l.log = append(*l.log, "done") }), nil
}

// Observe ends pace.Local's probe too: it must come after the stop.
func (l *orderLimiter) Observe(string, pace.Observation, time.Time) {
	*l.log = append(*l.log, "observe")
}

// Issue 14 §0: a stopping answer (quota, auth) calls Stopping before the
// permit is released, so requests waiting behind it (the limiter's
// first-request probe) see the stop before they are admitted; one admitted
// as the stop lands is not sent.
func TestStopBeforeRelease(t *testing.T) {
	quota := `{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`
	for body, want := range map[string]Outcome{quota: QuotaExhausted, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`: AuthFailed} {
		var log []string
		c := New(Config{Limiter: &orderLimiter{log: &log}, Backoff: fastBackoff()})
		status := 429
		if want == AuthFailed {
			status = 401
		}
		att, _ := script(func() (*Answer, error) { return answer(status, nil, body), nil })
		res := c.Do(context.Background(), context.Background(), Request{Model: "m", Attempt: att, Hooks: Hooks{
			Stopping: func(o Outcome, f diagnose.Finding) { log = append(log, "stop") },
		}})
		if res.Outcome != want || strings.Join(log, " ") != "stop observe done" {
			t.Errorf("outcome %v, order %v; want stop, observe, done", res.Outcome, log)
		}
	}
	// Admitted after the stop: released unsent, never attempted.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var log []string
	c := New(Config{Limiter: &orderLimiter{log: &log}})
	att, n := script(func() (*Answer, error) { return answer(200, nil, `{}`), nil })
	if res := c.Do(ctx, context.Background(), Request{Model: "m", Attempt: att}); res.Outcome != NotAdmitted || *n != 0 || len(log) != 1 {
		t.Errorf("outcome %v, %d attempts, permits %v", res.Outcome, *n, log)
	}
}

// Issue 14 §0, §3: answers that blame the endpoint (a login page in a 200,
// 404 Invalid URL) are retried, never a recorded failure, and EndpointStop
// in a row end with WrongEndpoint; after a success a 404 is the request's.
func TestWrongEndpoint(t *testing.T) {
	page := func() (*Answer, error) {
		return answer(200, map[string]string{"content-type": "text/html"}, "<html><title>Sign in</title></html>"), nil
	}
	notFound := func() (*Answer, error) {
		return answer(404, nil, `{"error":{"message":"Invalid URL (POST /v1/x)","type":"invalid_request_error","param":null,"code":null}}`), nil
	}
	for _, bad := range []func() (*Answer, error){page, notFound} {
		c := New(Config{Limiter: &stubLimiter{}, Backoff: fastBackoff()})
		att, n := script(bad)
		var stopped []Outcome
		res := c.Do(context.Background(), context.Background(), Request{Model: "m", Attempt: att, Hooks: Hooks{
			Stopping: func(o Outcome, _ diagnose.Finding) { stopped = append(stopped, o) },
		}})
		if res.Outcome != WrongEndpoint || *n != EndpointStop || len(stopped) != 1 || stopped[0] != WrongEndpoint {
			t.Errorf("outcome %v after %d attempts, stopping %v", res.Outcome, *n, stopped)
		}
	}
	c := New(Config{Limiter: &stubLimiter{}, Backoff: fastBackoff()})
	ok, _ := script(func() (*Answer, error) { return answer(200, nil, `{"id":"x"}`), nil })
	c.Do(context.Background(), context.Background(), Request{Model: "m", Attempt: ok})
	att, n := script(notFound)
	if res := c.Do(context.Background(), context.Background(), Request{Model: "m", Attempt: att}); res.Outcome != Failed || *n != 1 {
		t.Errorf("404 after a success: %v after %d attempts", res.Outcome, *n)
	}
}

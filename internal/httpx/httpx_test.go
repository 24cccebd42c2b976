package httpx_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/httpx"
	"github.com/oairl/oairl/internal/pace"
)

// recClock records every wait and advances at once: tests assert the
// delays the transport chose, never wall time.
type recClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newRecClock() *recClock { return &recClock{now: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)} }

func (c *recClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}
func (c *recClock) Wall(d time.Duration) time.Duration { return d }
func (c *recClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}
func (c *recClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

var _ clock.Clock = (*recClock)(nil)

type answer struct {
	status int
	header map[string]string
	body   string
}

// server answers the scripted answers in turn, then 200 {"ok":true}.
func server(t *testing.T, answers ...answer) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		io.Copy(io.Discard, r.Body)
		if i < len(answers) {
			a := answers[i]
			for k, v := range a.header {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(a.status)
			io.WriteString(w, a.body)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func client(clk clock.Clock, trace io.Writer, secrets ...string) *http.Client {
	return httpx.New(httpx.Options{UserAgent: "oairl/test", MaxRetries: 4, Clock: clk, Backoff: pace.NewBackoff(1), Trace: trace, Secrets: secrets})
}

const (
	rateLimit = `{"error":{"message":"Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}}`
	quota     = `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`
	auth      = `{"error":{"message":"Incorrect API key provided: sk-abc...wxyz.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`
	serverErr = `{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}`
	queueFull = `{"error":{"message":"Enqueued token limit reached for gpt-4o in organization org-x. Limit: 90,000 enqueued tokens.","type":"invalid_request_error","param":null,"code":"token_limit_exceeded"}}`
)

func do(t *testing.T, c *http.Client, ctx context.Context, method, url string) int {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = bytes.NewReader([]byte(`{"x":1}`))
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestRetryDecisions(t *testing.T) {
	ra := func(s string) map[string]string { return map[string]string{"retry-after": s} }
	cases := []struct {
		name       string
		method     string
		ctx        func(context.Context) context.Context
		answers    []answer
		wantStatus int
		wantCalls  int32
		wantSleeps []time.Duration // nil: don't check values, only count = calls-1
	}{
		{"GET 429 retry-after 7 is waited 7s", "GET", nil, []answer{{429, ra("7"), rateLimit}}, 200, 2, []time.Duration{7 * time.Second}},
		{"GET retry-after-ms wins over retry-after", "GET", nil, []answer{{429, map[string]string{"retry-after-ms": "1500", "retry-after": "9"}, rateLimit}}, 200, 2, []time.Duration{1500 * time.Millisecond}},
		{"GET 500 then 503 then ok", "GET", nil, []answer{{500, nil, serverErr}, {503, nil, serverErr}}, 200, 3, nil},
		{"GET 408 and 409 retried", "GET", nil, []answer{{408, nil, `{"error":{"message":"timeout"}}`}, {409, nil, `{"error":{"message":"conflict"}}`}}, 200, 3, nil},
		{"GET gives up after MaxRetries", "GET", nil, []answer{{500, nil, serverErr}, {500, nil, serverErr}, {500, nil, serverErr}, {500, nil, serverErr}, {500, nil, serverErr}, {500, nil, serverErr}}, 500, 5, nil},
		{"insufficient_quota never retried", "GET", nil, []answer{{429, ra("1"), quota}}, 429, 1, []time.Duration{}},
		{"auth never retried", "GET", nil, []answer{{401, nil, auth}}, 401, 1, []time.Duration{}},
		{"batch queue full left to the engine", "POST", nil, []answer{{429, nil, queueFull}}, 429, 1, []time.Duration{}},
		{"400 never retried", "GET", nil, []answer{{400, nil, `{"error":{"message":"bad","type":"invalid_request_error"}}`}}, 400, 1, []time.Duration{}},
		{"x-should-retry false wins", "GET", nil, []answer{{503, map[string]string{"x-should-retry": "false"}, serverErr}}, 503, 1, []time.Duration{}},
		{"x-should-retry true on a 400", "GET", nil, []answer{{400, map[string]string{"x-should-retry": "true"}, `{"error":{"message":"flaky"}}`}}, 200, 2, nil},
		{"POST 429 retried (nothing was done)", "POST", nil, []answer{{429, ra("2"), rateLimit}}, 200, 2, []time.Duration{2 * time.Second}},
		{"POST 500 not retried (may have been done)", "POST", nil, []answer{{500, nil, serverErr}}, 500, 1, []time.Duration{}},
		{"idempotent POST 500 retried", "POST", httpx.Idempotent, []answer{{500, nil, serverErr}}, 200, 2, nil},
		{"WithoutRetry: GET 429 returned at once", "GET", httpx.WithoutRetry, []answer{{429, ra("1"), rateLimit}}, 429, 1, []time.Duration{}},
		{"a wait over MaxWait is the caller's", "GET", nil, []answer{{429, ra("86400"), rateLimit}}, 429, 1, []time.Duration{}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := server(t, tt.answers...)
			clk := newRecClock()
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx(ctx)
			}
			got := do(t, client(clk, nil), ctx, tt.method, srv.URL+"/v1/batches")
			if got != tt.wantStatus || n.Load() != tt.wantCalls {
				t.Fatalf("status %d after %d calls, want %d after %d", got, n.Load(), tt.wantStatus, tt.wantCalls)
			}
			sl := clk.Sleeps()
			if len(sl) != int(tt.wantCalls)-1 {
				t.Fatalf("%d waits %v, want %d", len(sl), sl, tt.wantCalls-1)
			}
			if tt.wantSleeps != nil {
				for i := range sl {
					if sl[i] != tt.wantSleeps[i] {
						t.Fatalf("waits %v, want %v", sl, tt.wantSleeps)
					}
				}
			}
			for _, d := range sl {
				if d < 250*time.Millisecond {
					t.Fatalf("wait %s under the 250ms floor", d)
				}
			}
		})
	}
}

func TestConnectionErrors(t *testing.T) {
	// A port nobody listens on: connection refused on every attempt.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/v1/files"
	ln.Close()
	for _, method := range []string{"GET", "POST"} {
		clk := newRecClock()
		if got := do(t, client(clk, nil), context.Background(), method, url); got != -1 {
			t.Fatalf("%s: status %d, want a transport error", method, got)
		}
		// A refused connection never reached the server: safe for POST too.
		if n := len(clk.Sleeps()); n != 4 {
			t.Fatalf("%s: %d retries, want 4", method, n)
		}
	}
}

func TestUserAgentAndExchange(t *testing.T) {
	var ua []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ua = append(ua, r.Header.Get("User-Agent"))
		mu.Unlock()
		w.Header().Set("x-ratelimit-limit-requests", "3")
		w.Header().Set("retry-after", "1")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"message":"bad"}}`)
	}))
	defer srv.Close()
	c := client(newRecClock(), nil)
	ctx, ex := httpx.WithExchange(context.Background())
	do(t, c, ctx, "GET", srv.URL)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("User-Agent", "OpenAI/Python 1.0")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ua[0] != "oairl/test" || ua[1] != "OpenAI/Python 1.0" {
		t.Fatalf("user agents %q: want oairl/test, then the caller's own kept", ua)
	}
	st, h, body := ex.Response()
	if st != 400 || h.Get("x-ratelimit-limit-requests") != "3" || !strings.Contains(string(body), `"bad"`) || ex.Attempts() != 1 {
		t.Fatalf("exchange %d %v %q (%d attempts)", st, h, body, ex.Attempts())
	}
}

func TestTraceMasksSecrets(t *testing.T) {
	const canary = "sk-proj-CANARYcanary0123456789abcdef"
	const azure = "0123456789abcdef0123456789abcdef"
	srv, _ := server(t, answer{429, map[string]string{"retry-after": "1"}, `{"error":{"message":"Rate limit reached for requests (caller ` + canary + `)","type":"requests","code":"rate_limit_exceeded"}}`})
	var trace bytes.Buffer
	c := client(newRecClock(), &trace, canary)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions?key="+canary, strings.NewReader(`{"note":"`+canary+`"}`))
	req.Header.Set("Authorization", "Bearer "+canary)
	req.Header.Set("api-key", azure)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	out := trace.String()
	for _, want := range []string{"> POST " + srv.URL + "/v1/chat/completions", "< 429 Too Many Requests", "Retry-After: 1", "(attempt 2)", "< 200 OK", `< body: {"ok":true}`, "Authorization: Bearer ***", "User-Agent: oairl/test"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "CANARY") || strings.Contains(out, azure) {
		t.Fatalf("trace shows a secret:\n%s", out)
	}
}

func TestTraceTruncatesBodies(t *testing.T) {
	big := strings.Repeat("x", 10000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) }))
	defer srv.Close()
	var trace bytes.Buffer
	c := httpx.New(httpx.Options{Trace: &trace, TraceBodyLimit: 100})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != len(big) {
		t.Fatalf("body cut for the caller: %d bytes", len(b))
	}
	if !strings.Contains(trace.String(), "< body: "+strings.Repeat("x", 100)+" … (9900 more bytes)") {
		t.Fatalf("trace:\n%s", trace.String())
	}
}

func TestNoRetryWrapper(t *testing.T) {
	srv, n := server(t, answer{429, map[string]string{"retry-after": "1"}, rateLimit})
	clk := newRecClock()
	rt := httpx.NoRetry(httpx.NewTransport(httpx.Options{MaxRetries: 4, Clock: clk}))
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || n.Load() != 1 || len(clk.Sleeps()) != 0 {
		t.Fatalf("status %d after %d calls: the wrapper must disable retries", resp.StatusCode, n.Load())
	}
}

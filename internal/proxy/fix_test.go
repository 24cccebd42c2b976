package proxy

import (
	"context"
	"encoding/json"
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
	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// Models that share one limit (gpt-4o and its snapshot gpt-4o-2024-08-06)
// are paced as one pair of buckets, as `oairl run` paces them: at 1 RPM a
// gpt-4o request uses the minute, so the snapshot's request waits (and is
// shed after the queue wait) instead of getting a bucket of its own.
func TestSharedLimitGroupOneBucket(t *testing.T) {
	up := simtest.New(t, sim.Config{Tier: "none"})
	r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 1, TPM: 1_000_000}, queueWait: 300 * time.Millisecond})
	body := func(model string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`
	}
	first, b := post(t, context.Background(), r.URL, body("gpt-4o"), nil)
	if first == nil || first.StatusCode != 200 {
		t.Fatalf("gpt-4o: %v %s", first, b)
	}
	resp, b := post(t, context.Background(), r.URL, body("gpt-4o-2024-08-06"), nil)
	if resp == nil || resp.StatusCode != 429 || !strings.Contains(string(b), "oairl proxy queued") {
		t.Fatalf("gpt-4o-2024-08-06 after gpt-4o at 1 RPM: %v %s; want shed (one shared bucket)", resp, b)
	}
	if n := simRequests(t, up, 1); n != 1 {
		t.Errorf("sim saw %d requests, want 1", n)
	}
}

// At the end of --grace, a request still queued (never sent) and one in
// flight upstream are answered 503 in OpenAI's envelope with retry-after
// and x-should-retry: true, never an empty 200; they are logged and
// counted as shed at shutdown, not as apps that went away; and Serve
// returns only after both handlers finished, so the stats count both.
func TestGraceEndAnswersRetryable503(t *testing.T) {
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[]}`))
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) })
	// 1 RPM: the first request goes out, the second waits a minute.
	local := pace.New(pace.Config{Clock: clock.Real(), Limits: func(string) pace.Limits { return pace.Limits{RPM: 1, TPM: 100000} }})
	var logBuf strings.Builder
	var mu sync.Mutex
	srv, err := New(Config{Upstream: up.URL + "/v1", Limiter: local, Seed: 1, MaxQueueWait: time.Hour,
		Log: lockedWriter{&mu, &logBuf}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, 200*time.Millisecond) }()
	base := "http://" + ln.Addr().String() + "/v1"
	type answer struct {
		resp *http.Response
		body []byte
	}
	got := make(chan answer, 2)
	send := func() {
		resp, b := post(t, context.Background(), base, chatBody(5, false), nil)
		got <- answer{resp, b}
	}
	go send()
	<-started
	go send()
	waitFor(t, func() bool { return srv.admit.Depth()[Normal] == 1 })
	stop()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// Serve has returned: both handlers are done and counted.
	st := srv.Stats()
	if st.Requests != 2 || st.ShutdownShed != 2 || st.ShutdownAbandoned != 1 || st.ClientGone != 0 || st.ByCode[503] != 2 {
		t.Errorf("stats after Serve: %+v; want 2 requests, both shed at shutdown (1 in flight), none client_gone", st)
	}
	for i := 0; i < 2; i++ {
		a := <-got
		if a.resp == nil {
			t.Fatalf("request %d: connection error, want a 503", i)
		}
		var e struct {
			Error struct{ Message, Type, Code string }
		}
		if a.resp.StatusCode != 503 || json.Unmarshal(a.body, &e) != nil || e.Error.Code != "proxy_shutting_down" || e.Error.Type != "server_error" {
			t.Errorf("answer %d: %d %q; want 503 in OpenAI's envelope", i, a.resp.StatusCode, a.body)
		}
		if a.resp.Header.Get("retry-after") == "" || a.resp.Header.Get("x-should-retry") != "true" {
			t.Errorf("answer %d headers %v: want retry-after and x-should-retry: true", i, a.resp.Header)
		}
	}
	mu.Lock()
	logs := logBuf.String()
	mu.Unlock()
	if strings.Contains(logs, "client_gone") || strings.Count(logs, "_at_shutdown") != 2 {
		t.Errorf("log lines:\n%s\nwant two *_at_shutdown, no client_gone", logs)
	}
}

// countingBody records how many bytes the proxy read of a body.
type countingBody struct {
	r    io.Reader
	read atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read.Add(int64(n))
	return n, err
}
func (c *countingBody) Close() error { return nil }

func bigChat(size int) string {
	head := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],`
	tail := `"max_tokens":5}`
	return head + strings.Repeat(" ", size-len(head)-len(tail)) + tail
}

// The bytes of bodies held by waiting and in-flight requests are bounded
// (--max-queue-bytes), whatever the number of requests: with a budget of
// 3.5 MiB and three 1 MiB requests in flight, a fourth 1 MiB body is
// answered 429 (OpenAI's envelope, retry-after) without a byte of it
// read, with a Content-Length or chunked; a body over the budget is 413,
// unread; a small body still fits; the budget is all given back at the end.
func TestBodyByteBudget(t *testing.T) {
	const mib = 1 << 20
	started := make(chan struct{}, 8)
	release := make(chan struct{})
	var upN atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if upN.Add(1) <= 3 {
			// The three big requests stay in flight until released.
			started <- struct{}{}
			<-release
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[]}`))
	}))
	t.Cleanup(up.Close)
	r := newRig(t, up.URL+"/v1", rigOpts{limits: pace.Limits{RPM: 1000, TPM: 10_000_000}, cfg: func(c *Config) {
		c.MaxQueueBytes = 3*mib + mib/2
	}})
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, b := post(t, context.Background(), r.URL, bigChat(mib), nil); resp == nil || resp.StatusCode != 200 {
				t.Errorf("in-flight request: %v %s", resp, b)
			}
		}()
	}
	for i := 0; i < 3; i++ {
		<-started
	}
	if h := r.Srv.bodies.Held(); h != 3*mib {
		t.Fatalf("held %d bytes with three 1 MiB requests in flight, want %d", h, 3*mib)
	}
	serve := func(body *countingBody, length int64) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/v1/chat/completions", body)
		req.ContentLength = length
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		r.Srv.ServeHTTP(rec, req)
		return rec
	}
	for _, length := range []int64{mib, -1} { // declared, chunked
		body := &countingBody{r: strings.NewReader(bigChat(mib))}
		rec := serve(body, length)
		var e struct {
			Error struct{ Message, Type, Code string }
		}
		if rec.Code != 429 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Code != "rate_limit_exceeded" || rec.Header().Get("retry-after") == "" {
			t.Errorf("4th 1 MiB body (length %d): %d %s %v; want 429 in OpenAI's envelope with retry-after", length, rec.Code, rec.Body, rec.Header())
		}
		if length >= 0 && body.read.Load() != 0 {
			t.Errorf("4th body with Content-Length: %d bytes read before the budget refused it, want 0", body.read.Load())
		}
		if length < 0 && body.read.Load() > mib/2+64<<10 {
			t.Errorf("4th chunked body: %d bytes read, want at most the budget left (%d)", body.read.Load(), mib/2)
		}
	}
	body := &countingBody{r: strings.NewReader(bigChat(4 * mib))}
	if rec := serve(body, 4*mib); rec.Code != 413 || body.read.Load() != 0 {
		t.Errorf("body over the budget: %d, %d bytes read; want 413 unread", rec.Code, body.read.Load())
	}
	if st := r.Srv.Stats(); st.ShedBytes != 2 {
		t.Errorf("ShedBytes %d, want 2", st.ShedBytes)
	}
	close(release)
	wg.Wait()
	if resp, b := post(t, context.Background(), r.URL, chatBody(5, false), nil); resp == nil || resp.StatusCode != 200 {
		t.Errorf("small request after the flood: %v %s", resp, b)
	}
	if h := r.Srv.bodies.Held(); h != 0 {
		t.Errorf("held %d bytes after every request ended, want 0", h)
	}
}

// An upstream that echoes the app's own bearer key in an error's code,
// type and message (breaker1 F3): the proxy's log lines, text and JSON,
// never hold it (the outcome is the redacted code).
func TestEchoedKeyNotLogged(t *testing.T) {
	const appKey = "sk-proj-APPKEYZZ1234567890abcdefghij"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := bearer(r.Header)
		w.Header().Set("x-request-id", "req_"+k)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		w.Write([]byte(`{"error":{"message":"bad key ` + k + `","type":"` + k + `","param":"` + k + `","code":"` + k + `"}}`))
	}))
	t.Cleanup(up.Close)
	for _, js := range []bool{false, true} {
		var buf strings.Builder
		var mu sync.Mutex
		r := newRig(t, up.URL+"/v1", rigOpts{limits: pace.Limits{RPM: 1000, TPM: 1_000_000}, cfg: func(c *Config) {
			c.Log, c.LogJSON = lockedWriter{&mu, &buf}, js
		}})
		req, _ := http.NewRequest("POST", r.URL+"/chat/completions", strings.NewReader(chatBody(5, false)))
		req.Header.Set("Authorization", "Bearer "+appKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		mu.Lock()
		logs := buf.String()
		mu.Unlock()
		if resp.StatusCode != 400 || logs == "" || strings.Contains(logs, "APPKEYZZ") {
			t.Errorf("json=%v: status %d, log %q: want a 400 line without the key", js, resp.StatusCode, logs)
		}
	}
}

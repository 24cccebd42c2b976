package proxy

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

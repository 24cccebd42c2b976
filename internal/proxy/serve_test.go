package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/pace"
)

// A stop (SIGINT/SIGTERM) lets the request in flight finish within the
// grace, refuses new connections, and Serve returns nil.
func TestGracefulStop(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[]}`))
	}))
	defer up.Close()
	local := pace.New(pace.Config{Clock: clock.Real(), Limits: func(string) pace.Limits { return pace.Limits{RPM: 100, TPM: 100000} }})
	srv, err := New(Config{Upstream: up.URL + "/v1", Limiter: local, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, 10*time.Second) }()
	base := "http://" + ln.Addr().String() + "/v1"
	got := make(chan int, 1)
	go func() {
		resp, _ := post(t, context.Background(), base, chatBody(5, false), nil)
		if resp == nil {
			got <- 0
			return
		}
		got <- resp.StatusCode
	}()
	<-started
	stop()
	// New connections are refused once the listener is closed.
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	if code := <-got; code != 200 {
		t.Fatalf("in-flight request: %d, want 200", code)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

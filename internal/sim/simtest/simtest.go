// Package simtest starts the oairl simulator (internal/sim) in-process for
// tests, the way go-internal's goproxytest does for a Go proxy:
//
//	srv := simtest.New(t, sim.Config{Tier: "1", Clock: clock.NewFake(start)})
//	client := api.New(api.Options{BaseURL: srv.URL, APIKey: "sk-test"})
//
// srv.URL is the base URL ending in "/v1"; srv.Sim is the *sim.Server for
// assertions (Stats, Requests, ExpireBatch, ...). The server is closed by
// t.Cleanup; a bad Config fails the test through t.Fatalf. Set
// OAIRL_SIM_LOG=1 to log every request to stderr.
package simtest

import (
	"net/http/httptest"
	"os"
	"testing"

	"github.com/oairl/oairl/internal/sim"
)

// Server is a running in-process simulator.
type Server struct {
	// URL is the API base URL, e.g. "http://127.0.0.1:41234/v1".
	URL string
	// Sim is the simulator behind URL.
	Sim *sim.Server
	// HTTP is the underlying httptest server.
	HTTP *httptest.Server
}

// New starts a simulator for cfg. RecordRequests is forced on, so tests can
// inspect what arrived with srv.Sim.Requests(). It fails the test through
// tb.Fatalf when cfg is invalid and closes the server in tb.Cleanup.
func New(tb testing.TB, cfg sim.Config) *Server {
	tb.Helper()
	cfg.RecordRequests = true
	// OAIRL_SIM_LOG=1 logs every request of every test simulator to stderr
	// (one JSON line each), for debugging a test against the sim.
	if cfg.Log == nil && os.Getenv("OAIRL_SIM_LOG") != "" {
		cfg.Log = os.Stderr
	}
	s, err := sim.New(cfg)
	if err != nil {
		tb.Fatalf("simtest: %v", err)
	}
	hs := httptest.NewServer(s)
	tb.Cleanup(func() {
		// Unblock handlers sleeping on a fake clock, then wait for them.
		hs.CloseClientConnections()
		hs.Close()
	})
	return &Server{URL: hs.URL + "/v1", Sim: s, HTTP: hs}
}

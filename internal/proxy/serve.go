package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Serve serves the proxy on ln until ctx ends, then stops gracefully: it
// stops accepting, lets the requests in flight (and in the queue) finish
// for up to grace (wall time), then answers the rest 503 with
// retry-after and x-should-retry: true (their reservations are freed) and
// returns once every handler has finished. It returns nil after a stop
// through ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	hard, cancelHard := context.WithCancel(context.Background())
	defer cancelHard()
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return hard },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		// Grace is over: requests still queued are answered 503 (retry),
		// attempts in flight are abandoned and answered 503 too; the
		// connections close once their handlers have written.
		s.stop()
		cancelHard()
		s.waitHandlers(5 * time.Second)
		_ = hs.Close()
		err = nil
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return e
	}
	// Every handler has finished (its log line written, its stats
	// counted) before Serve returns and the summary is printed.
	s.waitHandlers(0)
	return err
}

// waitHandlers waits until no handler runs, at most limit (0: no limit;
// after hs.Close every write fails, so the handlers end).
func (s *Server) waitHandlers(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for s.active.Load() > 0 && (limit == 0 || time.Now().Before(deadline)) {
		time.Sleep(5 * time.Millisecond)
	}
}

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
// for up to grace (wall time), then cancels the rest (their reservations
// are freed) and returns. It returns nil after a stop through ctx.
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
		// Grace is over: abandon what is left.
		cancelHard()
		_ = hs.Close()
		err = nil
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return e
	}
	return err
}

// Package redistest starts a real redis-server for tests: on a free
// loopback port, without persistence (--save ” --appendonly no), stopped
// through tb.Cleanup. A test may Kill it mid-run and Restart it on the same
// port (with its keys lost, as after a crash without persistence).
//
// When redis-server is not installed the test is skipped, except when the
// environment has CI=true: there a missing server is a failure, so that CI
// (whose .ci/run installs it) really runs these tests.
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	tb   testing.TB
	bin  string
	Port int
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a redis-server on a free loopback port and waits until it
// accepts connections.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis-server not found and CI=true: .ci/run must install it (apt-get install -y redis-server)")
		}
		tb.Skip("redis-server not installed (apt-get install redis-server)")
	}
	s := &Server{tb: tb, bin: bin, Port: FreePort(tb)}
	s.start()
	tb.Cleanup(s.Kill)
	return s
}

// FreePort returns a loopback TCP port nobody listens on now.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is redis://127.0.0.1:PORT/0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

func (s *Server) start() {
	s.tb.Helper()
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			// PING until it answers +PONG (it may accept before it loads).
			_, _ = fmt.Fprint(c, "PING\r\n")
			buf := make([]byte, 7)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return
			}
		}
		select {
		case <-done:
			s.tb.Fatalf("redis-server on port %d exited at start (port taken?)", s.Port)
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			s.tb.Fatalf("redis-server on port %d did not answer within 10 s", s.Port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL); its keys are lost.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port, empty.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	s.start()
}

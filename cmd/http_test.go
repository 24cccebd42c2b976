package cmd

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/sim"
)

// fault fails the first Times requests matching Method and Path (a regexp
// on the URL path) with Status, Header and Body.
type fault struct {
	Method string
	Path   string
	Status int
	Header http.Header
	Body   string
	Times  int
}

// faults is a sim.Config.Intercept that injects fault answers and counts
// what it injected and what reached the simulator afterwards.
type faults struct {
	mu       sync.Mutex
	list     []*fault
	injected map[*fault]int
	passed   map[*fault]int
}

func newFaults(fs ...fault) *faults {
	x := &faults{injected: map[*fault]int{}, passed: map[*fault]int{}}
	for i := range fs {
		x.list = append(x.list, &fs[i])
	}
	return x
}

func (x *faults) intercept(r *http.Request, _ []byte) (int, http.Header, []byte, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if debugFaults {
		fmt.Println("REQ", r.Method, r.URL.Path)
	}
	for _, f := range x.list {
		if r.Method != f.Method || !regexp.MustCompile(f.Path).MatchString(r.URL.Path) {
			continue
		}
		if x.injected[f] < f.Times {
			x.injected[f]++
			h := f.Header.Clone()
			if h == nil {
				h = http.Header{}
			}
			h.Set("Content-Type", "application/json")
			return f.Status, h, []byte(f.Body), true
		}
		x.passed[f]++
	}
	return 0, nil, nil, false
}

// check asserts every fault was injected and then retried through.
func (x *faults) check(t *testing.T) {
	t.Helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, f := range x.list {
		if x.injected[f] != f.Times || x.passed[f] == 0 {
			t.Errorf("%s %s: injected %d of %d, then %d passed (want a retry to get through)", f.Method, f.Path, x.injected[f], f.Times, x.passed[f])
		}
	}
}

const (
	rl429    = `{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}`
	srv5xx   = `{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}`
	quota429 = `{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`
	batchID  = `/v1/batches/batch_[^/]+$`
)

var debugFaults = false

func retryAfter(s string) http.Header { return http.Header{"Retry-After": {s}} }

// submitted returns an env whose sim injects fs, with a job of 20 requests
// in 2 shards already submitted (before any fault), and the job id.
func submittedJob(t *testing.T, cfg sim.Config, fs ...fault) (*batchEnv, *faults, string) {
	t.Helper()
	x := newFaults(fs...)
	var armed sync.WaitGroup
	armed.Add(1)
	ready := false
	var mu sync.Mutex
	cfg.Intercept = func(r *http.Request, b []byte) (int, http.Header, []byte, bool) {
		mu.Lock()
		on := ready
		mu.Unlock()
		if !on {
			return 0, nil, nil, false
		}
		return x.intercept(r, b)
	}
	e := newBatchEnv(t, cfg)
	in := e.path("in.jsonl")
	writeRequests(t, in, 20, "gpt-4o-mini", 5)
	out, errOut, code := e.submit(perShard(10), in, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit %d\n%s", code, errOut)
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	return e, x, strings.TrimSpace(out)
}

// Every batch subcommand rides out 429s and 5xx through the one HTTP
// layer (before it, go-openai's calls were single attempts: `batch list`
// exited 6 on the first 429).
func TestBatchRetriesEverySubcommand(t *testing.T) {
	t.Run("submit", func(t *testing.T) {
		x := newFaults(
			fault{Method: "POST", Path: `/v1/files$`, Status: 429, Header: retryAfter("1"), Body: rl429, Times: 1},
			fault{Method: "POST", Path: `/v1/batches$`, Status: 429, Header: retryAfter("1"), Body: rl429, Times: 1},
			fault{Method: "GET", Path: batchID, Status: 503, Body: srv5xx, Times: 2},
		)
		e := newBatchEnv(t, sim.Config{Intercept: x.intercept})
		in := e.path("in.jsonl")
		writeRequests(t, in, 5, "gpt-4o-mini", 5)
		_, errOut, code := e.run("batch", "submit", in, "--wait", "--time-scale", e.scale, "--poll-interval", "2s")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		x.check(t)
		if n := len(e.srv.Sim.Batches()); n != 1 {
			t.Errorf("%d batches created, want 1", n)
		}
	})
	t.Run("status", func(t *testing.T) {
		e, x, job := submittedJob(t, sim.Config{BatchDuration: time.Hour},
			fault{Method: "GET", Path: batchID, Status: 500, Body: srv5xx, Times: 1})
		out, errOut, code := e.run("batch", "status", job, "--json")
		if code != 0 || !strings.Contains(out, job) {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		x.check(t)
	})
	t.Run("list survives one 429", func(t *testing.T) {
		e, x, job := submittedJob(t, sim.Config{BatchDuration: time.Hour},
			fault{Method: "GET", Path: `/v1/batches$`, Status: 429, Body: rl429, Times: 1})
		out, errOut, code := e.run("batch", "list")
		if code != 0 || !strings.Contains(out, job) {
			t.Fatalf("exit %d (6 = gave up on the first 429)\n%s%s", code, out, errOut)
		}
		x.check(t)
	})
	t.Run("cancel", func(t *testing.T) {
		e, x, job := submittedJob(t, sim.Config{BatchDuration: time.Hour},
			fault{Method: "POST", Path: `/cancel$`, Status: 502, Body: srv5xx, Times: 1})
		out, errOut, code := e.run("batch", "cancel", job)
		if code != 0 || strings.Count(out, "batch_") != 2 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		x.check(t)
	})
	t.Run("wait and results", func(t *testing.T) {
		// 20 sim minutes = 1 s: the batches are still running when wait starts.
		e, x, job := submittedJob(t, sim.Config{BatchDuration: 20 * time.Minute},
			fault{Method: "GET", Path: batchID, Status: 429, Header: retryAfter("1"), Body: rl429, Times: 1},
			fault{Method: "GET", Path: `/v1/files/[^/]+/content$`, Status: 503, Body: srv5xx, Times: 2})
		_, errOut, code := e.run("batch", "wait", job, "--time-scale", e.scale, "--poll-interval", "2s")
		if code != 0 {
			t.Fatalf("wait exit %d\n%s", code, errOut)
		}
		res := e.path("res.jsonl")
		_, errOut, code = e.run("batch", "results", job, "-o", res)
		if code != 0 {
			t.Fatalf("results exit %d\n%s", code, errOut)
		}
		checkResults(t, res, 20)
		x.check(t)
	})
	t.Run("quota is never retried", func(t *testing.T) {
		e, x, _ := submittedJob(t, sim.Config{BatchDuration: time.Hour},
			fault{Method: "GET", Path: `/v1/batches$`, Status: 429, Body: quota429, Times: 5})
		_, errOut, code := e.run("batch", "list")
		if code != exitcode.Quota {
			t.Fatalf("exit %d, want 5\n%s", code, errOut)
		}
		if n := x.injected[x.list[0]]; n != 1 {
			t.Fatalf("insufficient_quota sent %d times, want 1", n)
		}
	})
}

// recordingClock is a clock that records the waits asked of it.
type recordingClock struct {
	clock.Clock
	mu     sync.Mutex
	sleeps []time.Duration
}

func (c *recordingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	return c.Clock.Sleep(ctx, d)
}

// A 429 with "retry-after: 7" on a poll is waited 7 s (of the injected
// clock), not the 1 s the poll loop used to retry after.
func TestBatchWaitHonoursRetryAfterOnPoll(t *testing.T) {
	e, x, job := submittedJob(t, sim.Config{BatchDuration: 20 * time.Minute},
		fault{Method: "GET", Path: batchID, Status: 429, Header: retryAfter("7"), Body: rl429, Times: 1})
	f, _, errOut := newTestFactory(e.env)
	clk := &recordingClock{Clock: clock.Scaled(batchScale)}
	var c *cobra.Command
	c = newBatchWaitCmd(f, func(o *BatchWaitOptions) error {
		o.Clock = clk
		return batchWaitRun(c, o)
	})
	c.SetArgs([]string{job, "--poll-interval", "2s"})
	c.SilenceErrors, c.SilenceUsage = true, true
	if err := c.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	x.check(t)
	clk.mu.Lock()
	defer clk.mu.Unlock()
	seven := 0
	for _, d := range clk.sleeps {
		if d == 7*time.Second {
			seven++
		}
	}
	if seven != 1 {
		t.Fatalf("waits %v: want exactly one of 7s (the retry-after)", clk.sleeps)
	}
}

// --debug traces the exchange on stderr with the key masked.
func TestDebugTraceHidesKey(t *testing.T) {
	const canary = "sk-proj-CANARY0000000000000000000001"
	for _, how := range []string{"flag", "env"} {
		t.Run(how, func(t *testing.T) {
			e, _, _ := submittedJob(t, sim.Config{BatchDuration: time.Hour})
			e.env["OPENAI_API_KEY"] = canary
			args := []string{"batch", "list"}
			if how == "flag" {
				args = append(args, "--debug")
			} else {
				e.env["OAIRL_DEBUG"] = "api"
			}
			out, errOut, code := e.run(args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
			for _, want := range []string{"oairl debug: > GET " + e.srv.URL + "/batches", "oairl debug: < 200 OK", "Authorization: Bearer ***", "User-Agent: oairl/test", `"object":"list"`} {
				if !strings.Contains(errOut, want) {
					t.Errorf("trace lacks %q:\n%s", want, errOut)
				}
			}
			if strings.Contains(out+errOut, "CANARY") {
				t.Fatalf("key in output:\n%s\n%s", out, errOut)
			}
		})
	}
	e, _, _ := submittedJob(t, sim.Config{BatchDuration: time.Hour})
	if _, errOut, _ := e.run("batch", "list"); strings.Contains(errOut, "oairl debug") {
		t.Fatalf("trace without --debug:\n%s", errOut)
	}
}

package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

func simClient(srv *simtest.Server) *api.Client {
	return api.New(api.Options{BaseURL: srv.URL, APIKey: "sk-test-runner-000000000000"})
}

func total429(st sim.Stats) int64 {
	var n int64
	for _, v := range st.RateLimited {
		n += v
	}
	return n
}

// TestPacingUnderEachLimit sends more than a minute's worth of requests
// at a simulator enforcing the same limits, both on one clock running 100×
// faster than the wall clock: no 429s, every request answered once, and
// the run takes at least as long (in that clock's time) as the binding
// limit requires, so the pacing, not luck, avoided the 429s.
func TestPacingUnderEachLimit(t *testing.T) {
	tests := []struct {
		name      string
		rpm, tpm  int64
		n, maxTok int
		tpmBinds  bool
	}{
		// RPM binding: 60 RPM, 100 tiny requests: capacity 54, then 54/min.
		{"RPM binding", 60, 1_000_000, 100, 5, false},
		// TPM binding: ~315 tokens each (prompt + 300 budget) at 6,000 TPM.
		{"TPM binding", 10_000, 6_000, 40, 300, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.Scaled(100)
			t0 := clk.Now()
			srv := simtest.New(t, sim.Config{Tier: "none", RPM: tt.rpm, TPM: tt.tpm, Clock: clk})
			dir := t.TempDir()
			in := writeLines(t, dir, "in.jsonl", chatLines("r", "gpt-4o-mini", tt.n, tt.maxTok))
			o := baseOptions(dir+"/out.jsonl", in)
			o.Client, o.Clock, o.MaxConcurrent, o.RPM, o.TPM = simClient(srv), clk, 20, tt.rpm, tt.tpm
			sum, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			elapsed := clk.Now().Sub(t0)
			st := srv.Sim.Stats()
			if n := total429(st); n != 0 {
				t.Errorf("%d 429s (%v) while paced at the limits", n, st.RateLimited)
			}
			if sum.ExitCode != 0 || sum.Succeeded != tt.n {
				t.Errorf("exit %d, %d succeeded", sum.ExitCode, sum.Succeeded)
			}
			if rs := byID(t, readResults(t, dir+"/out.jsonl")); len(rs) != tt.n {
				t.Errorf("%d results, want %d", len(rs), tt.n)
			}
			// The least time the local bucket allows: (used - capacity) / rate,
			// capacity 0.9 × limit, refill the limit.
			m := sum.Models[0]
			used, limit := float64(tt.n), float64(tt.rpm)
			if tt.tpmBinds {
				used, limit = float64(m.Charged), float64(tt.tpm)
			}
			need := time.Duration((used - 0.9*limit - used/float64(tt.n)) / limit * float64(time.Minute))
			if elapsed < need {
				t.Errorf("finished after %s; the limit needs at least %s", elapsed, need)
			}
			if st.GoodCharged != m.Charged {
				t.Errorf("server charged %d tokens, client counted %d", st.GoodCharged, m.Charged)
			}
		})
	}
}

// TestUnpacedControlGets429s is the control for TestPacingUnderEachLimit:
// the same load with limits far above the server's (and headers ignored)
// gets many 429s, so the pacing test's zero is meaningful.
func TestUnpacedControlGets429s(t *testing.T) {
	clk := clock.Scaled(100)
	srv := simtest.New(t, sim.Config{Tier: "none", RPM: 60, TPM: 1_000_000, Clock: clk})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("r", "gpt-4o-mini", 100, 5))
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Clock, o.MaxConcurrent, o.RPM, o.TPM, o.MaxAttempts = simClient(srv), clk, 20, 100_000, 100_000_000, 100
	// A limiter that ignores the headers (which would lower its limits).
	o.Limiter = deaf{pace.New(pace.Config{Clock: clk, MaxConcurrent: 20,
		Limits: func(string) pace.Limits { return pace.Limits{RPM: 100_000, TPM: 100_000_000} }})}
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if total429(srv.Sim.Stats()) < 10 {
		t.Errorf("control run saw only %v 429s; the pacing test would prove nothing", srv.Sim.Stats().RateLimited)
	}
	if sum.Succeeded != 100 {
		t.Errorf("%d succeeded after retries", sum.Succeeded)
	}
}

// deaf is a limiter that ignores response headers.
type deaf struct{ *pace.Local }

func (deaf) Observe(string, pace.Observation, time.Time) {}

// TestHeaderLearnedLimits: no --tier/--rpm/--tpm; the limits come from the
// first response's x-ratelimit-limit-* headers, and the run stays under
// them.
func TestHeaderLearnedLimits(t *testing.T) {
	clk := clock.Scaled(100)
	t0 := clk.Now()
	srv := simtest.New(t, sim.Config{Tier: "none", RPM: 60, TPM: 1_000_000, Clock: clk})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("r", "gpt-4o-mini", 90, 5))
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Clock, o.MaxConcurrent = simClient(srv), clk, 20
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if n := total429(srv.Sim.Stats()); n != 0 {
		t.Errorf("%d 429s with header-learned limits", n)
	}
	if sum.Succeeded != 90 || sum.Models[0].RPMLimit != 60 || sum.Models[0].TPMLimit != 1_000_000 {
		t.Errorf("succeeded %d, learned %d RPM / %d TPM", sum.Succeeded, sum.Models[0].RPMLimit, sum.Models[0].TPMLimit)
	}
	if el := clk.Now().Sub(t0); el < 30*time.Second {
		t.Errorf("90 requests at a learned 60 RPM done in %s", el)
	}
}

// TestRawBodyFidelity: the body reaches the server byte for byte, with a
// parameter no client library knows and odd spacing.
func TestRawBodyFidelity(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir := t.TempDir()
	body := `{"model": "gpt-4o-mini",  "messages":[{"role":"user","content":"h\u00e9llo \ud83d\ude00"}], "max_tokens":5, "x_future_param": {"nested": [1, 2.50, true]}, "seed" :7}`
	in := writeLines(t, dir, "in.jsonl", []string{`{"custom_id":"raw1","method":"POST","url":"/v1/chat/completions","body":` + body + `}`,
		// a bare body with no model: --model is inserted, the rest kept
		`{"messages":[{"role":"user","content":"bare"}],"max_tokens":3,"x_other":1}`})
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Model = simClient(srv), "gpt-4o-mini"
	sum, err := Run(context.Background(), o)
	if err != nil || sum.Succeeded != 2 {
		t.Fatalf("err %v, %+v", err, sum)
	}
	reqs := srv.Sim.Requests()
	var got []string
	for _, r := range reqs {
		if r.Path == "/v1/chat/completions" {
			got = append(got, string(r.Body))
		}
	}
	if len(got) != 2 || got[0] != body {
		t.Fatalf("server received %q, want %q", got, body)
	}
	if got[1] != `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"bare"}],"max_tokens":3,"x_other":1}` {
		t.Errorf("bare body sent as %s", got[1])
	}
	for _, r := range reqs {
		if r.Header.Get("Authorization") != "Bearer sk-test-runner-000000000000" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", r.Header)
		}
	}
	rs := byID(t, readResults(t, dir+"/out.jsonl"))
	if r := rs["raw1"]; r.Response == nil || r.Response.StatusCode != 200 || !strings.HasPrefix(r.Response.RequestID, "req_") || !json.Valid(r.Response.Body) {
		t.Errorf("result %+v", r)
	}
	if _, ok := rs["line-2"]; !ok {
		t.Errorf("bare line result missing: %v", rs)
	}
}

// killAfter wraps a Poster: after k answers it cancels both contexts (a
// kill: in-flight requests are abandoned, no grace).
type killAfter struct {
	p      Poster
	k      int64
	n      atomic.Int64
	cancel func()
	mu     sync.Mutex
	sent   []string // custom_ids, in the order Post was called
}

func (ka *killAfter) Post(ctx context.Context, path string, body []byte) (*api.Response, error) {
	ka.mu.Lock()
	ka.sent = append(ka.sent, customIDOf(body))
	ka.mu.Unlock()
	resp, err := ka.p.Post(ctx, path, body)
	if ka.n.Add(1) == ka.k {
		ka.cancel()
	}
	return resp, err
}

// TestResumeAfterKill kills runs at random points, then reruns the same
// command until done: exactly one result per custom_id, and no request
// whose result was written is ever sent again.
func TestResumeAfterKill(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	for trial := 0; trial < 4; trial++ {
		t.Run(fmt.Sprint(trial), func(t *testing.T) {
			srv := simtest.New(t, sim.Config{Tier: "none", FaultRate: 0.1, Seed: int64(trial)})
			dir := t.TempDir()
			const n = 60
			in := writeLines(t, dir, "in.jsonl", chatLines("k", "gpt-4o-mini", n, 5))
			out := dir + "/out.jsonl"
			sentAfterWritten := map[string]int{}
			runs := 0
			for {
				runs++
				if runs > 20 {
					t.Fatal("did not converge")
				}
				written := map[string]bool{}
				if b, err := os.ReadFile(out); err == nil {
					for _, l := range bytes.Split(b, []byte("\n")) {
						var r Result
						if json.Unmarshal(l, &r) == nil {
							written[r.CustomID] = true
						}
					}
				}
				soft, cancelSoft := context.WithCancel(context.Background())
				hard, cancelHard := context.WithCancel(context.Background())
				ka := &killAfter{p: simClient(srv), k: int64(1 + rng.IntN(25)), cancel: func() { cancelSoft(); cancelHard() }}
				o := baseOptions(out, in)
				o.Client, o.MaxConcurrent, o.HardContext, o.Clock = ka, 8, hard, clock.Scaled(1000)
				sum, err := Run(soft, o)
				cancelSoft()
				cancelHard()
				if err != nil {
					t.Fatal(err)
				}
				// Checked where the runner calls Post (the simulator may record an
				// abandoned request late, during the next run).
				for _, id := range ka.sent {
					if written[id] {
						sentAfterWritten[id]++
					}
				}
				// A crash may also leave a torn line: simulate one sometimes.
				if sum.ExitCode == exitcode.Interrupted && rng.IntN(2) == 0 {
					f, _ := os.OpenFile(out, os.O_APPEND|os.O_WRONLY, 0)
					f.WriteString(`{"id":"batch_req_torn","custom_id":"k1","respo`)
					f.Close()
				}
				if sum.ExitCode != exitcode.Interrupted {
					if sum.ExitCode != exitcode.OK {
						t.Fatalf("final run exit %d", sum.ExitCode)
					}
					break
				}
			}
			rs := byID(t, readResults(t, out))
			if len(rs) != n {
				t.Fatalf("%d results after %d runs, want %d", len(rs), runs, n)
			}
			for id, r := range rs {
				if r.Error != nil || r.Response.StatusCode != 200 {
					t.Errorf("%s: %+v", id, r.Error)
				}
			}
			if len(sentAfterWritten) > 0 {
				t.Errorf("requests sent again after their result was written: %v", sentAfterWritten)
			}
		})
	}
}

// blockingPoster holds every request until released (or its context ends).
type blockingPoster struct {
	p       Poster
	release chan struct{}
	started atomic.Int64
}

func (b *blockingPoster) Post(ctx context.Context, path string, body []byte) (*api.Response, error) {
	b.started.Add(1)
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return b.p.Post(ctx, path, body)
}

func TestCtrlC(t *testing.T) {
	for _, tt := range []struct {
		name        string
		hard        bool
		wantResults int
	}{
		{"first Ctrl-C: in-flight requests finish", false, 4},
		{"second Ctrl-C: in-flight requests abandoned", true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := simtest.New(t, sim.Config{Tier: "none"})
			dir := t.TempDir()
			in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 20, 5))
			out := dir + "/out.jsonl"
			bp := &blockingPoster{p: simClient(srv), release: make(chan struct{})}
			soft, cancelSoft := context.WithCancel(context.Background())
			hard, cancelHard := context.WithCancel(context.Background())
			defer cancelHard()
			o := baseOptions(out, in)
			o.Client, o.MaxConcurrent, o.HardContext, o.Grace = bp, 4, hard, time.Minute
			o.RPM, o.TPM = 10_000, 10_000_000
			var sum *Summary
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				sum, _ = Run(soft, o)
			}()
			for bp.started.Load() < 4 {
				time.Sleep(time.Millisecond)
			}
			cancelSoft()
			if tt.hard {
				cancelHard()
			} else {
				time.Sleep(20 * time.Millisecond) // the run must not end while requests are in flight
				close(bp.release)
			}
			wg.Wait()
			if sum.ExitCode != exitcode.Interrupted {
				t.Errorf("exit %d, want 130", sum.ExitCode)
			}
			rs := byID(t, readResults(t, out))
			if len(rs) != tt.wantResults || bp.started.Load() != 4 {
				t.Errorf("%d results, %d started; want %d, 4", len(rs), bp.started.Load(), tt.wantResults)
			}
			if sum.NoResult != 20-tt.wantResults || sum.Unsent+sum.Abandoned != sum.NoResult {
				t.Errorf("no_result %d unsent %d abandoned %d", sum.NoResult, sum.Unsent, sum.Abandoned)
			}
			if tt.wantResults == 0 && sum.Abandoned != 4 {
				t.Errorf("abandoned %d, want the 4 in flight", sum.Abandoned)
			}
			// Resume: the rest, once.
			o.Client, o.HardContext = simClient(srv), context.Background()
			sum, err := Run(context.Background(), o)
			if err != nil || sum.ExitCode != 0 || sum.Succeeded != 20-tt.wantResults || sum.Skipped != tt.wantResults {
				t.Fatalf("resume: %v %+v", err, sum)
			}
			if rs := byID(t, readResults(t, out)); len(rs) != 20 {
				t.Errorf("%d results after resume", len(rs))
			}
		})
	}
}

// TestGraceExpires: after the first Ctrl-C, in-flight requests that take
// longer than --grace are abandoned.
func TestGraceExpires(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("g", "gpt-4o-mini", 5, 5))
	bp := &blockingPoster{p: simClient(srv), release: make(chan struct{})}
	soft, cancelSoft := context.WithCancel(context.Background())
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.MaxConcurrent, o.Grace = bp, 2, 10*time.Millisecond
	o.RPM, o.TPM = 10_000, 10_000_000
	done := make(chan *Summary)
	go func() { s, _ := Run(soft, o); done <- s }()
	for bp.started.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	cancelSoft()
	sum := <-done // returns although the requests never finish
	if sum.ExitCode != exitcode.Interrupted || len(readResults(t, dir+"/out.jsonl")) != 0 {
		t.Errorf("exit %d", sum.ExitCode)
	}
}

func TestTornLineTruncated(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("t", "gpt-4o-mini", 3, 5))
	out := dir + "/out.jsonl"
	good := `{"id":"batch_req_1","custom_id":"t0","response":{"status_code":200,"request_id":"req_1","body":{}},"error":null}` + "\n"
	torn := `{"id":"batch_req_2","custom_id":"t1","response":{"status_co`
	if err := os.WriteFile(out, []byte(good+torn), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	o := baseOptions(out, in)
	o.Client, o.Log = simClient(srv), &log
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.TornBytes != int64(len(torn)) || !strings.Contains(log.String(), "torn last line") {
		t.Errorf("torn bytes %d, log %q", sum.TornBytes, log.String())
	}
	rs := byID(t, readResults(t, out))
	if len(rs) != 3 || sum.Succeeded != 2 || sum.Skipped != 1 {
		t.Errorf("%d results, %d sent, %d skipped", len(rs), sum.Succeeded, sum.Skipped)
	}
	b, _ := os.ReadFile(out)
	if !bytes.HasPrefix(b, []byte(good)) {
		t.Errorf("the complete line before the torn one was not kept")
	}
}

// TestAIMDConcurrency (case B21c): the server answers "too many concurrent
// requests" whenever 4 are in flight; with --max-concurrent 16 the run
// halves its cap, completes with nothing lost, and ends near 4.
func TestAIMDConcurrency(t *testing.T) {
	clk := clock.Scaled(100)
	srv := simtest.New(t, sim.Config{Tier: "none", MaxConcurrent: 4, Latency: 2 * time.Second, LatencyJitter: 0.01, Clock: clk})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("a", "gpt-4o-mini", 60, 5))
	lim := pace.New(pace.Config{Clock: clk, MaxConcurrent: 16, Limits: func(string) pace.Limits { return pace.Limits{RPM: 100_000, TPM: 100_000_000} }})
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Clock, o.MaxConcurrent, o.Limiter = simClient(srv), clk, 16, lim
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != 60 || sum.ExitCode != 0 {
		t.Fatalf("succeeded %d exit %d", sum.Succeeded, sum.ExitCode)
	}
	if rs := byID(t, readResults(t, dir+"/out.jsonl")); len(rs) != 60 {
		t.Errorf("%d results", len(rs))
	}
	_, capNow := lim.InFlight()
	if capNow > 5 {
		t.Errorf("in-flight cap %d at the end, want <= ~4", capNow)
	}
	c429 := srv.Sim.Stats().RateLimited[sim.LimitConcurrency]
	if c429 == 0 || c429 > 40 {
		t.Errorf("%d concurrency 429s for 60 requests; AIMD should keep them few (and the test needs some)", c429)
	}
	if sum.RateLimited["concurrency"] != int(c429) {
		t.Errorf("summary counts %v, server %d", sum.RateLimited, c429)
	}
}

// TestRequestTooLargePreflight (case B19): with --tpm 10000, big1 (a
// 16,000-token output budget) can never be sent: refused before sending,
// recorded with the reason; small1 runs. (B19.jsonl's own big1 asks for
// max_tokens 32000, over gpt-4o's 16,384 output maximum: input validation
// rejects it first, see TestB19File.)
func TestRequestTooLargePreflight(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none", TPM: 10_000})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", []string{chatLine("big1", "gpt-4o", 16_000), chatLine("small1", "gpt-4o", 20)})
	var log bytes.Buffer
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.TPM, o.Log = simClient(srv), 10_000, &log
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ExitCode != exitcode.Partial || sum.Succeeded != 1 || sum.FailedByKind["request_too_large"] != 1 {
		t.Errorf("exit %d succeeded %d failed %v", sum.ExitCode, sum.Succeeded, sum.FailedByKind)
	}
	for _, r := range srv.Sim.Requests() {
		if strings.Contains(string(r.Body), "id:big1") {
			t.Error("big1 was sent")
		}
	}
	rs := byID(t, readResults(t, dir+"/out.jsonl"))
	if r := rs["big1"]; r.Error == nil || r.Error.Code != "request_too_large" || r.Response != nil {
		t.Errorf("big1: %+v", r)
	}
	if !strings.Contains(log.String(), "big1") || !strings.Contains(log.String(), "exceeds the gpt-4o limit of 10000 TPM") {
		t.Errorf("log %q", log.String())
	}
	// Without --tpm, the server's "Request too large" is not retried.
	srv2 := simtest.New(t, sim.Config{Tier: "none", TPM: 10_000})
	o2 := baseOptions(dir+"/out2.jsonl", in)
	o2.Client = simClient(srv2)
	sum, _ = Run(context.Background(), o2)
	if sum.Attempts != 2 || sum.Succeeded != 1 || sum.Failed != 1 || sum.ExitCode != exitcode.Partial {
		t.Errorf("server-side too large: attempts %d succeeded %d failed %d exit %d", sum.Attempts, sum.Succeeded, sum.Failed, sum.ExitCode)
	}
	if r := byID(t, readResults(t, dir+"/out2.jsonl"))["big1"]; r.Response == nil || r.Response.StatusCode != 429 {
		t.Errorf("big1 from the server: %+v", r)
	}
	// --strict refuses the whole run.
	o3 := baseOptions(dir+"/out3.jsonl", in)
	o3.Client, o3.TPM, o3.Strict = simClient(srv), 10_000, true
	sum, err = Run(context.Background(), o3)
	if exitcode.Of(err) != exitcode.Input || sum.ExitCode != exitcode.Input {
		t.Errorf("--strict: %v exit %d", err, sum.ExitCode)
	}
}

// TestB19File runs the case file as given: big1 is reported with its line
// and skipped, small1 is sent; exit 3 (the skipped line has no result).
func TestB19File(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none", TPM: 30_000})
	var log bytes.Buffer
	o := baseOptions(t.TempDir()+"/out.jsonl", "testdata/cases/B19.jsonl")
	o.Client, o.TPM, o.Log = simClient(srv), 30_000, &log
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ExitCode != exitcode.Input || sum.Succeeded != 1 || len(srv.Sim.Requests()) != 1 {
		t.Errorf("exit %d succeeded %d sent %d", sum.ExitCode, sum.Succeeded, len(srv.Sim.Requests()))
	}
	if !strings.Contains(log.String(), `B19.jsonl:1: custom_id "big1"`) {
		t.Errorf("log %q", log.String())
	}
}

// TestDryRunSchedule (case B29): the schedule per model with the charge,
// the minutes needed and what one huge reservation does.
func TestDryRunSchedule(t *testing.T) {
	var out, log bytes.Buffer
	o := baseOptions(t.TempDir()+"/out.jsonl", "testdata/cases/B29.jsonl")
	o.DryRun, o.TPM, o.Out, o.Log, o.AssumeOutput = true, 20_000, &out, &log, 1024
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"dry run:", "gpt-4o-mini", "20000 TPM", "needs ~", "--assume-output"} {
		if !strings.Contains(s, want) {
			t.Errorf("schedule lacks %q:\n%s\nlog:\n%s", want, s, log.String())
		}
	}
	if sum.ExitCode != 0 {
		t.Errorf("exit %d", sum.ExitCode)
	}
	if _, err := os.Stat(o.Output); err == nil {
		t.Error("--dry-run created the results file")
	}
}

func TestOrdered(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none", Latency: time.Millisecond, LatencyJitter: 0.9})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("o", "gpt-4o-mini", 30, 5))
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.MaxConcurrent, o.Ordered = simClient(srv), 8, true
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	rs := readResults(t, dir+"/out.jsonl")
	for i, r := range rs {
		if r.CustomID != fmt.Sprintf("o%d", i) {
			t.Fatalf("line %d is %s, want input order", i, r.CustomID)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 { // in, out and the lock file
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestInvalidLinesSkippedOrStrict(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", []string{chatLine("v1", "gpt-4o-mini", 5), `{"custom_id":"bad","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[],"max_tokens":5}}`, `not json`})
	var log bytes.Buffer
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Log = simClient(srv), &log
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	// Skipped invalid lines have no result line: exit 3, not 7 (breaker2 F5).
	if sum.Invalid != 2 || sum.Succeeded != 1 || sum.ExitCode != exitcode.Input {
		t.Errorf("invalid %d succeeded %d exit %d", sum.Invalid, sum.Succeeded, sum.ExitCode)
	}
	if !strings.Contains(log.String(), `in.jsonl:2: custom_id "bad"`) || !strings.Contains(log.String(), "in.jsonl:3:") {
		t.Errorf("problems not reported with file:line and custom_id:\n%s", log.String())
	}
	o.Output, o.Strict = dir+"/strict.jsonl", true
	sum, err = Run(context.Background(), o)
	if exitcode.Of(err) != exitcode.Input || sum.Sent != 0 {
		t.Errorf("--strict: err %v sent %d", err, sum.Sent)
	}
	// Nothing valid at all: exit 3.
	bad := writeLines(t, dir, "bad.jsonl", []string{`not json`})
	o = baseOptions(dir+"/x.jsonl", bad)
	o.Client = simClient(srv)
	_, err = Run(context.Background(), o)
	if exitcode.Of(err) != exitcode.Input {
		t.Errorf("nothing valid: %v", err)
	}
}

func TestAuthStops(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none", InvalidKey: true})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("a", "gpt-4o-mini", 10, 5))
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.MaxConcurrent = simClient(srv), 1
	sum, _ := Run(context.Background(), o)
	if sum.ExitCode != exitcode.Auth || len(srv.Sim.Requests()) != 1 || len(readResults(t, dir+"/out.jsonl")) != 0 {
		t.Errorf("exit %d, %d requests", sum.ExitCode, len(srv.Sim.Requests()))
	}
	if strings.Contains(sum.StopReason, "sk-test-runner-000000000000") {
		t.Errorf("key printed: %s", sum.StopReason)
	}
}

func TestSummaryJSONFields(t *testing.T) {
	s := &Summary{Models: []ModelSummary{{Model: "m"}}}
	var b bytes.Buffer
	if err := s.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"requests", "invalid", "skipped", "to_send", "sent", "succeeded", "failed", "failed_by_kind", "unsent",
		"abandoned", "no_result", "skipped_failed", "quota_errors",
		"attempts", "retries", "rate_limited", "prompt_tokens", "completion_tokens", "cost_usd", "elapsed_seconds",
		"active_seconds", "torn_bytes", "stop_reason", "exit_code", "server_charge", "models"}
	if len(m) != len(want) {
		t.Errorf("fields %v, want %v", keys(m), want)
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("missing %q", k)
		}
	}
	mm := m["models"].([]any)[0].(map[string]any)
	wantM := []string{"model", "rpm_limit", "tpm_limit", "succeeded", "failed", "attempts", "retries", "rate_limited", "tpm_charged",
		"prompt_tokens", "completion_tokens", "achieved_rpm", "achieved_tpm", "rpm_percent", "tpm_percent", "cost_usd"}
	if len(mm) != len(wantM) {
		t.Errorf("model fields %v, want %v", keys(mm), wantM)
	}
	for _, k := range wantM {
		if _, ok := mm[k]; !ok {
			t.Errorf("models[] missing %q", k)
		}
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestMetricsFile(t *testing.T) {
	s := &Summary{Unsent: 3, Models: []ModelSummary{{Model: "gpt-4o", Succeeded: 9, Failed: 1, RPMLimit: 500, TPMLimit: 30000,
		RateLimited: map[string]int{"TPM": 2, "RPM": 1}, AchievedTPM: 28000.5}}}
	p := t.TempDir() + "/oairl.prom"
	if err := WriteMetricsFile(p, s); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	for _, want := range []string{
		"# TYPE oairl_run_requests_total counter",
		`oairl_run_requests_total{model="gpt-4o",result="succeeded"} 9`,
		`oairl_run_rate_limited_total{model="gpt-4o",limit_type="TPM"} 2`,
		`oairl_run_rate_limited_total{model="gpt-4o",limit_type="RPM"} 1`,
		`oairl_run_limit_per_minute{model="gpt-4o",limit_type="TPM"} 30000`,
		`oairl_run_achieved_per_minute{model="gpt-4o",limit_type="TPM"} 28000.5`,
		"oairl_run_unsent 3",
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
}

type fakeBar struct {
	mu       sync.Mutex
	total    int64
	added    int64
	desc     string
	finished bool
}

func (b *fakeBar) Add(n int64) { b.mu.Lock(); b.added += n; b.mu.Unlock() }
func (b *fakeBar) Describe(s string) {
	b.mu.Lock()
	b.desc = s
	b.mu.Unlock()
}
func (b *fakeBar) Finish() { b.finished = true }

// TestProgressBar: on a terminal the bar counts every finished request and
// shows RPM/TPM against the limits and the 429s so far.
func TestProgressBar(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("p", "gpt-4o-mini", 12, 5))
	bar := &fakeBar{}
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.RPM, o.TPM, o.MaxConcurrent = simClient(srv), 5000, 2_000_000, 4
	o.NewBar = func(total int64) Bar { bar.total = total; return bar }
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if bar.total != 12 || bar.added != 12 || !bar.finished {
		t.Errorf("bar total %d added %d finished %v", bar.total, bar.added, bar.finished)
	}
	for _, want := range []string{"12/12 ", " RPM of 5000", " TPM of 2000000", "429s 0"} {
		if !strings.Contains(bar.desc, want) {
			t.Errorf("bar says %q, want %q in it", bar.desc, want)
		}
	}
}

// TestWrongTierCorrected: limits given far above the server's are lowered
// to what the headers report, so the 429s stop after the first answers.
func TestWrongTierCorrected(t *testing.T) {
	clk := clock.Scaled(100)
	srv := simtest.New(t, sim.Config{Tier: "none", RPM: 60, TPM: 1_000_000, Clock: clk})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("w", "gpt-4o-mini", 100, 5))
	var log bytes.Buffer
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.Clock, o.MaxConcurrent, o.RPM, o.TPM, o.Log = simClient(srv), clk, 20, 100_000, 100_000_000, &log
	sum, err := Run(context.Background(), o)
	if err != nil || sum.Succeeded != 100 {
		t.Fatalf("%v: %d succeeded", err, sum.Succeeded)
	}
	if n := total429(srv.Sim.Stats()); n > 20 {
		t.Errorf("%d 429s; the server's lower limit should have been adopted", n)
	}
	// D9: the summary reports the limit in force, not the one given. The
	// rate is measured against it; this run saw 429s before it learned the
	// limit, so the "no 429s, cap at 100%" rule does not apply and the
	// steady-state estimate may exceed 100% by the scaled clocks' jitter.
	if m := sum.Models[0]; m.RPMLimit != 60 || m.RPMPercent > 105 {
		t.Errorf("summary rpm_limit %d (%.1f%%), want the learned 60, at most ~100%%", m.RPMLimit, m.RPMPercent)
	}
	if !strings.Contains(log.String(), "the server reports RPM limit 60, lower than the 100000 given; using 60") {
		t.Errorf("log %q", log.String())
	}
}

// Rerunning with --ordered when nothing is left to send still rewrites the
// results file in input order, superseded lines going to
// PATH.superseded.jsonl (breaker2 F2).
func TestOrderedNothingToSend(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("o", "gpt-4o-mini", 12, 5))
	out := dir + "/out.jsonl"
	o := baseOptions(out, in)
	o.Client = simClient(srv)
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	// Out of order, with one line repeated.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	slices.Reverse(lines)
	lines[0] += "\n"
	lines = append(lines, strings.TrimSuffix(lines[3], "\n")+"\n")
	if err := os.WriteFile(out, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	o = baseOptions(out, in)
	o.Client, o.Ordered, o.Log = simClient(srv), true, &log
	sum, err := Run(context.Background(), o)
	if err != nil || sum.Sent != 0 || sum.ExitCode != 0 {
		t.Fatalf("rerun: err %v sent %d exit %d", err, sum.Sent, sum.ExitCode)
	}
	rs := readResults(t, out)
	if len(rs) != 12 {
		t.Fatalf("%d lines, want 12", len(rs))
	}
	for i, r := range rs {
		if r.CustomID != fmt.Sprintf("o%d", i) {
			t.Fatalf("line %d is %s, want input order\n%s", i, r.CustomID, log.String())
		}
	}
	if sup := readResults(t, out+".superseded.jsonl"); len(sup) != 1 {
		t.Errorf("%d superseded lines, want 1", len(sup))
	}
	if !strings.Contains(log.String(), "input order") {
		t.Errorf("log does not say the file was rewritten:\n%s", log.String())
	}
}

package cmd

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oairl/oairl/batch"
	"github.com/oairl/oairl/internal/sim"
)

// createBarrier holds each shard's CreateBatch until both submits have
// reached it (or a generous wall-clock bound passes): both have then done
// their server check before create, and neither has created yet — the
// lockstep in which two submits with different state directories used to
// create every shard's batch twice (breaker F5).
type createBarrier struct {
	mu    sync.Mutex
	gates map[string]chan struct{}
	seen  map[string]int
}

func (g *createBarrier) wait(key string) {
	g.mu.Lock()
	if g.gates == nil {
		g.gates, g.seen = map[string]chan struct{}{}, map[string]int{}
	}
	ch := g.gates[key]
	if ch == nil {
		ch = make(chan struct{})
		g.gates[key] = ch
	}
	g.seen[key]++
	if g.seen[key] == 2 {
		close(ch)
	}
	g.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
	}
}

type barrierClient struct {
	batch.Client
	g *createBarrier
}

func (c barrierClient) CreateBatch(ctx context.Context, fileID, endpoint string, md map[string]string) (batch.Batch, error) {
	c.g.wait(md[batch.MetaShard] + "/" + md[batch.MetaAttempt])
	return c.Client.CreateBatch(ctx, fileID, endpoint, md)
}

// F5: two `batch submit` of one file with different state directories
// (OAIRL_STATE_DIR per CI job), in lockstep: every shard ends with exactly
// one batch that is not cancelled, the loser says so on stderr, and the
// results of either state directory hold each custom_id once.
func TestBatchE2E_TwoStateDirsOneBatchPerShard(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	in := e.path("in.jsonl")
	const n = 30
	writeRequests(t, in, n, "gpt-4o-mini", 5)
	g := &createBarrier{}
	mod := func(o *BatchSubmitOptions) {
		o.MaxRequests = 10
		inner := o.Client
		o.Client = func() (batch.Client, error) {
			c, err := inner()
			if err != nil {
				return nil, err
			}
			return barrierClient{Client: c, g: g}, nil
		}
	}
	envOf := func(name string) map[string]string {
		env := map[string]string{}
		for k, v := range e.env {
			env[k] = v
		}
		env["OAIRL_STATE_DIR"] = filepath.Join(e.dir, name)
		return env
	}
	type res struct {
		out, errOut string
		code        int
	}
	results := make([]res, 2)
	var wg sync.WaitGroup
	for i, name := range []string{"stA", "stB"} {
		wg.Add(1)
		go func(i int, env map[string]string) {
			defer wg.Done()
			ei := *e
			ei.env = env
			out, errOut, code := ei.submit(mod, in, "--wait", "--time-scale", e.scale, "--poll-interval", "2s")
			results[i] = res{out, errOut, code}
		}(i, envOf(name))
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("submit %d: exit %d\n%s", i, r.code, r.errOut)
		}
	}
	job := strings.TrimSpace(results[0].out)
	if other := strings.TrimSpace(results[1].out); other != job {
		t.Fatalf("job ids %q and %q", job, other)
	}
	by := batchesOfJob(e.srv.Sim, job)
	if len(by) != 3 {
		t.Fatalf("%d shards, want 3", len(by))
	}
	for k, bs := range by {
		live := 0
		for _, b := range bs {
			if b.Status != "cancelled" && b.Status != "cancelling" {
				live++
			}
		}
		if live != 1 {
			t.Errorf("shard %s: %d batches not cancelled (want 1): %+v", k, live, bs)
		}
	}
	if !strings.Contains(results[0].errOut+results[1].errOut, "created at the same moment by another run") {
		t.Errorf("no run said it cancelled its duplicate:\n%s\n---\n%s", results[0].errOut, results[1].errOut)
	}
	for _, name := range []string{"stA", "stB"} {
		ei := *e
		ei.env = envOf(name)
		out := e.path("res-" + name + ".jsonl")
		if _, errOut, code := ei.run("batch", "results", job, "-o", out); code != 0 {
			t.Fatalf("results from %s: exit %d\n%s", name, code, errOut)
		}
		for _, l := range checkResults(t, out, n) {
			if l.Error != nil || l.Response == nil || l.Response.StatusCode != 200 {
				t.Errorf("%s: %s not a success: %+v", name, l.CustomID, l.Error)
			}
		}
	}
}

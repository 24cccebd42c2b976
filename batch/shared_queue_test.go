package batch

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/oairl/oairl/internal/clock"
)

// stubQueue is another process's job holding tokens in the shared queue
// until released, and a record of what this job published.
type stubQueue struct {
	mu        sync.Mutex
	held      int64 // by the other job
	asked     int
	releaseAt int // release after this many Others calls
	createsAt int // api.creates when released
	api       *fakeAPI
	published map[string]int64
}

func (q *stubQueue) Admit(job, model string, tokens, limit int64) (int64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.asked++
	if q.asked == q.releaseAt {
		q.api.mu.Lock()
		q.createsAt = q.api.creates
		q.api.mu.Unlock()
		q.held = 0
	}
	if q.held > 0 && q.held+tokens > limit {
		return q.held, false
	}
	q.published[model] = tokens
	return 0, true
}

func (q *stubQueue) Publish(job, model string, tokens int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.published[model] = tokens
}

// Another process's batches fill the organization's queue: this job waits
// for room instead of creating batches the server would fail, and
// publishes what it holds (nothing, at the end).
func TestRun_SharedQueue(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	api.queueLimit = 2500
	j := newTestJob(t, 20, 10, "gpt-4o", 100, 2500) // 2 shards of 1,000 tokens
	q := &stubQueue{held: 2000, releaseAt: 4, api: api, published: map[string]int64{}}
	log := &syncBuf{}
	opts := runOpts(api, clk, log)
	opts.Queue = q
	if err := Run(context.Background(), j, opts); err != nil {
		t.Fatalf("run: %v\n%s", err, log)
	}
	if q.createsAt != 0 {
		t.Errorf("%d batches created while another job held 2,000 of the 2,500-token queue", q.createsAt)
	}
	if !strings.Contains(log.String(), "waiting for room in the gpt-4o batch queue (2000 + 1000 > 2500") {
		t.Errorf("no wait for the shared queue:\n%s", log)
	}
	if got, ok := q.published["gpt-4o"]; !ok || got != 0 {
		t.Errorf("published %v, want gpt-4o: 0 at the end", q.published)
	}
	assertOneBatchPerShard(t, api, j)
}

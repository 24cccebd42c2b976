package batch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
)

// testScale makes the fake batches' minutes take milliseconds.
const testScale = 2000

// newTestJob splits n tiny requests for model into shards of perShard,
// each request counting tokensPerLine enqueued tokens, and saves the job
// in a temporary state file.
func newTestJob(t *testing.T, n, perShard int, model string, tokensPerLine, queueLimit int64) *Job {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job.json")
	sp, err := NewSplitter(SplitOptions{Dir: ShardDirFor(path), MaxRequests: perShard, QueueLimit: func(string) int64 { return queueLimit }})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		raw := fmt.Sprintf(`{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"q%d"}],"max_tokens":5}}`, i, model, i)
		if err := sp.Add(Line{File: "in.jsonl", Line: i + 1, CustomID: fmt.Sprintf("r%d", i), URL: "/v1/chat/completions", Model: model, Tokens: tokensPerLine, Raw: []byte(raw)}); err != nil {
			t.Fatal(err)
		}
	}
	shards, cnt, sha, err := sp.Close()
	if err != nil {
		t.Fatal(err)
	}
	j := &Job{ID: JobID(sha), InputSHA256: sha, Endpoint: "/v1/chat/completions", Requests: cnt, Shards: shards,
		QueueLimits: map[string]int64{}, path: path}
	if queueLimit > 0 {
		j.QueueLimits[model] = queueLimit
	}
	if err := j.Save(time.Now()); err != nil {
		t.Fatal(err)
	}
	return j
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runOpts(api *fakeAPI, clk clock.Clock, log *syncBuf) RunOptions {
	return RunOptions{Client: api, Clock: clk, Log: log, PollInterval: time.Second, MaxPollInterval: 5 * time.Second, Until: UntilDone}
}

func assertOneBatchPerShard(t *testing.T, api *fakeAPI, j *Job) {
	t.Helper()
	by := api.batchesByShard(j.ID)
	for _, s := range j.Shards {
		if len(by[s.Index]) != 1 {
			t.Errorf("shard %d has %d batches: %v", s.Index, len(by[s.Index]), by[s.Index])
		}
	}
}

// A file over the enqueued-token limit is queued shard by shard: never
// more queued than the limit, no token_limit_exceeded, all complete.
func TestRun_QueuesShardByShard(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	api.queueLimit = 2500
	j := newTestJob(t, 50, 10, "gpt-4o", 100, 2500) // 5 shards of 1,000 tokens
	if len(j.Shards) != 5 {
		t.Fatalf("%d shards, want 5", len(j.Shards))
	}
	log := &syncBuf{}
	if err := Run(context.Background(), j, runOpts(api, clk, log)); err != nil {
		t.Fatalf("run: %v\n%s", err, log)
	}
	for _, s := range j.Shards {
		if s.Status != StatusCompleted || s.RequestCounts.Completed != 10 || len(s.FailedBatches) > 0 {
			t.Errorf("shard %d: %s %+v failed=%v", s.Index, s.Status, s.RequestCounts, s.FailedBatches)
		}
	}
	if strings.Contains(log.String(), CodeTokenLimitExceeded) {
		t.Errorf("the queue overflowed:\n%s", log)
	}
	if !strings.Contains(log.String(), "waiting for room in the gpt-4o batch queue") {
		t.Errorf("no shard waited for the queue:\n%s", log)
	}
	assertOneBatchPerShard(t, api, j)
	// The state on disk says the same.
	d, err := LoadJob(j.Path())
	if err != nil || !d.Done() {
		t.Errorf("saved state not done: %v", err)
	}
}

// B10: the batch is accepted, then fails with token_limit_exceeded because
// another tool's batch holds the queue. The shard is resubmitted after a
// backoff (no hot loop), never reported lost, and completes.
func TestRun_B10_TokenLimitExceededResubmits(t *testing.T) {
	clk := newVirtualClock() // batch time moves only by the engine's waits
	api := newFakeAPI(clk)
	api.queueLimit = 2500
	start := clk.Now()
	// Another tool's in-progress batch holds the queue for 20 minutes.
	api.external["gpt-4o"] = 2000
	api.externalUntil = map[string]time.Time{"gpt-4o": start.Add(20 * time.Minute)}
	j := newTestJob(t, 10, 10, "gpt-4o", 100, 0) // 1,000 tokens; limit unknown locally
	log := &syncBuf{}
	ctx := context.Background()
	if err := Run(ctx, j, runOpts(api, clk, log)); err != nil {
		t.Fatalf("run: %v\n%s", err, log)
	}
	s := j.Shards[0]
	if s.Status != StatusCompleted || len(s.FailedBatches) == 0 {
		t.Fatalf("shard: %s failed=%v\n%s", s.Status, s.FailedBatches, log)
	}
	if !strings.Contains(log.String(), "token_limit_exceeded: enqueued-token limit for gpt-4o reached") {
		t.Errorf("log does not explain the queue:\n%s", log)
	}
	// No hot loop: creates are spaced by the backoff (≥ 1 min, doubling),
	// so within ~20 minutes there are at most 6 of them (0, 1, 3, 7, 15,
	// 31 min).
	elapsed := clk.Now().Sub(start)
	if api.creates > 1+int(elapsed/QueueRetryMin) || api.creates > 6 {
		t.Errorf("%d creates in %s: resubmitted too fast", api.creates, elapsed)
	}
	if s.Attempt != api.creates {
		t.Errorf("attempt %d, creates %d", s.Attempt, api.creates)
	}
}

var errCrash = errors.New("injected crash")

// A crash after the upload and one after the create, each followed by a
// rerun from the saved state: no duplicate file upload, no duplicate batch.
func TestRun_CrashAndResume(t *testing.T) {
	for _, where := range []string{"after-upload", "after-create"} {
		t.Run(where, func(t *testing.T) {
			clk := clock.Scaled(testScale)
			api := newFakeAPI(clk)
			j := newTestJob(t, 30, 10, "gpt-4o-mini", 10, 0)
			opts := runOpts(api, clk, &syncBuf{})
			crash := func(s *Shard) error {
				if s.Index == 1 {
					return errCrash
				}
				return nil
			}
			if where == "after-upload" {
				opts.Hooks.AfterUpload = crash
			} else {
				opts.Hooks.AfterCreate = crash
			}
			if err := Run(context.Background(), j, opts); !errors.Is(err, errCrash) {
				t.Fatalf("first run: %v, want the crash", err)
			}
			// A new process: state from disk, no hooks.
			j2, err := LoadJob(j.Path())
			if err != nil {
				t.Fatal(err)
			}
			log := &syncBuf{}
			if err := Run(context.Background(), j2, runOpts(api, clk, log)); err != nil {
				t.Fatalf("rerun: %v", err)
			}
			if !j2.Done() {
				t.Fatal("not done")
			}
			assertOneBatchPerShard(t, api, j2)
			if api.uploads != 3 {
				t.Errorf("%d uploads for 3 shards", api.uploads)
			}
			if !strings.Contains(log.String(), "reusing it") {
				t.Errorf("rerun did not say it reused the remote object:\n%s", log)
			}
			// A third run of a finished job creates nothing.
			before := api.creates
			if err := Run(context.Background(), j2, runOpts(api, clk, &syncBuf{})); err != nil || api.creates != before {
				t.Errorf("third run: %v, creates %d → %d", err, before, api.creates)
			}
		})
	}
}

// The state file lost entirely (e.g. a new machine): a rerun of the same
// job finds the batches by metadata and creates none.
func TestRun_LostStateFindsBatchesByMetadata(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	j := newTestJob(t, 20, 10, "gpt-4o-mini", 10, 0)
	opts := runOpts(api, clk, &syncBuf{})
	opts.Until = UntilSubmitted
	if err := Run(context.Background(), j, opts); err != nil {
		t.Fatal(err)
	}
	for _, s := range j.Shards { // forget everything remote
		s.Status, s.BatchID, s.FileID, s.Attempt = StatusPending, "", "", 0
	}
	if err := Run(context.Background(), j, runOpts(api, clk, &syncBuf{})); err != nil {
		t.Fatal(err)
	}
	assertOneBatchPerShard(t, api, j)
}

// UntilSubmitted returns only once every batch has left validating.
func TestRun_UntilSubmitted(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	j := newTestJob(t, 20, 10, "gpt-4o-mini", 10, 0)
	opts := runOpts(api, clk, &syncBuf{})
	opts.Until = UntilSubmitted
	if err := Run(context.Background(), j, opts); err != nil {
		t.Fatal(err)
	}
	for _, s := range j.Shards {
		if s.BatchID == "" || s.Status == StatusValidating {
			t.Errorf("shard %d: %q %s", s.Index, s.BatchID, s.Status)
		}
	}
}

// Transient API errors are survived; auth and quota stop with 4 and 5.
func TestRun_APIErrors(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"server error", &openai.APIError{HTTPStatusCode: 500, Type: "server_error", Message: "boom"}, 0},
		{"network", errors.New("connection reset by peer"), 0},
		{"auth", &openai.APIError{HTTPStatusCode: 401, Code: "invalid_api_key", Type: "invalid_request_error", Message: "Incorrect API key provided"}, exitcode.Auth},
		{"quota", &openai.APIError{HTTPStatusCode: 429, Code: "insufficient_quota", Type: "insufficient_quota", Message: "You exceeded your current quota"}, exitcode.Quota},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := clock.Scaled(testScale)
			api := newFakeAPI(clk)
			api.failGet, api.failGetErr = 3, c.err
			j := newTestJob(t, 5, 10, "gpt-4o-mini", 10, 0)
			log := &syncBuf{}
			err := Run(context.Background(), j, runOpts(api, clk, log))
			if got := exitcode.Of(err); got != c.want {
				t.Fatalf("exit %d (%v), want %d\n%s", got, err, c.want, log)
			}
			if c.want == 0 && (!j.Done() || !strings.Contains(log.String(), "will retry")) {
				t.Errorf("done=%v log:\n%s", j.Done(), log)
			}
		})
	}
}

// --timeout: exit 8 while batches are still running, state saved.
func TestRun_Timeout(t *testing.T) {
	clk := newVirtualClock() // the 80 s batch cannot finish within 20 s, however slow the machine
	api := newFakeAPI(clk)
	j := newTestJob(t, 5, 10, "gpt-4o-mini", 10, 0)
	opts := runOpts(api, clk, &syncBuf{})
	opts.Deadline = clk.Now().Add(20 * time.Second)
	err := Run(context.Background(), j, opts)
	if exitcode.Of(err) != exitcode.Pending {
		t.Fatalf("exit %d (%v), want 8", exitcode.Of(err), err)
	}
	if j.Shards[0].BatchID == "" {
		t.Error("no batch created before the timeout")
	}
}

// Cancelling the context returns 130 with the state saved.
func TestRun_Interrupted(t *testing.T) {
	clk := newVirtualClock()
	api := newFakeAPI(clk)
	j := newTestJob(t, 5, 10, "gpt-4o-mini", 10, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Ctrl-C 20 s (clock time) into the run: after the batch was created,
	// while the engine waits to poll it again.
	cancelAt := clk.Now().Add(20 * time.Second)
	clk.at = func(now time.Time) {
		if !now.Before(cancelAt) {
			cancel()
		}
	}
	err := Run(ctx, j, runOpts(api, clk, &syncBuf{}))
	if exitcode.Of(err) != exitcode.Interrupted {
		t.Fatalf("exit %d (%v), want 130", exitcode.Of(err), err)
	}
	d, _ := LoadJob(j.Path())
	if d.Shards[0].BatchID == "" {
		t.Error("state not saved")
	}
}

// An expired shard: its missing lines get batch_expired and land in the
// retry file as input lines; every custom_id appears once, in input order.
func TestResults_ExpiredShard(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	api.expireAfter = 30 * time.Second
	api.failCustomIDs = map[string]bool{"r1": true}
	j := newTestJob(t, 40, 20, "gpt-4o", 10, 0)
	if err := Run(context.Background(), j, runOpts(api, clk, &syncBuf{})); err != nil {
		t.Fatal(err)
	}
	for _, s := range j.Shards {
		if s.Status != StatusExpired {
			t.Fatalf("shard %d: %s, want expired", s.Index, s.Status)
		}
	}
	dir := t.TempDir()
	opts := ResultsOptions{Client: api, Out: filepath.Join(dir, "results.jsonl"), Failed: filepath.Join(dir, "retry.jsonl")}
	s, err := Results(context.Background(), j, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := readJSONL(t, opts.Out)
	if len(out) != 40 {
		t.Fatalf("%d result lines, want 40", len(out))
	}
	for i, l := range out {
		if l["custom_id"] != fmt.Sprintf("r%d", i) {
			t.Fatalf("line %d is %v: not in input order", i, l["custom_id"])
		}
	}
	// Each shard of 20 expired with its first 10 done; r1 failed.
	if s.Succeeded != 19 || s.FailedByCode[CodeBatchExpired] != 20 || s.FailedByCode["context_length_exceeded"] != 1 {
		t.Errorf("summary %+v", s)
	}
	retry := readJSONL(t, opts.Failed)
	if len(retry) != 21 || retry[0]["custom_id"] != "r1" || retry[1]["custom_id"] != "r10" || retry[0]["body"] == nil {
		t.Errorf("retry has %d lines, first %v", len(retry), retry[0])
	}
}

// results on a job that is still running: exit 8, no file written.
func TestResults_Pending(t *testing.T) {
	clk := clock.Scaled(testScale)
	j := newTestJob(t, 5, 10, "gpt-4o", 10, 0)
	out := filepath.Join(t.TempDir(), "r.jsonl")
	_, err := Results(context.Background(), j, nil, ResultsOptions{Client: newFakeAPI(clk), Out: out})
	if exitcode.Of(err) != exitcode.Pending {
		t.Fatalf("exit %d, want 8", exitcode.Of(err))
	}
}

// cancel: running batches are cancelled, unsubmitted shards marked so.
func TestCancel(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	api.queueLimit = 1000
	// Long enough that the batch is still running when cancelled, however
	// slow the machine (80 s of sim time was 40 ms of wall time).
	api.running = time.Hour
	j := newTestJob(t, 20, 10, "gpt-4o", 100, 1000) // 2 shards; the second waits for the queue
	opts := runOpts(api, clk, &syncBuf{})
	opts.Until = UntilSubmitted
	opts.Deadline = clk.Now().Add(30 * time.Second)
	_ = Run(context.Background(), j, opts)
	ids, err := Cancel(context.Background(), j, api, clk.Now(), nil)
	if err != nil || len(ids) != 1 {
		t.Fatalf("cancel: %v %v", ids, err)
	}
	if j.Shards[1].Status != StatusCancelled {
		t.Errorf("unsubmitted shard: %s", j.Shards[1].Status)
	}
	if err := Run(context.Background(), j, runOpts(api, clk, &syncBuf{})); err != nil {
		t.Fatal(err)
	}
	if j.Shards[0].Status != StatusCancelled || api.creates != 1 {
		t.Errorf("after wait: %s, creates %d", j.Shards[0].Status, api.creates)
	}
}

// A shard larger than the server's enqueued-token limit by itself can never
// run: exit 6 with the limit to split under, not an endless resubmit loop.
func TestRun_ShardOverServerQueueLimit(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	api.queueLimit = 500
	j := newTestJob(t, 10, 10, "gpt-4o", 100, 0) // 1,000 tokens in one shard
	err := Run(context.Background(), j, runOpts(api, clk, &syncBuf{}))
	if exitcode.Of(err) != exitcode.RateLimited || !strings.Contains(err.Error(), "--enqueued-limit 500") {
		t.Fatalf("exit %d: %v", exitcode.Of(err), err)
	}
	if api.creates != 1 || j.QueueLimit("gpt-4o") != 500 {
		t.Errorf("creates %d, learned limit %d", api.creates, j.QueueLimit("gpt-4o"))
	}
	// A rerun (same split, flags that allow more) never creates the
	// doomed batch again: the server's limit is kept.
	j.QueueLimits = map[string]int64{"gpt-4o": 2_000_000}
	if err := j.Save(clk.Now()); err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), j, runOpts(api, clk, &syncBuf{}))
	if exitcode.Of(err) != exitcode.RateLimited || api.creates != 1 || !strings.Contains(err.Error(), "re-split") {
		t.Fatalf("rerun: exit %d, creates %d: %v", exitcode.Of(err), api.creates, err)
	}
}

// Defect: Ctrl-C during a shard upload left the status "pending", so the
// rerun uploaded the shard again and orphaned the first file. A file of the
// same name and size is reused; each shard is uploaded once.
func TestRun_InterruptedUploadNotDuplicated(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	j := newTestJob(t, 10, 5, "gpt-4o-mini", 10, 0)
	ctx, cancel := context.WithCancel(context.Background())
	api.onUpload = func() error { cancel(); return context.Canceled }
	err := Run(ctx, j, runOpts(api, clk, &syncBuf{}))
	if exitcode.Of(err) != exitcode.Interrupted {
		t.Fatalf("exit %d (%v), want 130", exitcode.Of(err), err)
	}
	api.onUpload = nil
	d, err := LoadJob(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuf{}
	opts := runOpts(api, clk, log)
	opts.Until = UntilDone
	if err := Run(context.Background(), d, opts); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	names := map[string]int{}
	for _, f := range api.files {
		if !strings.HasSuffix(f.name, ".jsonl") || strings.Contains(f.name, "output") {
			continue
		}
		names[f.name]++
	}
	for n, c := range names {
		if c > 1 {
			t.Errorf("%s uploaded %d times", n, c)
		}
	}
	if api.uploads != 2 || !strings.Contains(log.String(), "reusing it") {
		t.Errorf("uploads %d, want 2 (one per shard)\n%s", api.uploads, log)
	}

	// Also a state reset to pending (older runs) finds the file by name.
	api2 := newFakeAPI(clk)
	j2 := newTestJob(t, 5, 5, "gpt-4o-mini", 10, 0)
	f, err := api2.UploadFile(context.Background(), j2.ShardPath(j2.Shards[0]), uploadName(j2, j2.Shards[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), j2, runOpts(api2, clk, &syncBuf{})); err != nil {
		t.Fatal(err)
	}
	if api2.uploads != 1 || j2.Shards[0].FileID != f.ID {
		t.Errorf("uploads %d, file %s, want the existing %s reused", api2.uploads, j2.Shards[0].FileID, f.ID)
	}
}

// Defect 6: Ctrl-C during `batch results` cut the download short and was
// reported as a broken file ("not a Batch output line", exit 1). It is an
// interruption: exit 130, no file written.
func TestResults_InterruptedDownload(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	j := newTestJob(t, 20, 10, "gpt-4o-mini", 10, 0)
	opts := runOpts(api, clk, &syncBuf{})
	opts.Until = UntilDone
	if err := Run(context.Background(), j, opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	api.onContent = cancel
	out := filepath.Join(t.TempDir(), "r.jsonl")
	_, err := Results(ctx, j, nil, ResultsOptions{Client: api, Out: out})
	if exitcode.Of(err) != exitcode.Interrupted || !strings.Contains(err.Error(), "interrupted") || strings.Contains(err.Error(), "not a Batch output line") {
		t.Fatalf("exit %d (%v), want 130 interrupted", exitcode.Of(err), err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("results file written after an interrupt: %v", err)
	}
}

// B10 message: other queued batches are named, but only those of the same
// model when the model is known (ModelOf, from local job state): a
// gpt-4o-mini batch does not hold gpt-4o's queue.
func TestRun_B10_OthersFilteredByModel(t *testing.T) {
	for _, filter := range []bool{false, true} {
		clk := newVirtualClock()
		api := newFakeAPI(clk)
		api.running = time.Hour
		api.queueLimit = 1500
		a := newTestJob(t, 5, 10, "gpt-4o-mini", 100, 0)
		oa := runOpts(api, clk, &syncBuf{})
		oa.Until = UntilSubmitted
		if err := Run(context.Background(), a, oa); err != nil {
			t.Fatal(err)
		}
		api.external["gpt-4o"] = 1000
		b := newTestJob(t, 10, 10, "gpt-4o", 100, 0)
		b.ID = "job_other"
		if err := b.Save(clk.Now()); err != nil {
			t.Fatal(err)
		}
		log := &syncBuf{}
		ob := runOpts(api, clk, log)
		// Long enough for a poll after the 10 s validation (clock time,
		// which moves only by the engine's waits).
		ob.Deadline = clk.Now().Add(15 * time.Minute)
		if filter {
			ob.ModelOf = func(x Batch) string {
				if x.ID == a.Shards[0].BatchID {
					return "gpt-4o-mini"
				}
				return ""
			}
		}
		_ = Run(context.Background(), b, ob)
		if !strings.Contains(log.String(), "token_limit_exceeded") {
			t.Fatalf("no token_limit_exceeded:\n%s", log)
		}
		listed := strings.Contains(log.String(), a.Shards[0].BatchID)
		if listed == filter {
			t.Errorf("filter %v: gpt-4o-mini batch %s listed %v:\n%s", filter, a.Shards[0].BatchID, listed, log)
		}
	}
}

// A shard over a (new, smaller) queue limit in a job whose other batches
// already ran cannot be re-split: it is never created, the other shards go
// on, and its requests come back as failed (for --failed), not lost.
func TestRun_OversizedShardOfStartedJob(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	j := newTestJob(t, 20, 10, "gpt-4o", 100, 0) // 2 shards of ~1,000 tokens
	opts := runOpts(api, clk, &syncBuf{})
	opts.Hooks.AfterUpload = func(s *Shard) error {
		if s.Index == 1 {
			return errors.New("injected crash")
		}
		return nil
	}
	_ = Run(context.Background(), j, opts)
	if j.Shards[0].BatchID == "" || api.creates != 1 {
		t.Fatalf("setup: shard 0 %+v, creates %d", j.Shards[0], api.creates)
	}
	j.QueueLimits["gpt-4o"] = 500
	if err := j.Save(clk.Now()); err != nil {
		t.Fatal(err)
	}
	log := &syncBuf{}
	opts = runOpts(api, clk, log)
	opts.Until = UntilDone
	if err := Run(context.Background(), j, opts); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	s := j.Shards[1]
	if api.creates != 1 || s.Status != StatusFailed || s.BatchID != "" || !strings.Contains(log.String(), "cannot be re-split") {
		t.Fatalf("creates %d, shard 1 %s %q\n%s", api.creates, s.Status, s.BatchID, log)
	}
	out := filepath.Join(t.TempDir(), "r.jsonl")
	failed := out + ".failed"
	sum, err := Results(context.Background(), j, nil, ResultsOptions{Client: api, Out: out, Failed: failed})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != 10 || sum.Failed != 10 || len(readJSONL(t, failed)) != 10 {
		t.Errorf("summary %+v", sum)
	}
	if c := j.Counts(); c.Failed != 10 || c.Completed != 10 {
		t.Errorf("counts %+v", c)
	}
}

// conflictOnTerminal answers a cancel of a finished batch as the API does
// (409), which the fake does not.
type conflictOnTerminal struct{ *fakeAPI }

func (c conflictOnTerminal) CancelBatch(ctx context.Context, id string) (Batch, error) {
	b, err := c.fakeAPI.GetBatch(ctx, id)
	if err == nil && Terminal(b.Status) {
		return Batch{}, fmt.Errorf("error, status code: 409, message: Cannot cancel a batch with status '%s'", b.Status)
	}
	return c.fakeAPI.CancelBatch(ctx, id)
}

// Re-check: a batch that finished after the local state last looked answers
// the cancel with 409; that is "already done", not a failure.
func TestCancelAfterBatchFinished(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	j := newTestJob(t, 10, 10, "gpt-4o", 100, 0)
	opts := runOpts(api, clk, &syncBuf{})
	opts.Until = UntilSubmitted
	opts.Deadline = clk.Now().Add(30 * time.Second)
	_ = Run(context.Background(), j, opts)
	if Terminal(j.Shards[0].Status) {
		t.Skip("the shard finished before the state was saved; nothing to test")
	}
	// Let the batch finish on the server while the local state is stale.
	for i := 0; i < 1000; i++ {
		b, _ := api.GetBatch(context.Background(), j.Shards[0].BatchID)
		if Terminal(b.Status) {
			break
		}
		_ = clk.Sleep(context.Background(), time.Minute)
	}
	ids, err := Cancel(context.Background(), j, conflictOnTerminal{api}, clk.Now(), nil)
	if err != nil {
		t.Fatalf("cancel of a finished batch: %v", err)
	}
	if len(ids) != 0 || !Terminal(j.Shards[0].Status) {
		t.Errorf("ids %v, shard status %s", ids, j.Shards[0].Status)
	}
}

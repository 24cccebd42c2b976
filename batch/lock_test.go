package batch

import (
	"context"
	"strconv"
	"testing"

	"github.com/oairl/oairl/internal/clock"
)

func TestLockPath(t *testing.T) {
	for in, want := range map[string]string{
		"/s/jobs/job_0123456789abcdef.json":   "/s/jobs/.job_0123456789abcdef.lock",
		"/s/jobs/job_0123456789abcdef-3.json": "/s/jobs/.job_0123456789abcdef.lock",
		"/tmp/my-state.json":                  "/tmp/.my-state.lock",
	} {
		if got := LockPath(in); got != want {
			t.Errorf("LockPath(%s) = %s, want %s", in, got, want)
		}
	}
}

// Issue 14 §0: before every create, the server is re-checked under the
// lock. A run that shares no state file with this one (another state
// directory, a lost state) creates shard 0's batch between this run's
// upload and its create: the batch is adopted, not created twice.
func TestRun_RecheckServerBeforeCreate(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	j := newTestJob(t, 20, 10, "gpt-4o-mini", 10, 0)
	opts := runOpts(api, clk, &syncBuf{})
	opts.Hooks.AfterUpload = func(s *Shard) error {
		if s.Index == 0 {
			_, err := api.CreateBatch(context.Background(), s.FileID, s.Endpoint, map[string]string{
				MetaJob: j.ID, MetaShard: strconv.Itoa(s.Index), MetaAttempt: "1", MetaInputSHA256: j.InputSHA256})
			return err
		}
		return nil
	}
	opts.Until = UntilDone
	if err := Run(context.Background(), j, opts); err != nil {
		t.Fatal(err)
	}
	if api.creates != 2 {
		t.Errorf("%d batches created for 2 shards, want 2 (one by the other run)", api.creates)
	}
	for _, s := range j.Shards {
		if s.Status != StatusCompleted {
			t.Errorf("shard %d: %s", s.Index, s.Status)
		}
	}
}

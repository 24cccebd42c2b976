package batch

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Refresh retrieves every shard of job whose batch is not terminal and
// saves the job, under the job's lock (see LockState). Errors carry the
// exit code of their diagnosis.
func Refresh(ctx context.Context, job *Job, c Client, now time.Time) error {
	return job.WithLock(ctx, func() error { return refresh(ctx, job, c, now) })
}

func refresh(ctx context.Context, job *Job, c Client, now time.Time) error {
	r := &runner{RunOptions: RunOptions{Client: c}, job: job}
	for _, s := range job.Shards {
		if s.BatchID == "" || Terminal(s.Status) {
			continue
		}
		b, err := c.GetBatch(ctx, s.BatchID)
		if err != nil {
			return APIErr("retrieving "+s.BatchID, err, now)
		}
		r.apply(s, b)
	}
	return job.Save(now)
}

// Cancel cancels every batch of job that is not terminal; shards never
// submitted are marked cancelled locally, so no later run submits them.
// It returns the ids of the batches it asked to cancel. It holds the job's
// lock (see LockState), so no concurrent submit creates a batch meanwhile.
func Cancel(ctx context.Context, job *Job, c Client, now time.Time, log io.Writer) (ids []string, err error) {
	err = job.WithLock(ctx, func() error {
		ids, err = cancel(ctx, job, c, now, log)
		return err
	})
	return ids, err
}

func cancel(ctx context.Context, job *Job, c Client, now time.Time, log io.Writer) ([]string, error) {
	r := &runner{RunOptions: RunOptions{Client: c, Log: log}, job: job}
	var ids []string
	for _, s := range job.Shards {
		if Terminal(s.Status) {
			continue
		}
		if s.BatchID == "" {
			s.Status = StatusCancelled
			r.logf("shard %d: never submitted; marked cancelled", s.Index)
			continue
		}
		b, err := c.CancelBatch(ctx, s.BatchID)
		if err != nil {
			// A batch that finished since our last look refuses the cancel
			// (409): it is already terminal, which is what was asked.
			if cur, gerr := c.GetBatch(ctx, s.BatchID); gerr == nil && Terminal(cur.Status) {
				r.apply(s, cur)
				r.logf("%s: already %s; nothing to cancel", s.BatchID, cur.Status)
				continue
			}
			_ = job.Save(now)
			return ids, APIErr("cancelling "+s.BatchID, err, now)
		}
		r.apply(s, b)
		r.logStatus(s)
		ids = append(ids, s.BatchID)
	}
	return ids, job.Save(now)
}

// AdhocJob returns a job, not backed by a state file, holding the one
// batch id (for `batch wait/status/cancel/results BATCH_ID` on a batch no
// local job knows).
func AdhocJob(ctx context.Context, c Client, id string, now time.Time) (*Job, error) {
	b, err := c.GetBatch(ctx, id)
	if err != nil {
		return nil, APIErr("retrieving "+id, err, now)
	}
	s := &Shard{Index: 0, Endpoint: b.Endpoint, Model: b.Metadata["model"], Requests: b.RequestCounts.Total}
	(&runner{}).apply(s, b)
	j := &Job{ID: id, Endpoint: b.Endpoint, Requests: b.RequestCounts.Total, Shards: []*Shard{s}, CreatedAt: b.CreatedAt}
	return j, nil
}

// ListBatches returns up to limit recent batches (newest first), reading
// pages of at most 100 and never more than maxListPages pages.
func ListBatches(ctx context.Context, c Client, limit int, now time.Time) ([]Batch, error) {
	if limit <= 0 {
		limit = 20
	}
	var out []Batch
	after := ""
	for page := 0; page < maxListPages && len(out) < limit; page++ {
		n := limit - len(out)
		if n > 100 {
			n = 100
		}
		p, err := c.ListBatches(ctx, after, n)
		if err != nil {
			return out, APIErr("listing batches", err, now)
		}
		out = append(out, p.Data...)
		if !p.HasMore || p.LastID == "" || p.LastID == after || len(p.Data) == 0 {
			break
		}
		after = p.LastID
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Describe returns a one-line description of a shard's state, e.g.
// "batch_abc in_progress 120/500".
func Describe(s *Shard) string {
	id := s.BatchID
	if id == "" {
		id = fmt.Sprintf("shard-%03d", s.Index)
	}
	c := s.RequestCounts
	total := c.Total
	if total == 0 {
		total = s.Requests
	}
	return fmt.Sprintf("%s %s %d/%d", id, s.Status, c.Completed+c.Failed, total)
}

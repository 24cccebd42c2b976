package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
)

// Polling defaults. A batch takes minutes to hours (its window is 24 h), so
// polling every few seconds only burns requests: the interval starts at
// DefaultPollInterval, grows by half while nothing changes, up to
// DefaultMaxPollInterval, and drops back when something changes.
const (
	DefaultPollInterval    = 15 * time.Second
	DefaultMaxPollInterval = 2 * time.Minute
	// maxTransientErrors is how many transient API errors in a row Run
	// survives (with the poll backoff between them, about an hour at the
	// defaults) before it gives up with exit 1; the state stays resumable.
	maxTransientErrors = 30
	// maxListPages caps the pages read from GET /batches when looking for
	// a job's batches after a crash (100 per page): has_more is never
	// followed blindly.
	maxListPages = 20
)

// Until says when Run returns.
type Until int

const (
	// UntilSubmitted: every shard has a batch that has left validating
	// (in_progress or later). Shards waiting for room in the enqueued-token
	// queue are waited for.
	UntilSubmitted Until = iota
	// UntilDone: every shard is terminal (completed, failed, expired,
	// cancelled), with token_limit_exceeded failures resubmitted.
	UntilDone
)

// ErrTimeout is returned by Run when the deadline passes first; it carries
// exit code 8 (pending).
var ErrTimeout = errors.New("timed out while batches are still pending")

// Hooks let tests inject crashes: a hook returning an error stops Run at
// that point, after the API call and before the state is saved (the worst
// moment for a crash).
type Hooks struct {
	AfterUpload func(s *Shard) error
	AfterCreate func(s *Shard) error
}

// SharedQueue shares the enqueued-token queues of an organization between
// processes and hosts (pace.BatchQueue on the --budget Redis): each job
// publishes what its shards hold per model and counts what others hold.
type SharedQueue interface {
	// Publish records the tokens job holds in model's queue (0: none).
	Publish(job, model string, tokens int64)
	// Admit records that job will hold tokens in model's queue if they
	// fit limit beside the other jobs' (atomically); else it changes
	// nothing and returns what the others hold.
	Admit(job, model string, tokens, limit int64) (others int64, ok bool)
}

// RunOptions configure Run.
type RunOptions struct {
	// Queue, when set, adds other jobs' enqueued tokens (other processes,
	// other hosts) to this job's when deciding whether a shard fits its
	// model's queue, and publishes this job's after every step while Run
	// drives it (removed when Run returns).
	Queue  SharedQueue
	Client Client
	Clock  clock.Clock
	// Log receives one plain line per status change ("batch_abc
	// in_progress 120/500") and notes (queue waits, retries); nil for none.
	Log io.Writer
	// Progress, when set, is called after each poll with the requests done
	// (completed + failed) and the total across all shards.
	Progress func(done, total int)
	// NoStatusLines drops the per-status-change lines from Log (a progress
	// bar shows them instead); notes (queue waits, retries) stay.
	NoStatusLines bool
	// PollInterval is the first (and minimum) wait between polls;
	// MaxPollInterval the longest. Defaults: DefaultPollInterval,
	// DefaultMaxPollInterval (never below PollInterval).
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// Deadline, when non-zero, is the clock time after which Run returns
	// ErrTimeout (batch wait --timeout).
	Deadline time.Time
	// Until is when Run returns (UntilSubmitted by default).
	Until Until
	// OnSubmitted, when set, is called once, the first time every shard
	// has a batch that has left validating (the moment to say "submitted").
	OnSubmitted func()
	Hooks       Hooks
	// ModelOf, when set, returns the model of a batch not of this job
	// ("" when unknown), e.g. from the local state of other jobs: the
	// Batch object carries no model, and only batches of the same model
	// share its enqueued-token queue.
	ModelOf func(b Batch) string
}

type runner struct {
	RunOptions
	job       *Job
	recovered bool
	submitted bool
	// waitLogged holds the shards whose queue wait was already reported.
	waitLogged map[int]bool
	// apiErrs counts consecutive transient API errors (for backoff).
	apiErrs int
	// files caches the file list read by findFile.
	files       []File
	filesListed bool
	// locked is set while a step holds the job's lock.
	locked bool
}

// Run drives job until the until condition holds: it uploads and creates
// the batches of pending shards as the enqueued-token queue of their model
// allows, polls the others, resubmits shards that failed with
// token_limit_exceeded after a backoff, and saves the state after every
// step. Transient API errors (network, 5xx, rate limits) are retried with
// backoff; auth and quota errors stop it with exit codes 4 and 5. A
// cancelled ctx returns exit code 130 with the state saved.
func Run(ctx context.Context, job *Job, opts RunOptions) error {
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.MaxPollInterval <= 0 {
		opts.MaxPollInterval = DefaultMaxPollInterval
	}
	if opts.MaxPollInterval < opts.PollInterval {
		opts.MaxPollInterval = opts.PollInterval
	}
	r := &runner{RunOptions: opts, job: job}
	return r.run(ctx)
}

func (r *runner) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

func (r *runner) save() error { return r.job.Save(r.Clock.Now()) }

func (r *runner) run(ctx context.Context) error {
	// The shared queue counts a job only while a process drives it (and
	// refreshes its entry): when Run returns, its batches still queued are
	// the server's to count (token_limit_exceeded is retried).
	defer r.unpublishQueued()
	interval := r.PollInterval
	for {
		if err := ctx.Err(); err != nil {
			return r.interrupted()
		}
		changed, done, err := r.step(ctx)
		if err != nil || done {
			return err
		}
		now := r.Clock.Now()
		if !r.Deadline.IsZero() && !now.Before(r.Deadline) {
			return exitcode.New(exitcode.Pending, ErrTimeout)
		}
		if changed {
			interval = r.PollInterval
		}
		wait := interval
		if next := r.nextRetry(); !next.IsZero() && next.Sub(now) < wait && next.After(now) {
			wait = next.Sub(now)
		}
		if !r.Deadline.IsZero() && r.Deadline.Sub(now) < wait {
			wait = r.Deadline.Sub(now)
		}
		if err := r.Clock.Sleep(ctx, wait); err != nil {
			return r.interrupted()
		}
		if !changed {
			interval = interval * 3 / 2
			if interval > r.MaxPollInterval {
				interval = r.MaxPollInterval
			}
		}
	}
}

// step is one round of Run under the job's lock: re-read the state (another
// process may have submitted or polled meanwhile), recover, submit what the
// queue allows, poll, save. It reports whether anything changed and whether
// the until condition holds.
func (r *runner) step(ctx context.Context) (changed, done bool, err error) {
	unlock, err := r.job.lock(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false, false, r.interrupted()
		}
		return false, false, err
	}
	r.locked = true
	defer func() {
		r.locked = false
		unlock()
	}()
	if !r.recovered {
		if err := r.recover(ctx); err != nil {
			return false, false, err
		}
		r.recovered = true
	}
	c, err := r.submitReady(ctx)
	if err != nil {
		return false, false, err
	}
	changed = changed || c
	c, err = r.poll(ctx)
	if err != nil {
		return false, false, err
	}
	changed = changed || c
	if err := r.save(); err != nil {
		return false, false, err
	}
	r.publishQueued()
	if r.Progress != nil {
		cnt := r.job.Counts()
		r.Progress(cnt.Completed+cnt.Failed, cnt.Total)
	}
	if !r.submitted && r.reached(UntilSubmitted) {
		r.submitted = true
		if r.OnSubmitted != nil {
			r.OnSubmitted()
		}
	}
	return changed, r.reached(r.Until), nil
}

func (r *runner) interrupted() error {
	// Outside a step the state on disk is already the newest (the last
	// step saved it, and another process may have saved since): only a
	// step interrupted halfway has something to save.
	if r.locked {
		_ = r.save()
	}
	return exitcode.New(exitcode.Interrupted, fmt.Errorf("interrupted; state saved in %s: rerun the same command to resume", r.job.Path()))
}

// reached reports whether the mode's condition holds.
func (r *runner) reached(u Until) bool {
	for _, s := range r.job.Shards {
		switch u {
		case UntilDone:
			if !Terminal(s.Status) {
				return false
			}
		case UntilSubmitted:
			switch s.Status {
			case StatusPending, StatusUploading, StatusUploaded, StatusCreating, StatusValidating:
				return false
			}
		}
	}
	return true
}

func (r *runner) nextRetry() time.Time {
	var t time.Time
	for _, s := range r.job.Shards {
		if s.Status == StatusPending || s.Status == StatusUploaded {
			if !s.RetryAt.IsZero() && (t.IsZero() || s.RetryAt.Before(t)) {
				t = s.RetryAt
			}
		}
	}
	return t
}

// publishQueued tells the SharedQueue what this job holds per model.
func (r *runner) publishQueued() {
	if r.Queue == nil {
		return
	}
	seen := map[string]bool{}
	for _, s := range r.job.Shards {
		if !seen[s.Model] {
			seen[s.Model] = true
			r.Queue.Publish(r.job.ID, s.Model, r.queued(s.Model))
		}
	}
}

// unpublishQueued removes this job from the SharedQueue.
func (r *runner) unpublishQueued() {
	if r.Queue == nil {
		return
	}
	seen := map[string]bool{}
	for _, s := range r.job.Shards {
		if !seen[s.Model] {
			seen[s.Model] = true
			r.Queue.Publish(r.job.ID, s.Model, 0)
		}
	}
}

// queued returns the enqueued tokens of model held by this job's shards.
func (r *runner) queued(model string) int64 {
	var n int64
	for _, s := range r.job.Shards {
		if s.Model == model && Queued(s.Status) {
			n += s.Tokens
		}
	}
	return n
}

// transient handles an API error: a retryable one is logged and swallowed
// (the loop retries after its interval); others stop the run with their
// exit code.
func (r *runner) transient(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return r.interrupted()
	}
	f := Classify(err, r.Clock.Now())
	if f.Retryable && f.Verdict != diagnose.QuotaExhausted && f.Verdict != diagnose.AuthFailed && r.apiErrs < maxTransientErrors {
		r.apiErrs++
		r.logf("%s: %s (%s); will retry", what, oneLine(err), f.Verdict)
		return nil
	}
	return APIErr(what, err, r.Clock.Now())
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// uploadName is the file name a shard is uploaded under: it names the job
// and shard, so a rerun after a crash can find the file again.
func uploadName(job *Job, s *Shard) string {
	if job.Plan > 0 {
		return fmt.Sprintf("oairl-%s-p%d-shard-%03d.jsonl", job.ID, job.Plan, s.Index)
	}
	return fmt.Sprintf("oairl-%s-shard-%03d.jsonl", job.ID, s.Index)
}

// shardMeta is the oairl_shard metadata of shard s: its index, plus the
// plan after a re-split ("3.p1"), so batches of an earlier split never
// match.
func shardMeta(job *Job, s *Shard) string {
	if job.Plan > 0 {
		return fmt.Sprintf("%d.p%d", s.Index, job.Plan)
	}
	return strconv.Itoa(s.Index)
}

// findFile looks for a file already uploaded for shard s (an upload
// interrupted after the server stored it): same name, same size. The file
// list is read at most once per run.
func (r *runner) findFile(ctx context.Context, s *Shard) (File, bool, error) {
	if !r.filesListed {
		files, err := r.Client.ListFiles(ctx)
		if err != nil {
			return File{}, false, err
		}
		r.files, r.filesListed = files, true
	}
	name := uploadName(r.job, s)
	for _, f := range r.files {
		if f.Filename == name && (f.Bytes == 0 || f.Bytes == s.Bytes) && (f.Purpose == "" || f.Purpose == "batch") {
			return f, true, nil
		}
	}
	return File{}, false, nil
}

// recover finds what a crashed earlier run left behind: files uploaded
// but not recorded (status uploading) and batches created but not recorded
// (status creating), and batches of this job created by a run whose state
// was lost. It lists files and batches at most once per run.
func (r *runner) recover(ctx context.Context) error {
	needFiles, needBatches := false, false
	for _, s := range r.job.Shards {
		if s.Status == StatusUploading {
			needFiles = true
		}
		if s.BatchID == "" && !Terminal(s.Status) {
			needBatches = true
		}
	}
	if needBatches {
		found, err := r.findBatches(ctx)
		if err != nil {
			return err
		}
		for _, s := range r.job.Shards {
			if s.BatchID != "" || Terminal(s.Status) {
				continue
			}
			// found is newest first; a stable sort by attempt keeps that
			// order within an attempt. Of two batches with one attempt (two
			// runs raced), only the winner is reused (shardWinner).
			bs := found[s.Index]
			sort.SliceStable(bs, func(a, b int) bool { return attemptOf(bs[a]) < attemptOf(bs[b]) })
			groups := map[int][]Batch{}
			for _, b := range bs {
				if !(b.Status == StatusFailed && hasCode(b.Errors, CodeTokenLimitExceeded)) {
					groups[attemptOf(b)] = append(groups[attemptOf(b)], b)
				}
			}
			for _, b := range bs {
				if w, ok := shardWinner(groups[attemptOf(b)]); ok && w.ID != b.ID && !(b.Status == StatusFailed && hasCode(b.Errors, CodeTokenLimitExceeded)) {
					continue // a duplicate another run cancelled
				}
				if a := attemptOf(b); a > s.Attempt {
					s.Attempt = a
				}
				if b.Status == StatusFailed && hasCode(b.Errors, CodeTokenLimitExceeded) {
					if !contains(s.FailedBatches, b.ID) {
						s.FailedBatches = append(s.FailedBatches, b.ID)
					}
					continue
				}
				r.logf("shard %d: found batch %s (%s) already created for this shard (by an interrupted run or a lost state); reusing it", s.Index, b.ID, b.Status)
				r.apply(s, b)
			}
			if s.BatchID == "" && s.Status == StatusCreating {
				s.Status = StatusUploaded // the create never happened
			}
		}
	}
	if needFiles {
		files, err := r.Client.ListFiles(ctx)
		if err != nil {
			if e := r.transient("listing files", err); e != nil {
				return e
			}
		}
		for _, s := range r.job.Shards {
			if s.Status != StatusUploading {
				continue
			}
			s.Status = StatusPending
			name := uploadName(r.job, s)
			for _, f := range files {
				if f.Filename == name && (f.Bytes == 0 || f.Bytes == s.Bytes) {
					s.FileID, s.Status = f.ID, StatusUploaded
					r.logf("shard %d: found file %s already uploaded for this shard; reusing it", s.Index, f.ID)
					break
				}
			}
		}
	}
	return r.save()
}

func attemptOf(b Batch) int {
	n, _ := strconv.Atoi(b.Metadata[MetaAttempt])
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasCode(errs []BatchError, code string) bool {
	for _, e := range errs {
		if e.Code == code {
			return true
		}
	}
	return false
}

// findBatches lists batches (newest first, capped at maxListPages pages)
// and returns this job's, by shard index.
func (r *runner) findBatches(ctx context.Context) (map[int][]Batch, error) {
	out := map[int][]Batch{}
	after := ""
	for page := 0; page < maxListPages; page++ {
		p, err := r.Client.ListBatches(ctx, after, 100)
		if err != nil {
			return out, APIErr("listing batches", err, r.Clock.Now())
		}
		for _, b := range p.Data {
			if b.Metadata[MetaJob] != r.job.ID {
				continue
			}
			for _, s := range r.job.Shards {
				if b.Metadata[MetaShard] == shardMeta(r.job, s) {
					out[s.Index] = append(out[s.Index], b)
				}
			}
		}
		if !p.HasMore || p.LastID == "" || p.LastID == after {
			break
		}
		after = p.LastID
	}
	return out, nil
}

// apply records a batch's state on its shard.
func (r *runner) apply(s *Shard, b Batch) {
	s.BatchID = b.ID
	if b.InputFileID != "" {
		s.FileID = b.InputFileID
	}
	s.Status = b.Status
	s.RequestCounts = b.RequestCounts
	s.OutputFileID, s.ErrorFileID = b.OutputFileID, b.ErrorFileID
	s.Errors = b.Errors
	if !b.CreatedAt.IsZero() {
		s.CreatedAt = b.CreatedAt
	}
	if !b.ExpiresAt.IsZero() {
		s.ExpiresAt = b.ExpiresAt
	}
	s.StatusSince = b.StatusSince
}

// submitReady uploads and creates the batches of pending shards, in index
// order, as far as each model's enqueued-token queue allows.
func (r *runner) submitReady(ctx context.Context) (bool, error) {
	changed := false
	now := r.Clock.Now()
	blocked := map[string]bool{} // keep a model's shards in order
	for _, s := range r.job.Shards {
		if s.Status != StatusPending && s.Status != StatusUploaded {
			continue
		}
		if blocked[s.Model] {
			continue
		}
		if !s.RetryAt.IsZero() && now.Before(s.RetryAt) {
			blocked[s.Model] = true
			continue
		}
		limit := r.job.QueueLimit(s.Model)
		if limit > 0 && s.Tokens > limit {
			// Never create a batch that cannot fit the queue even alone.
			if !r.job.Started() {
				return changed, r.tooBig(s, limit)
			}
			r.giveUp(s, limit)
			changed = true
			continue
		}
		q := r.queued(s.Model)
		if r.Queue != nil && limit > 0 {
			// Other processes' jobs share the organization's queue.
			if others, ok := r.Queue.Admit(r.job.ID, s.Model, q+s.Tokens, limit); !ok {
				q += others
			}
		}
		if limit > 0 && q > 0 && q+s.Tokens > limit {
			blocked[s.Model] = true
			if !r.waitLogged[s.Index] {
				if r.waitLogged == nil {
					r.waitLogged = map[int]bool{}
				}
				r.waitLogged[s.Index] = true
				r.logf("shard %d: waiting for room in the %s batch queue (%d + %d > %d enqueued tokens)", s.Index, s.Model, q, s.Tokens, limit)
			}
			continue
		}
		ok, err := r.submit(ctx, s)
		if err != nil {
			return changed, err
		}
		if !ok {
			return changed, nil // transient error: retry after the interval
		}
		changed = true
	}
	return changed, nil
}

// submit uploads shard s (if needed) and creates its batch. It returns
// false without an error when a transient API error should be retried.
func (r *runner) submit(ctx context.Context, s *Shard) (bool, error) {
	if s.FileID == "" {
		// A file uploaded by an interrupted run is reused, never
		// uploaded twice.
		if f, ok, err := r.findFile(ctx, s); err != nil {
			return false, r.transient("listing files", err)
		} else if ok {
			r.logf("shard %d: found file %s already uploaded for this shard; reusing it", s.Index, f.ID)
			s.FileID, s.Status = f.ID, StatusUploaded
			if err := r.save(); err != nil {
				return false, err
			}
		}
	}
	if s.FileID == "" {
		s.Status = StatusUploading
		if err := r.save(); err != nil {
			return false, err
		}
		f, err := r.Client.UploadFile(ctx, r.job.ShardPath(s), uploadName(r.job, s))
		if err != nil {
			if ctx.Err() != nil {
				// Interrupted mid-upload: the server may have the file.
				// Delete it when its id is known; otherwise the status
				// stays "uploading" and the rerun looks for it by name.
				if f.ID != "" {
					dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					if r.Client.DeleteFile(dctx, f.ID) == nil {
						s.Status = StatusPending
					}
					cancel()
				}
				return false, r.interrupted()
			}
			s.Status = StatusPending
			return false, r.transient(fmt.Sprintf("shard %d: uploading %s", s.Index, r.job.ShardPath(s)), err)
		}
		s.FileID = f.ID
		r.files = append(r.files, f)
		if h := r.Hooks.AfterUpload; h != nil {
			if err := h(s); err != nil {
				s.FileID = ""
				return false, err
			}
		}
		s.Status = StatusUploaded
		if err := r.save(); err != nil {
			return false, err
		}
	}
	// Re-check the server under the lock: a process that shares no state
	// file with this one (another state directory, a lost state) may have
	// created this shard's batch already.
	if b, ok, err := r.createdElsewhere(ctx, s); err != nil {
		return false, r.transient("listing batches", err)
	} else if ok {
		r.logf("shard %d: batch %s (%s) was already created for this shard by another run; reusing it", s.Index, b.ID, b.Status)
		if a := attemptOf(b); a > s.Attempt {
			s.Attempt = a
		}
		r.apply(s, b)
		return true, r.save()
	}
	s.Attempt++
	s.Status = StatusCreating
	if err := r.save(); err != nil {
		return false, err
	}
	md := map[string]string{}
	for k, v := range r.job.Metadata {
		md[k] = v
	}
	md[MetaJob] = r.job.ID
	md[MetaShard] = shardMeta(r.job, s)
	md[MetaInputSHA256] = r.job.InputSHA256
	md[MetaAttempt] = strconv.Itoa(s.Attempt)
	b, err := r.Client.CreateBatch(ctx, s.FileID, s.Endpoint, md)
	if err != nil {
		s.Status = StatusUploaded
		s.Attempt--
		f := Classify(err, r.Clock.Now())
		if f.Verdict == diagnose.BatchQueueFull {
			return true, r.queueFull(ctx, s, "", f.Message)
		}
		return false, r.transient(fmt.Sprintf("shard %d: creating batch for %s", s.Index, s.FileID), err)
	}
	if h := r.Hooks.AfterCreate; h != nil {
		if err := h(s); err != nil {
			return false, err
		}
	}
	r.apply(s, b)
	if err := r.save(); err != nil {
		return false, err
	}
	if w := r.yieldToDuplicate(ctx, s, b); w.ID != b.ID {
		r.apply(s, w)
	}
	r.logStatus(s)
	return true, r.save()
}

// createdElsewhere looks among the newest batches (one page of 100: a
// batch created by a concurrent run is among them) for one of this job's
// shard s with an attempt at least the one about to be created, that did
// not fail for the enqueued-token limit; when there are several (two runs
// raced before this one), it returns the one they kept (shardWinner).
func (r *runner) createdElsewhere(ctx context.Context, s *Shard) (Batch, bool, error) {
	p, err := r.Client.ListBatches(ctx, "", 100)
	if err != nil {
		return Batch{}, false, err
	}
	b, ok := shardWinner(r.shardCandidates(s, p.Data, s.Attempt+1))
	return b, ok, nil
}

// shardCandidates returns, in the order given (the server's: newest
// first), the batches of bs that belong to this job's shard s with an
// attempt of at least minAttempt, leaving out the batches that failed for
// the enqueued-token limit (they are resubmitted, not kept).
func (r *runner) shardCandidates(s *Shard, bs []Batch, minAttempt int) []Batch {
	var out []Batch
	for _, b := range bs {
		if b.Metadata[MetaJob] != r.job.ID || b.Metadata[MetaShard] != shardMeta(r.job, s) || attemptOf(b) < minAttempt || contains(s.FailedBatches, b.ID) {
			continue
		}
		if b.Status == StatusFailed && hasCode(b.Errors, CodeTokenLimitExceeded) {
			continue
		}
		out = append(out, b)
	}
	return out
}

// shardWinner picks, among the batches created for one shard (newest
// first, as GET /batches lists them), the one every run keeps: the oldest
// that is not cancelled or being cancelled (else the oldest of all).
//
// Why the server's list order and not created_at then id: created_at has
// a resolution of one second and batch ids are random, so two batches
// created in the same second would be ordered differently from their
// creation. The list order is the creation order, which makes the choice
// safe even when the runs list at different moments: a run that re-listed
// before the other's create saw only its own batch and kept it; the other
// run, listing after its create, sees both, and its own is the newer, so
// it yields too. A loser only ever cancels its own, newer batch, so the
// winner never changes.
func shardWinner(bs []Batch) (Batch, bool) {
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i].Status != StatusCancelling && bs[i].Status != StatusCancelled {
			return bs[i], true
		}
	}
	if len(bs) > 0 {
		return bs[len(bs)-1], true
	}
	return Batch{}, false
}

// yieldToDuplicate closes the race that the check before create
// (createdElsewhere) leaves open: two runs that share no state file (two
// state directories, e.g. one per CI job) reach a shard together, both see
// no batch, and both create one. Right after creating mine, it re-lists the
// shard's batches; when another run's batch for the same shard is the
// winner (shardWinner), mine is cancelled at once — still validating, so
// nothing of it is processed or billed — and the winner is returned to be
// adopted. A failed re-list keeps mine (with a warning): it is never left
// unrecorded.
func (r *runner) yieldToDuplicate(ctx context.Context, s *Shard, mine Batch) Batch {
	p, err := r.Client.ListBatches(ctx, "", 100)
	if err != nil {
		r.logf("shard %d: warning: could not re-list batches after creating %s to check for a duplicate from another run: %s", s.Index, mine.ID, oneLine(err))
		return mine
	}
	bs := p.Data
	listed := false
	for _, b := range bs {
		if b.ID == mine.ID {
			listed = true
			break
		}
	}
	if !listed {
		// Not listed yet: it is the newest batch there is.
		bs = append([]Batch{mine}, bs...)
	}
	w, ok := shardWinner(r.shardCandidates(s, bs, s.Attempt))
	if !ok || w.ID == mine.ID {
		return mine
	}
	if _, err := r.Client.CancelBatch(ctx, mine.ID); err != nil {
		r.logf("shard %d: warning: batch %s duplicates %s (created at the same moment by another run) and could not be cancelled: %s; cancel it yourself (POST /v1/batches/%s/cancel)", s.Index, mine.ID, w.ID, oneLine(err), mine.ID)
	} else {
		r.logf("shard %d: batch %s was created at the same moment by another run (another state directory) and is the older: cancelled this run's %s and adopting %s", s.Index, w.ID, mine.ID, w.ID)
	}
	if a := attemptOf(w); a > s.Attempt {
		s.Attempt = a
	}
	return w
}

var queueLimitRE = regexp.MustCompile(`Limit: ([0-9,]+) enqueued tokens`)

// serverQueueLimit parses the limit from a token_limit_exceeded message
// ("... Limit: 90,000 enqueued tokens. ..."; openai/openai-python#2084);
// 0 when absent.
func serverQueueLimit(msg string) int64 {
	m := queueLimitRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
	return n
}

// queueFull schedules shard s for resubmission after the enqueued-token
// limit refused it (never reported as lost). When the server's message
// names its limit, the job learns it (later shards queue under it), and a
// shard larger than the limit by itself stops the run with exit code 6: it
// could never run, and the input must be split under that limit.
func (r *runner) queueFull(ctx context.Context, s *Shard, batchID, msg string) error {
	if lim := serverQueueLimit(msg); lim > 0 {
		if r.job.ServerLimits == nil {
			r.job.ServerLimits = map[string]int64{}
		}
		if cur := r.job.ServerLimits[s.Model]; cur == 0 || cur > lim {
			r.job.ServerLimits[s.Model] = lim
		}
		if s.Tokens > lim {
			if batchID != "" && !contains(s.FailedBatches, batchID) {
				s.FailedBatches = append(s.FailedBatches, batchID)
			}
			s.BatchID, s.Status = "", StatusUploaded
			s.RequestCounts, s.Errors = RequestCounts{}, nil
			if r.job.Started() {
				r.giveUp(s, lim)
				return r.save()
			}
			_ = r.save()
			return r.tooBig(s, lim)
		}
	}
	if batchID != "" && !contains(s.FailedBatches, batchID) {
		s.FailedBatches = append(s.FailedBatches, batchID)
	}
	wait := queueBackoff(len(s.FailedBatches))
	s.RetryAt = r.Clock.Now().Add(wait)
	s.BatchID = ""
	s.Status = StatusUploaded
	s.RequestCounts = RequestCounts{}
	s.Errors = nil
	var others []string
	for _, o := range r.job.Shards {
		if o != s && o.Model == s.Model && Queued(o.Status) && o.BatchID != "" {
			others = append(others, fmt.Sprintf("%s (%s, %d/%d)", o.BatchID, o.Status, o.RequestCounts.Completed+o.RequestCounts.Failed, o.RequestCounts.Total))
		}
	}
	// Batches of other jobs or tools hold the queue too (B10): name the
	// unfinished ones of the first page (the Batch object has no model in
	// go-openai's type: they are filtered by model only where ModelOf
	// knows it).
	if p, err := r.Client.ListBatches(ctx, "", 20); err == nil {
		for _, b := range p.Data {
			if b.Metadata[MetaJob] == r.job.ID || !Queued(b.Status) || b.ID == batchID {
				continue
			}
			if r.ModelOf != nil {
				if m := r.ModelOf(b); m != "" && m != s.Model {
					continue // another model's queue
				}
			}
			others = append(others, fmt.Sprintf("%s (%s, %d/%d)", b.ID, b.Status, b.RequestCounts.Completed+b.RequestCounts.Failed, b.RequestCounts.Total))
		}
	}
	id := batchID
	if id == "" {
		id = "create"
	}
	line := fmt.Sprintf("%s token_limit_exceeded: enqueued-token limit for %s reached; shard %d (~%d tokens, file %s) will be resubmitted in %s",
		id, s.Model, s.Index, s.Tokens, s.FileID, wait)
	if len(others) > 0 {
		line += "; batches still queued: " + strings.Join(others, ", ")
	}
	if msg != "" {
		line += " (server: " + msg + ")"
	}
	r.logf("%s", line)
	return nil
}

// tooBig is the exit-6 error for shard s, larger than its model's queue
// limit lim (tokens) by itself, in a job no batch of which has run (the
// callers handle a started job with giveUp): rerunning submit with the
// limit re-splits the job, so that is the advice.
func (r *runner) tooBig(s *Shard, lim int64) error {
	_ = r.save()
	cmd := "the same 'oairl batch submit'"
	if in := strings.Join(r.job.Inputs, " "); in != "" && !contains(r.job.Inputs, "-") {
		cmd = "'oairl batch submit " + in + "'"
	}
	return exitcode.Errorf(exitcode.RateLimited, "shard %d needs ~%d enqueued tokens but the %s queue holds at most %d; no batch was created for it: rerun %s with --enqueued-limit %d (no batch of job %s has run yet, so it will be re-split into smaller shards)",
		s.Index, s.Tokens, s.Model, lim, cmd, lim, r.job.ID)
}

// giveUp ends shard s, too large for its model's queue limit lim (tokens)
// in a job whose other batches already ran, so it cannot be re-split: the
// shard is marked failed locally (no batch is ever created for it), the
// other shards go on, and 'batch results' writes its requests to --failed,
// to be resubmitted under the smaller limit.
func (r *runner) giveUp(s *Shard, lim int64) {
	s.Status = StatusFailed
	s.Errors = []BatchError{{Code: CodeTokenLimitExceeded, Message: fmt.Sprintf(
		"never submitted: the shard needs ~%d enqueued tokens but the %s queue holds at most %d; resubmit its requests (batch results --failed) with --enqueued-limit %d",
		s.Tokens, s.Model, lim, lim)}}
	r.logf("shard %d: needs ~%d enqueued tokens but the %s queue holds at most %d, and batches of job %s already ran, so it cannot be re-split: not submitted; its %d requests will be in 'oairl batch results %s --failed FILE' (resubmit that file with --enqueued-limit %d)",
		s.Index, s.Tokens, s.Model, lim, r.job.ID, s.Requests, r.job.ID, lim)
}

func (r *runner) logStatus(s *Shard) {
	if !r.NoStatusLines {
		r.logf("%s", Describe(s))
	}
}

// poll retrieves every shard whose batch is not terminal.
func (r *runner) poll(ctx context.Context) (bool, error) {
	changed := false
	for _, s := range r.job.Shards {
		if s.BatchID == "" || Terminal(s.Status) {
			continue
		}
		b, err := r.Client.GetBatch(ctx, s.BatchID)
		if err != nil {
			if e := r.transient("polling "+s.BatchID, err); e != nil {
				return changed, e
			}
			return changed, nil
		}
		r.apiErrs = 0
		before, beforeCounts := s.Status, s.RequestCounts
		if b.Status == StatusFailed && hasCode(b.Errors, CodeTokenLimitExceeded) {
			msg := ""
			for _, e := range b.Errors {
				if e.Code == CodeTokenLimitExceeded {
					msg = e.Message
				}
			}
			if err := r.queueFull(ctx, s, b.ID, msg); err != nil {
				return changed, err
			}
			changed = true
			continue
		}
		r.apply(s, b)
		if s.Status != before || s.RequestCounts != beforeCounts {
			changed = true
			r.logStatus(s)
			if s.Status == StatusFailed {
				for _, e := range s.Errors {
					line := ""
					if e.Line != nil {
						line = fmt.Sprintf(" (shard %s line %d)", s.File, *e.Line)
					}
					r.logf("%s failed: %s: %s%s", s.BatchID, e.Code, e.Message, line)
				}
			}
		}
	}
	return changed, nil
}

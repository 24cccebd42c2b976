package batch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/models"
)

// ResultsOptions configure Results and MergeFiles. Paths are written
// atomically (temp file + rename): an interrupted run leaves no partial
// file.
type ResultsOptions struct {
	Client Client
	// Out is the results file: one Batch output line per input request,
	// in input order (required).
	Out string
	// Failed, when set, receives the input lines of every request that did
	// not succeed (failed, expired, cancelled, missing), ready to resubmit.
	Failed string
	// Unmatched receives output lines whose custom_id is in no input; it
	// is created only when there are some. Default: Out + ".unmatched.jsonl".
	Unmatched string
	Registry  *models.Registry
	// Log receives notes (an all-failed batch, unmatched ids, duplicates).
	Log io.Writer
	Now time.Time
}

func (o *ResultsOptions) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// missingFor explains a request with no output line from its shard's
// status: batch_expired (the 24 h window ended first), batch_cancelled,
// batch_failed (with the batch's own error), not_submitted, or
// missing_result for a completed batch that lost it.
func missingFor(job *Job) func(int) (string, string) {
	return func(k int) (string, string) {
		if k < 0 || k >= len(job.Shards) {
			return CodeMissingResult, "no output line for this custom_id"
		}
		s := job.Shards[k]
		switch s.Status {
		case StatusExpired:
			return CodeBatchExpired, fmt.Sprintf("batch %s expired before this request ran", s.BatchID)
		case StatusCancelled, StatusCancelling:
			return CodeBatchCancelled, fmt.Sprintf("batch %s was cancelled before this request ran", s.BatchID)
		case StatusFailed:
			msg := fmt.Sprintf("batch %s failed", s.BatchID)
			if s.BatchID == "" {
				msg = fmt.Sprintf("shard %d was never submitted", s.Index)
			}
			for _, e := range s.Errors {
				msg += ": " + e.Code + ": " + e.Message
				break
			}
			return CodeBatchFailed, msg
		case StatusPending, StatusUploading, StatusUploaded, StatusCreating:
			return CodeNotSubmitted, "this request's shard was never submitted"
		}
		return CodeMissingResult, fmt.Sprintf("batch %s (%s) has no output line for this custom_id", s.BatchID, s.Status)
	}
}

// Results downloads the output and error files of every shard of job and
// merges them with the job's input (see Merger): in, or when nil the job's
// own shard files in input order. Every shard must be terminal, else it
// returns exit code 8 (pending). Empty file ids (null or "") are never
// requested (case B13).
func Results(ctx context.Context, job *Job, in InputIter, opts ResultsOptions) (MergeSummary, error) {
	var pending []string
	for _, s := range job.Shards {
		if !Terminal(s.Status) {
			id := s.BatchID
			if id == "" {
				id = fmt.Sprintf("shard %d", s.Index)
			}
			pending = append(pending, id+" ("+s.Status+")")
		}
	}
	if len(pending) > 0 {
		return MergeSummary{}, exitcode.Errorf(exitcode.Pending, "job %s is still pending: %s; run 'oairl batch wait %s' first", job.ID, strings.Join(pending, ", "), job.ID)
	}
	m := NewMerger()
	m.Dir = filepath.Dir(opts.Out)
	defer m.Close()
	for _, s := range job.Shards {
		if s.Status == StatusCompleted && s.RequestCounts.Total > 0 && s.RequestCounts.Completed == 0 {
			opts.logf("%s completed but 0/%d requests succeeded; see errors", s.BatchID, s.RequestCounts.Total)
		}
		for _, id := range []string{s.OutputFileID, s.ErrorFileID} {
			if id == "" {
				continue
			}
			if err := download(ctx, opts, m, s, id); err != nil {
				return MergeSummary{}, err
			}
		}
	}
	if in == nil {
		ji, err := OpenJobInput(job)
		if err != nil {
			return MergeSummary{}, err
		}
		in = ji
	}
	defer in.Close()
	return writeMerge(m, in, missingFor(job), opts)
}

func download(ctx context.Context, opts ResultsOptions, m *Merger, s *Shard, id string) error {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	rc, err := opts.Client.FileContent(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return exitcode.New(exitcode.Interrupted, fmt.Errorf("interrupted while downloading %s of %s; nothing was written", id, s.BatchID))
		}
		if st, _, _, _, ok := api.APIError(err); ok && st == http.StatusNotFound {
			return exitcode.New(exitcode.Failure, fmt.Errorf("the server no longer has file %s of %s (expired or different server): %w", id, s.BatchID, err))
		}
		return APIErr(fmt.Sprintf("downloading %s of %s", id, s.BatchID), err, now)
	}
	defer rc.Close()
	if err := m.AddOutput(id, rc); err != nil {
		// A cancelled download ends the body early: that is an
		// interruption, not a malformed file.
		if ctx.Err() != nil {
			return exitcode.New(exitcode.Interrupted, fmt.Errorf("interrupted while downloading %s of %s; nothing was written", id, s.BatchID))
		}
		return fmt.Errorf("%s of %s: %w", id, s.BatchID, err)
	}
	if ctx.Err() != nil {
		return exitcode.New(exitcode.Interrupted, fmt.Errorf("interrupted while downloading %s of %s; nothing was written", id, s.BatchID))
	}
	return nil
}

// MergeFiles joins saved output/error files with an input file, offline
// (`batch results --from-file OUT --errors ERR --input IN`). Requests with
// no output line get a synthesized missing_result error line.
func MergeFiles(outputs []string, inputPath string, opts ResultsOptions) (MergeSummary, error) {
	m := NewMerger()
	m.Dir = filepath.Dir(opts.Out)
	defer m.Close()
	for _, p := range outputs {
		f, err := os.Open(p)
		if err != nil {
			return MergeSummary{}, err
		}
		err = m.AddOutput(p, f)
		f.Close()
		if err != nil {
			return MergeSummary{}, exitcode.New(exitcode.Input, err)
		}
	}
	in, err := OpenFileInput(inputPath)
	if err != nil {
		return MergeSummary{}, err
	}
	defer in.Close()
	s, err := writeMerge(m, in, nil, opts)
	return s, err
}

func writeMerge(m *Merger, in InputIter, missing func(int) (string, string), opts ResultsOptions) (MergeSummary, error) {
	defer func() {
		for _, w := range m.Warnings {
			opts.logf("%s", w)
		}
	}()
	out, err := CreateAtomic(opts.Out)
	if err != nil {
		return MergeSummary{}, err
	}
	defer out.Abort()
	mo := MergeOptions{Out: out, Missing: missing, Registry: opts.Registry}
	var failed *AtomicFile
	if opts.Failed != "" {
		if failed, err = CreateAtomic(opts.Failed); err != nil {
			return MergeSummary{}, err
		}
		defer failed.Abort()
		mo.Failed = failed
	}
	upath := opts.Unmatched
	if upath == "" {
		upath = opts.Out + ".unmatched.jsonl"
	}
	um, err := CreateAtomic(upath)
	if err != nil {
		return MergeSummary{}, err
	}
	defer um.Abort()
	mo.Unmatched = um
	s, err := m.Merge(in, mo)
	if err != nil {
		return s, err
	}
	if err := out.Commit(); err != nil {
		return s, err
	}
	if failed != nil {
		if err := failed.Commit(); err != nil {
			return s, err
		}
	}
	if s.Unmatched > 0 {
		if err := um.Commit(); err != nil {
			return s, err
		}
		for _, id := range s.UnmatchedIDs {
			opts.logf("output has custom_id %q that is not in the input (kept in %s)", id, upath)
		}
		if s.Unmatched > len(s.UnmatchedIDs) {
			opts.logf("... and %d more unmatched custom_ids (kept in %s)", s.Unmatched-len(s.UnmatchedIDs), upath)
		}
	}
	return s, nil
}

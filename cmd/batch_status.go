package cmd

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/batch"
	"github.com/oairl/oairl/internal/humanize"
	"github.com/oairl/oairl/internal/input"
)

// BatchStatusOptions holds the dependencies and flag values of 'oairl
// batch status'.
type BatchStatusOptions struct {
	batchDeps
	Ref     string // JOB or BATCH_ID ("" = the latest job)
	Format  string // table (tsv off a TTY) or json
	Offline bool   // --offline: the saved state, no API call
}

const batchStatusLong = `Show the shards of a job (default: the latest local job) and their
batches: status, request counts, created/expires times and errors. The
batches are retrieved from the API first (--offline shows the saved state).
On a terminal the status shows how long the batch has been in it and the
expiry how long is left ("in_progress 2h10m", "in 21h50m"); a batch still
validating or finalizing after an hour gets a hint on stderr.

Output
  On a terminal: a table. Piped: tab-separated rows, no header, raw
  integers and RFC 3339 times, columns: shard, batch_id, status, model,
  completed, failed, total, created_at, expires_at, errors (status_since
  is in the JSON).
  --format json (--json): one document (also printed by 'batch submit
  --json' and 'batch wait --json'):
    schema_version (1), id, state_file, input_sha256, endpoint, requests, rejected
    shards[]  {index, batch_id, file_id, status, model, requests, bytes,
              tokens (enqueued-token estimate), attempt,
              request_counts{total, completed, failed}, output_file_id,
              error_file_id, created_at, expires_at, status_since (RFC 3339
              or null),
              errors[{code, message, line}], failed_batches[]}`

func newBatchStatusCmd(f *Factory, runF func(*BatchStatusOptions) error) *cobra.Command {
	opts := &BatchStatusOptions{batchDeps: newBatchDeps(f)}
	c := &cobra.Command{
		Use:   "status [JOB|BATCH_ID] [flags]",
		Short: "Show a job's shards and batches: status, request counts, times, errors",
		Long:  batchStatusLong,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Ref = args[0]
			}
			if runF != nil {
				return runF(opts)
			}
			return batchStatusRun(c, opts)
		},
	}
	fl := c.Flags()
	addFormatFlags(f, c, &opts.Format, "output format: table (tab-separated when piped), json", "table", "json")
	fl.BoolVar(&opts.Offline, "offline", false, "show the saved state without calling the API")
	addStateFlag(c, &opts.batchDeps)
	c.ValidArgsFunction = completeJobRefs(&opts.batchDeps)
	return c
}

// Stable JSON shapes of 'batch status --format json'.
type batchStatusJSON struct {
	ID          string           `json:"id"`
	StateFile   string           `json:"state_file"`
	InputSHA256 string           `json:"input_sha256"`
	Endpoint    string           `json:"endpoint"`
	Requests    int              `json:"requests"`
	Rejected    int              `json:"rejected"`
	Shards      []batchShardJSON `json:"shards"`
}

type batchShardJSON struct {
	Index         int                 `json:"index"`
	BatchID       string              `json:"batch_id"`
	FileID        string              `json:"file_id"`
	Status        string              `json:"status"`
	Model         string              `json:"model"`
	Requests      int                 `json:"requests"`
	Bytes         int64               `json:"bytes"`
	Tokens        int64               `json:"tokens"`
	Attempt       int                 `json:"attempt"`
	RequestCounts batch.RequestCounts `json:"request_counts"`
	OutputFileID  string              `json:"output_file_id"`
	ErrorFileID   string              `json:"error_file_id"`
	CreatedAt     *string             `json:"created_at"`
	ExpiresAt     *string             `json:"expires_at"`
	StatusSince   *string             `json:"status_since"`
	Errors        []batch.BatchError  `json:"errors"`
	FailedBatches []string            `json:"failed_batches"`
}

func rfc3339(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

func batchStatusDoc(j *batch.Job) batchStatusJSON {
	doc := batchStatusJSON{ID: j.ID, StateFile: j.Path(), InputSHA256: j.InputSHA256, Endpoint: j.Endpoint,
		Requests: j.Requests, Rejected: j.Rejected, Shards: []batchShardJSON{}}
	for _, s := range j.Shards {
		sj := batchShardJSON{Index: s.Index, BatchID: s.BatchID, FileID: s.FileID, Status: s.Status, Model: s.Model,
			Requests: s.Requests, Bytes: s.Bytes, Tokens: s.Tokens, Attempt: s.Attempt, RequestCounts: s.RequestCounts,
			OutputFileID: s.OutputFileID, ErrorFileID: s.ErrorFileID, CreatedAt: rfc3339(s.CreatedAt), ExpiresAt: rfc3339(s.ExpiresAt),
			StatusSince: rfc3339(s.StatusSince), Errors: s.Errors, FailedBatches: s.FailedBatches}
		if sj.Errors == nil {
			sj.Errors = []batch.BatchError{}
		}
		if sj.FailedBatches == nil {
			sj.FailedBatches = []string{}
		}
		doc.Shards = append(doc.Shards, sj)
	}
	return doc
}

func shardErrors(s *batch.Shard) string {
	var parts []string
	for _, e := range s.Errors {
		p := e.Code
		if e.Line != nil {
			p += fmt.Sprintf(" (line %d)", *e.Line)
		}
		parts = append(parts, p)
	}
	if len(s.FailedBatches) > 0 {
		parts = append(parts, fmt.Sprintf("%d resubmits after token_limit_exceeded", len(s.FailedBatches)))
	}
	return strings.Join(parts, "; ")
}

func batchStatusRun(c *cobra.Command, opts *BatchStatusOptions) error {
	ctx := c.Context()
	var job *batch.Job
	var err error
	if opts.Offline {
		job, err = batch.FindJob(opts.stateDir(), opts.State, opts.Ref)
	} else {
		var client batch.Client
		job, client, err = opts.resolveJob(ctx, opts.Ref)
		if err == nil && job.Path() != "" {
			err = batch.Refresh(ctx, job, client, opts.Clock.Now())
		}
	}
	if err != nil {
		return err
	}
	ios := opts.IO
	if opts.Format == "json" {
		return writeJSON(ios.Out, batchStatusDoc(job))
	}
	tty := ios.IsStdoutTTY()
	if !tty {
		for _, s := range job.Shards {
			rc := s.RequestCounts
			total := rc.Total
			if total == 0 {
				total = s.Requests
			}
			fmt.Fprintf(ios.Out, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Index, s.BatchID, s.Status, s.Model,
				rc.Completed, s.FailedRequests(), total, batchTime(s.CreatedAt, false), batchTime(s.ExpiresAt, false), shardErrors(s))
		}
		stuckHints(opts, job)
		return nil
	}
	now := opts.Clock.Now()
	fmt.Fprintf(ios.Out, "%s  %s  %s\n\n", job.ID, humanize.Count(int64(job.Requests), "request", "requests"), job.Endpoint)
	t := batchTable(ios.Out, []string{"SHARD", "BATCH", "STATUS", "MODEL", "DONE", "FAILED", "TOTAL", "CREATED", "EXPIRES", "ERRORS"})
	for _, s := range job.Shards {
		rc := s.RequestCounts
		total := rc.Total
		if total == 0 {
			total = s.Requests
		}
		id := s.BatchID
		if id == "" {
			id = "—"
		}
		status := s.Status
		if !s.StatusSince.IsZero() && !batch.Terminal(s.Status) {
			status += " " + shortDur(now.Sub(s.StatusSince))
		}
		expires := batchTime(s.ExpiresAt, true)
		if !s.ExpiresAt.IsZero() && !batch.Terminal(s.Status) {
			if left := s.ExpiresAt.Sub(now); left > 0 {
				expires += " (in " + shortDur(left) + ")"
			} else {
				expires += " (due)"
			}
		}
		t.Append([]string{strconv.Itoa(s.Index), id, status, modelOrNone(s.Model), input.Thousands(int64(rc.Completed)),
			input.Thousands(int64(s.FailedRequests())), input.Thousands(int64(total)), batchTime(s.CreatedAt, true), expires, shardErrors(s)})
	}
	if err := t.Render(); err != nil {
		return err
	}
	stuckHints(opts, job)
	return nil
}

// stuckAfter is how long a batch may stay validating or finalizing before
// status hints at it: both usually take minutes.
const stuckAfter = time.Hour

// stuckHints prints, on stderr, a hint for each batch validating or
// finalizing for longer than stuckAfter.
func stuckHints(opts *BatchStatusOptions, job *batch.Job) {
	if opts.IO.Quiet {
		return
	}
	now := opts.Clock.Now()
	for _, s := range job.Shards {
		if s.StatusSince.IsZero() || now.Sub(s.StatusSince) < stuckAfter {
			continue
		}
		left := ""
		if !s.ExpiresAt.IsZero() {
			left = fmt.Sprintf("; it expires in %s (%s)", shortDur(s.ExpiresAt.Sub(now)), batchTime(s.ExpiresAt, opts.IO.IsStdoutTTY()))
		}
		switch s.Status {
		case batch.StatusValidating:
			fmt.Fprintf(opts.IO.ErrOut, "hint: %s has been validating for %s (it usually takes minutes)%s. The API may be backed up (status.openai.com), or the file is large; nothing has run yet, so 'oairl batch cancel %s' and submitting again loses nothing\n",
				s.BatchID, shortDur(now.Sub(s.StatusSince)), left, job.ID)
		case batch.StatusFinalizing:
			fmt.Fprintf(opts.IO.ErrOut, "hint: %s has been finalizing for %s (it usually takes minutes)%s. Its requests have run: keep waiting ('oairl batch wait %s'); do not cancel it, or the results written so far are all you get\n",
				s.BatchID, shortDur(now.Sub(s.StatusSince)), left, job.ID)
		}
	}
}

// shortDur renders a duration to the minute for people: "<1m", "12m",
// "2h05m", "1d03h".
func shortDur(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	if d < time.Minute {
		return "<1m"
	}
	m := int64(d / time.Minute)
	switch {
	case m < 60:
		return fmt.Sprintf("%dm", m)
	case m < 24*60:
		return fmt.Sprintf("%dh%02dm", m/60, m%60)
	}
	return fmt.Sprintf("%dd%02dh", m/(24*60), (m/60)%24)
}

package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/humanize"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/tokens"
)

// PrepareOptions configure Prepare.
type PrepareOptions struct {
	Sources []input.Source
	// Scan holds input.Scan's options: Registry and Counter (required),
	// Endpoint (--endpoint), Model (--model).
	Scan input.Options
	// StatePath is the job's state file (--state FILE); when "", the job
	// is kept as StateDir/jobs/JOB_ID.json.
	StatePath string
	StateDir  string
	// QueueLimit returns a model's enqueued-token limit in tokens (from
	// --enqueued-limit, or the registry's BatchQueueTokens at --tier);
	// 0 = unknown, no local limit.
	QueueLimit func(model string) int64
	// MaxRequests and MaxBytes lower the per-shard limits (tests); zero
	// means the Batch API's.
	MaxRequests int
	MaxBytes    int64
	// Rejected, when set (--skip-invalid FILE), receives every invalid
	// line and the job goes on with the valid ones; when nil any invalid
	// line stops Prepare with exit code 3 before anything is uploaded.
	Rejected io.Writer
	// Strict makes warnings (BOM, CRLF, blank lines, unknown model, ...)
	// errors too (exit 3).
	Strict bool
	// Metadata is added to every batch (--metadata k=v).
	Metadata map[string]string
	// DryRun splits into a temporary directory and keeps no state.
	DryRun bool
	// Problem is called with every problem found, in input order.
	Problem func(input.Problem)
	Now     time.Time
	// BaseURL is the API base URL the job is for; a job kept for another
	// server is never resumed (a new job is started instead).
	BaseURL string
	// New starts a new job even when one exists for the same input
	// (--new); with StatePath it is an error, the file being taken.
	New bool
	// AllowUnknownModel keeps unknown_model a warning (--allow-unknown-
	// model). By default it is an error here: a batch for a mistyped model
	// fails only after the upload and validation (count keeps it a
	// warning).
	AllowUnknownModel bool
}

// PrepareResult says what Prepare did.
type PrepareResult struct {
	Job     *Job
	Resumed bool // the same input was submitted before: its job is reused
	// Replanned: the reused job had no batch yet and its split differed
	// from the current one (another --enqueued-limit or --tier), so its
	// shards were replaced by the new split.
	Replanned bool
	// Previous is the earlier job for the same input that was not
	// resumed (another server, or New), else nil.
	Previous *Job
	Summary  input.Summary
	Invalid  int // invalid lines (written to Rejected, or the cause of the error)
	// Warnings counts warning-severity problems (file and line level).
	Warnings int
}

// JobID returns the job id of a normalised input with hex SHA-256 sha.
func JobID(sha string) string { return "job_" + sha[:16] }

// Prepare validates the input with input.Scan (the same checks as `oairl
// count`), splits the valid requests into shard files under the job's
// shard directory, and creates or reuses the job. Nothing is uploaded.
//
// The shards hold the normalised lines (no BOM, LF endings, no blank
// lines; Request.Raw), and their request total must equal the number of
// valid requests Scan reported, else Prepare fails (case B06). When the
// same input (same SHA-256) already has a job at the state path, that job
// is returned with Resumed set and the new split is discarded.
//
// Errors: invalid lines without Rejected, or any warning under Strict →
// exit code 3; a request too large for any shard → exit code 3.
func Prepare(ctx context.Context, opts PrepareOptions) (*PrepareResult, error) {
	res := &PrepareResult{}
	base := opts.StateDir
	if opts.StatePath != "" {
		base = filepath.Dir(opts.StatePath)
	} else {
		base = filepath.Join(base, "jobs")
	}
	if opts.DryRun {
		base = os.TempDir()
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(base, ".oairl-split-")
	if err != nil {
		return nil, err
	}
	sp, err := NewSplitter(SplitOptions{Dir: tmp, MaxRequests: opts.MaxRequests, MaxBytes: opts.MaxBytes, QueueLimit: opts.QueueLimit})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			sp.Abort()
		}
	}()
	report := func(p input.Problem) {
		if p.Severity == tokens.Warning {
			res.Warnings++
		}
		if opts.Problem != nil {
			opts.Problem(p)
		}
	}
	valid := 0
	var splitErr error
	// One endpoint per batch: a line whose url differs from the file's
	// batch endpoint (--endpoint, else its first valid url) is an
	// endpoint_mismatch error, as in count, so a mixed file is refused
	// (exit 3, nothing uploaded), never split (case B03, issue 14 §4).
	sum, err := input.Scan(ctx, opts.Sources, opts.Scan, func(r *input.Request) error {
		for i := range r.Problems {
			if p := &r.Problems[i]; p.Code == tokens.CodeUnknownModel && !opts.AllowUnknownModel {
				p.Severity = tokens.Error
				p.Message += "; a batch for it would fail only after the upload (fix the name, add it with --models FILE, or pass --allow-unknown-model)"
			}
			report(r.Problems[i])
		}
		if !r.Valid() {
			res.Invalid++
			if opts.Rejected != nil {
				if _, err := opts.Rejected.Write(append(append([]byte(nil), r.Raw...), '\n')); err != nil {
					return err
				}
			}
			return nil
		}
		if res.Invalid > 0 && opts.Rejected == nil {
			return nil // the job will not be created; keep validating only
		}
		valid++
		if err := sp.Add(Line{File: r.File, Line: r.Line, CustomID: r.CustomID, URL: r.URL, Model: r.Model,
			Tokens: r.Count.TPMCharge, Inputs: r.Count.Inputs, Raw: r.Raw, Bare: r.Bare}); err != nil {
			if splitErr == nil {
				splitErr = err
			}
		}
		return nil
	})
	res.Summary = sum
	for _, p := range sum.FileProblems {
		report(p)
	}
	if err != nil {
		if ctx.Err() != nil {
			// Ctrl-C while reading: nothing was kept or uploaded.
			return res, exitcode.New(exitcode.Interrupted, fmt.Errorf("interrupted while reading the input; nothing was uploaded"))
		}
		// A source that cannot be opened or read (missing, a directory,
		// corrupt gzip) is exit 1, as in count and run ('oairl help
		// exit-codes': "a file cannot be read"); 3 is for lines the API
		// would reject.
		return res, exitcode.New(exitcode.Failure, fmt.Errorf("%w; nothing was uploaded", err))
	}
	if res.Invalid > 0 && opts.Rejected == nil {
		return res, exitcode.Errorf(exitcode.Input, "%d of %s %s invalid; nothing was uploaded (fix them, or pass --skip-invalid FILE to submit the rest)", res.Invalid, humanize.Count(int64(sum.Requests), "request", "requests"), isAre(res.Invalid))
	}
	if opts.Strict && res.Warnings > 0 {
		return res, exitcode.Errorf(exitcode.Input, "%s under --strict; nothing was uploaded", humanize.Count(int64(res.Warnings), "warning", "warnings"))
	}
	if splitErr != nil {
		return res, exitcode.New(exitcode.Input, splitErr)
	}
	shards, n, sha, err := sp.Close()
	if err != nil {
		return res, err
	}
	if n != valid || (opts.Rejected == nil && n != sum.Valid) {
		return res, fmt.Errorf("refusing to upload: the shards hold %d requests but the input has %d valid requests", n, sum.Valid)
	}
	if n == 0 {
		return res, exitcode.Errorf(exitcode.Input, "no valid requests to submit")
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	id := JobID(sha)
	if !opts.DryRun {
		// Choosing, creating or resuming the job happens under its lock:
		// a concurrent submit of the same input waits here, then resumes
		// the job this one created (issue 14 §0).
		lockFor := opts.StatePath
		if lockFor == "" {
			lockFor = JobPath(opts.StateDir, id)
		}
		unlock, err := LockState(ctx, lockFor)
		if err != nil {
			if ctx.Err() != nil {
				return res, exitcode.New(exitcode.Interrupted, fmt.Errorf("interrupted while waiting for another oairl using this job; nothing was uploaded"))
			}
			return res, err
		}
		defer unlock()
	}
	path := opts.StatePath
	if path == "" {
		// Jobs for the same input: JOB, JOB-2, JOB-3, ...; the newest is
		// the one to resume.
		for n := 2; ; n++ {
			next := fmt.Sprintf("%s-%d", JobID(sha), n)
			if _, err := os.Stat(JobPath(opts.StateDir, next)); err != nil {
				break
			}
			id = next
		}
		path = JobPath(opts.StateDir, id)
	}
	job := &Job{
		Version: StateVersion, ID: id, InputSHA256: sha, BaseURL: opts.BaseURL, Endpoint: shards[0].Endpoint,
		Requests: n, Rejected: res.Invalid, Metadata: opts.Metadata, CreatedAt: now.UTC(), Shards: shards,
		QueueLimits: map[string]int64{},
	}
	for _, s := range opts.Sources {
		job.Inputs = append(job.Inputs, s.Name)
	}
	for _, s := range shards {
		if l := opts.QueueLimit; l != nil && l(s.Model) > 0 {
			job.QueueLimits[s.Model] = l(s.Model)
		}
	}
	res.Job = job
	if opts.DryRun {
		job.path = ""
		return res, nil
	}
	if old, err := LoadJob(path); err == nil {
		if old.InputSHA256 != sha {
			return res, fmt.Errorf("state file %s holds job %s for a different input; pass another --state FILE", path, old.ID)
		}
		otherServer := old.BaseURL != "" && opts.BaseURL != "" && old.BaseURL != opts.BaseURL
		if otherServer || opts.New {
			if opts.StatePath != "" {
				why := "--new"
				if otherServer {
					why = "job " + old.ID + " was submitted to " + old.BaseURL + ", not " + opts.BaseURL
				}
				return res, exitcode.Errorf(exitcode.Usage, "state file %s holds job %s (%s); pass another --state FILE to start a new job", path, old.ID, why)
			}
			// A new job next to the old one: JOB-N+1.
			res.Previous = old
			n := 1
			if i := len(JobID(sha)); len(old.ID) > i {
				fmt.Sscanf(old.ID[i:], "-%d", &n)
			}
			job.ID = fmt.Sprintf("%s-%d", JobID(sha), n+1)
			path = JobPath(opts.StateDir, job.ID)
		} else {
			// Same input, same server: reuse the job (its shards, files
			// and batches).
			if opts.QueueLimit != nil {
				for _, s := range old.Shards {
					if l := opts.QueueLimit(s.Model); l > 0 {
						if old.QueueLimits == nil {
							old.QueueLimits = map[string]int64{}
						}
						old.QueueLimits[s.Model] = l
					}
				}
			}
			if old.BaseURL == "" {
				old.BaseURL = opts.BaseURL
			}
			res.Job, res.Resumed = old, true
			if old.Started() || samePlan(old.Shards, shards) {
				// Keep the limits of this run: the next step of Run
				// re-reads the state under the job's lock.
				return res, old.Save(now)
			}
			// No batch has run yet and the split changed (another
			// --enqueued-limit or --tier): replace the shards, so no
			// shard over the new limit is ever created.
			dir := old.ShardDir()
			if err := os.RemoveAll(dir); err != nil {
				return res, err
			}
			if err := os.Rename(tmp, dir); err != nil {
				return res, err
			}
			keep = true
			old.Shards = shards
			old.QueueLimits = job.QueueLimits
			old.Plan++
			res.Replanned = true
			if err := old.Save(now); err != nil {
				return res, err
			}
			return res, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return res, err
	}
	job.path = path
	dir := job.ShardDir()
	if err := os.RemoveAll(dir); err != nil {
		return res, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return res, err
	}
	keep = true
	if err := job.Save(now); err != nil {
		return res, err
	}
	return res, nil
}

// samePlan reports whether two splits have the same shards (endpoint,
// model, requests, bytes and tokens each).
func samePlan(a, b []*Shard) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Endpoint != y.Endpoint || x.Model != y.Model || x.Requests != y.Requests || x.Bytes != y.Bytes || x.Tokens != y.Tokens || x.File != y.File {
			return false
		}
	}
	return true
}

// Plan summarises a job's shards per model, for --dry-run and messages.
type Plan struct {
	Model    string `json:"model"`
	Shards   int    `json:"shards"`
	Requests int    `json:"requests"`
	Bytes    int64  `json:"bytes"`
	Tokens   int64  `json:"tokens"`
	// QueueLimit is the enqueued-token limit used (0 = unknown).
	QueueLimit int64 `json:"queue_limit"`
}

// PlanOf groups a job's shards by model.
func PlanOf(j *Job) []Plan {
	by := map[string]*Plan{}
	for _, s := range j.Shards {
		p := by[s.Model]
		if p == nil {
			p = &Plan{Model: s.Model, QueueLimit: j.QueueLimit(s.Model)}
			by[s.Model] = p
		}
		p.Shards++
		p.Requests += s.Requests
		p.Bytes += s.Bytes
		p.Tokens += s.Tokens
	}
	out := make([]Plan, 0, len(by))
	for _, p := range by {
		out = append(out, *p)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Model < out[b].Model })
	return out
}

// isAre is "is" for 1, else "are".
func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

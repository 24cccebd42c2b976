package cmd

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/batch"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/humanize"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/tokens"
)

// BatchSubmitOptions holds the dependencies and flag values of 'oairl
// batch submit'.
type BatchSubmitOptions struct {
	batchDeps
	Registry func() (*models.Registry, error)

	Files         []string
	Endpoint      string        // --endpoint
	Model         string        // --model: for bare lines that name none
	AssumeOutput  int64         // --assume-output (tokens)
	Tier          string        // --tier: free, 1-5
	EnqueuedLimit int64         // --enqueued-limit (tokens)
	Wait          bool          // --wait
	Metadata      []string      // --metadata k=v
	SkipInvalid   string        // --skip-invalid FILE
	DryRun        bool          // --dry-run
	New           bool          // --new: a new job even if this input has one
	AllowUnknown  bool          // --allow-unknown-model
	Strict        bool          // --strict
	PollInterval  time.Duration // --poll-interval
	Timeout       time.Duration // --timeout (with --wait)
	TimeScale     float64       // --time-scale
	Format        string        // --format: table (the job id) or json (the job document)

	// MaxRequests/MaxBytes lower the shard limits (tests only).
	MaxRequests int
	MaxBytes    int64
	// Hooks inject crashes (tests only).
	Hooks batch.Hooks
}

const batchSubmitLong = `Validate a request file, split it into batch-sized shards, upload each
shard (Files API, purpose "batch") and create its batch (completion window
24h), keeping each model's queue under its enqueued-token limit. Prints the
job id on stdout once every batch has left "validating"; with --format json
(--json) the job document instead, as 'oairl batch status --json' prints
it: schema_version (1), id, state_file, input_sha256, endpoint, requests,
rejected, shards[] (with --dry-run: the plan, shards without batch ids).

Validation: the same checks as 'oairl count', and a model that is not in
the registry is an error here ("did you mean ...?"; a batch for a
mistyped model fails only after the upload and validation):
--allow-unknown-model submits it anyway, --models FILE adds models. Any
invalid line stops the submit with exit 3 before anything is uploaded; --skip-invalid FILE writes
the invalid lines to FILE and submits the rest. What is uploaded is a
normalised copy (no BOM, LF line ends, no blank lines, no trailing
whitespace); --strict refuses files that need it (and any other warning).

Splitting: each shard holds at most 50,000 requests and 200 MB, one
endpoint and one model, and no more enqueued tokens (prompt + output budget
× n) than the model's enqueued-token limit: --enqueued-limit TOKENS, else
the published "batch queue limit" of --tier (env OAIRL_TIER). Limits:
developers.openai.com/api/docs/guides/batch.

Queueing: a shard is created only when this job's queued tokens for its
model plus its own fit the limit; otherwise it waits for earlier shards to
finish, and submit keeps running until it could create it (Ctrl-C saves
the state; 'oairl batch wait JOB' goes on submitting). A batch that fails
with token_limit_exceeded (other batches hold the queue) is resubmitted
after a backoff of 1 min, doubling up to 30 min; it is never reported as
lost.

Idempotent: the job id comes from the input's SHA-256. Running the same
submit again resumes the job; after a crash, files and batches already
created are found by name and metadata (oairl_job, oairl_shard) and reused,
never created twice. If no batch of the job has run yet and the split
changed (another --enqueued-limit or --tier), the job is re-split; a
shard over the limit is never created (in a job whose batches already ran
it is marked failed and its requests go to 'batch results --failed'). A job
submitted to another server (base URL) is not resumed: a new job
(JOB-2, ...) starts. A finished or cancelled job is not submitted again
unless --new is given. The input "-" is standard input.

Exit codes: 0 submitted (with --wait: all requests succeeded), 7 with
--wait when some requests failed, 8 with --wait --timeout when batches are
still running, 3 invalid input (nothing uploaded), 4 auth, 5 quota, 6 the
enqueued-token limit cannot be met, 130 interrupted (state saved: rerun).`

func newBatchSubmitCmd(f *Factory, runF func(*BatchSubmitOptions) error) *cobra.Command {
	opts := &BatchSubmitOptions{batchDeps: newBatchDeps(f), Registry: f.Registry}
	c := &cobra.Command{
		Use:   "submit FILE... [flags]",
		Short: "Validate, split and submit a request file to the Batch API; prints a job id",
		Long:  batchSubmitLong,
		Example: `  oairl batch submit requests.jsonl --tier 1
  oairl batch submit requests.jsonl --enqueued-limit 2000000 --wait
  oairl batch submit requests.jsonl --dry-run               # show the shards, upload nothing
  oairl batch submit requests.jsonl --skip-invalid rejected.jsonl --metadata team=search`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Files = args
			if opts.Tier == "" && opts.EnqueuedLimit == 0 {
				opts.Tier = opts.Getenv("OAIRL_TIER")
			}
			if opts.Tier != "" {
				t, ok := normalizeTier(strings.TrimSpace(opts.Tier))
				if !ok {
					return FlagErrorf("invalid --tier %q: valid tiers are free, 1, 2, 3, 4, 5, project (limits pulled by 'oairl limits pull')", opts.Tier)
				}
				opts.Tier = t
			}
			if err := usePulledLimits(f, &opts.Tier, opts.EnqueuedLimit > 0); err != nil {
				return err
			}
			if c.Flags().Changed("tier") && c.Flags().Changed("enqueued-limit") {
				return FlagErrorf("--tier and --enqueued-limit cannot be combined")
			}
			if opts.EnqueuedLimit < 0 || opts.AssumeOutput < 0 {
				return FlagErrorf("--enqueued-limit and --assume-output must not be negative")
			}
			if opts.New && opts.State != "" {
				return FlagErrorf("--new and --state cannot be combined: give another --state FILE for a new job")
			}
			if opts.Timeout > 0 && !opts.Wait {
				return FlagErrorf("--timeout needs --wait")
			}
			if opts.PollInterval <= 0 {
				return FlagErrorf("--poll-interval must be positive")
			}
			if _, err := parseMetadata(opts.Metadata); err != nil {
				return &FlagError{Err: err}
			}
			if opts.Endpoint != "" && !strings.HasPrefix(opts.Endpoint, "/v1/") {
				return FlagErrorf("--endpoint must be a path such as /v1/chat/completions")
			}
			if opts.TimeScale > 0 && opts.TimeScale != 1 {
				opts.Clock = clock.Scaled(opts.TimeScale)
			}
			if err := opts.Budget.resolve(f); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return batchSubmitRun(c, opts)
		},
	}
	fl := c.Flags()
	fl.StringVar(&opts.Endpoint, "endpoint", "", "the batch endpoint every line must use, e.g. /v1/chat/completions (default: the first line's url)")
	fl.StringVar(&opts.Model, "model", "", "model for bare lines whose body names none")
	fl.Int64Var(&opts.AssumeOutput, "assume-output", 1024, "output budget assumed for a line that sets none (tokens)")
	fl.StringVar(&opts.Tier, "tier", "", "usage tier whose published enqueued-token (batch queue) limits apply: free, 1-5 (env OAIRL_TIER)")
	_ = c.RegisterFlagCompletionFunc("tier", noFiles(tierValues...))
	_ = c.RegisterFlagCompletionFunc("endpoint", completeEndpoints)
	_ = c.RegisterFlagCompletionFunc("model", completeModels(f))
	fl.Int64Var(&opts.EnqueuedLimit, "enqueued-limit", 0, "enqueued-token limit per model (tokens), instead of --tier")
	fl.BoolVar(&opts.Wait, "wait", false, "wait until every batch is done (see 'oairl batch wait')")
	fl.StringArrayVar(&opts.Metadata, "metadata", nil, "metadata key=value added to every batch (repeatable; at most 12 of your own)")
	fl.StringVar(&opts.SkipInvalid, "skip-invalid", "", "write invalid lines to this file and submit the valid ones")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "validate and show the shards; upload nothing")
	fl.BoolVar(&opts.New, "new", false, "start a new job even if this input was submitted before (finished, cancelled or running)")
	fl.BoolVar(&opts.AllowUnknown, "allow-unknown-model", false, "submit lines whose model is not in the registry (by default an error: such a batch fails after upload)")
	fl.BoolVar(&opts.Strict, "strict", false, "refuse the file on warnings too (BOM, CRLF, blank lines, unknown model, ...)")
	fl.DurationVar(&opts.PollInterval, "poll-interval", batch.DefaultPollInterval, "first wait between polls; it grows while nothing changes")
	fl.DurationVar(&opts.Timeout, "timeout", 0, "with --wait: give up waiting after this long (exit 8; the batches keep running)")
	fl.Float64Var(&opts.TimeScale, "time-scale", 1, "run the clock K times faster (only against 'oairl sim --time-scale K')")
	addFormatFlags(f, c, &opts.Format, "output: table (the job id; the plan with --dry-run) or json (the job document, as 'batch status --json')", "table", "json")
	addStateFlag(c, &opts.batchDeps)
	addBudgetFlags(c.Flags(), &opts.Budget)
	return c
}

// parseMetadata parses k=v pairs; oairl's own keys are reserved, and the
// API allows 16 pairs of which oairl uses 4.
func parseMetadata(kvs []string) (map[string]string, error) {
	md := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--metadata %q: want key=value", kv)
		}
		if strings.HasPrefix(k, "oairl_") {
			return nil, fmt.Errorf("--metadata %q: keys starting with oairl_ are oairl's own", kv)
		}
		if len(k) > 64 || len(v) > 512 {
			return nil, fmt.Errorf("--metadata %q: keys are at most 64 characters and values 512", kv)
		}
		md[k] = v
	}
	if len(md) > 12 {
		return nil, fmt.Errorf("--metadata: at most 12 pairs (the API allows 16 and oairl uses 4)")
	}
	return md, nil
}

func batchSubmitRun(c *cobra.Command, opts *BatchSubmitOptions) error {
	ctx := c.Context()
	ios := opts.IO
	// No key, no state: fail before anything is written (exit 4, like
	// 'oairl run' and 'oairl diagnose').
	if !opts.DryRun && opts.HasKey != nil && !opts.HasKey() {
		return exitcode.Errorf(exitcode.Auth, "no API key: set OPENAI_API_KEY (any value works against oairl sim); nothing was submitted")
	}
	reg, err := opts.Registry()
	if err != nil {
		return err
	}
	md, _ := parseMetadata(opts.Metadata)
	counter := tokens.NewCounter(tokens.Options{Registry: reg, AssumeOutput: opts.AssumeOutput})
	queueLimit := func(model string) int64 {
		if opts.EnqueuedLimit > 0 {
			return opts.EnqueuedLimit
		}
		if opts.Tier == "" {
			return 0
		}
		r := reg.Lookup(model)
		if r.Model == nil {
			return 0
		}
		l, _ := r.Model.TierLimits(opts.Tier)
		return l.BatchQueueTokens
	}
	var sources []input.Source
	for _, f := range opts.Files {
		sources = append(sources, input.Source{Name: f})
	}
	po := batch.PrepareOptions{
		Sources: sources, Scan: input.Options{Registry: reg, Counter: counter, Endpoint: opts.Endpoint, Model: opts.Model, Stdin: ios.In},
		BaseURL: opts.baseURL(), New: opts.New,
		StatePath: opts.State, StateDir: opts.stateDir(), QueueLimit: queueLimit,
		MaxRequests: opts.MaxRequests, MaxBytes: opts.MaxBytes,
		Strict: opts.Strict, Metadata: md, DryRun: opts.DryRun, Now: opts.Clock.Now(),
		AllowUnknownModel: opts.AllowUnknown,
	}
	var errorsShown, warnsShown, problems int
	po.Problem = func(p input.Problem) {
		problems++
		// Errors always; warnings unless --quiet; notes (estimates) never:
		// 'oairl count' shows them. At most 20 of each.
		switch {
		case p.Severity == tokens.Error && errorsShown < 20:
			errorsShown++
		case p.Severity == tokens.Warning && !ios.Quiet && warnsShown < 20:
			warnsShown++
		default:
			if p.Severity == tokens.Note {
				problems--
			}
			return
		}
		fmt.Fprintln(ios.ErrOut, formatProblem(p))
	}
	var rejected *batch.AtomicFile
	if opts.SkipInvalid != "" {
		if rejected, err = batch.CreateAtomic(opts.SkipInvalid); err != nil {
			return err
		}
		defer rejected.Abort()
		po.Rejected = rejected
	}
	limitMemory()
	res, err := batch.Prepare(ctx, po)
	if shown := errorsShown + warnsShown; problems > shown && (err != nil || !ios.Quiet) {
		fmt.Fprintf(ios.ErrOut, "... and %d more problems ('oairl count %s' lists them all)\n", problems-shown, strings.Join(opts.Files, " "))
	}
	if err != nil {
		return err
	}
	if rejected != nil {
		if err := rejected.Commit(); err != nil {
			return err
		}
		if res.Invalid > 0 {
			fmt.Fprintf(ios.ErrOut, "skipped %d invalid lines; they are in %s\n", res.Invalid, opts.SkipInvalid)
		} else {
			os.Remove(opts.SkipInvalid)
		}
	}
	job := res.Job
	if opts.DryRun {
		return printPlan(opts, job)
	}
	log := opts.logWriter()
	if res.Resumed && (job.Done() || job.Cancelled()) {
		return finishedJob(opts, job)
	}
	if log != nil {
		if p := res.Previous; p != nil {
			why := "--new"
			if p.BaseURL != "" && p.BaseURL != job.BaseURL {
				why = "it was submitted to " + p.BaseURL + ", not " + job.BaseURL
			}
			fmt.Fprintf(log, "not resuming %s (%s): starting job %s\n", p.ID, why, job.ID)
		}
		verb := "created"
		switch {
		case res.Replanned:
			verb = "re-split (no batch had run; the limits changed)"
		case res.Resumed:
			verb = "resuming"
		}
		fmt.Fprintf(log, "%s %s: %s in %s (state: %s)\n", verb, job.ID, humanize.Count(int64(job.Requests), "request", "requests"), plural(len(job.Shards), "shard"), job.Path())
		for _, p := range batch.PlanOf(job) {
			limit := "no enqueued-token limit known (give --tier or --enqueued-limit)"
			if p.QueueLimit > 0 {
				limit = "enqueued-token limit " + input.Thousands(p.QueueLimit)
			}
			fmt.Fprintf(log, "  %s: %s, %s, ~%s tokens; %s\n", modelOrNone(p.Model), plural(p.Shards, "shard"), humanize.Count(int64(p.Requests), "request", "requests"), input.Thousands(p.Tokens), limit)
		}
	}
	client, err := opts.client()
	if err != nil {
		return err
	}
	until := batch.UntilSubmitted
	if opts.Wait {
		until = batch.UntilDone
	}
	// "submitted OK" only once every batch has left validating: a batch
	// can still fail there (token_limit_exceeded, invalid lines; B10).
	onSubmitted := func() {
		if log == nil {
			return
		}
		var ids, failed []string
		for _, s := range job.Shards {
			if s.BatchID == "" {
				continue
			}
			ids = append(ids, s.BatchID)
			if s.Status == batch.StatusFailed {
				failed = append(failed, s.BatchID)
			}
		}
		if len(failed) > 0 {
			fmt.Fprintf(log, "submitted %s, but %d failed validation: %s\n", plural(len(ids), "batch"), len(failed), strings.Join(failed, " "))
			return
		}
		fmt.Fprintf(log, "submitted OK: %s (%s)\n", plural(len(ids), "batch"), strings.Join(ids, " "))
	}
	if err := opts.waitJob(ctx, job, client, until, opts.PollInterval, opts.Timeout, opts.Hooks, onSubmitted); err != nil {
		if exitcode.Of(err) == exitcode.Pending || exitcode.Of(err) == exitcode.Interrupted {
			if perr := printJob(ios.Out, opts.Format, job); perr != nil {
				return perr
			}
		}
		return opts.timeoutErr(err, job, opts.Timeout)
	}
	if err := printJob(ios.Out, opts.Format, job); err != nil {
		return err
	}
	if !opts.Wait {
		for _, s := range job.Shards {
			if s.Status == batch.StatusFailed {
				// A batch the server rejected in validation: say why, and
				// exit 7 like wait would.
				_, summary := jobOutcome(job)
				if log != nil {
					fmt.Fprintln(log, summary)
				}
				return exitcode.New(exitcode.Partial, nil)
			}
		}
		if log != nil {
			fmt.Fprintf(log, "next: oairl batch wait %s && oairl batch results %s -o results.jsonl --failed retry.jsonl\n", job.ID, job.ID)
		}
		return nil
	}
	code, summary := jobOutcome(job)
	if log != nil {
		fmt.Fprintln(log, summary)
		fmt.Fprintf(log, "next: oairl batch results %s -o results.jsonl --failed retry.jsonl\n", job.ID)
	}
	if code != 0 {
		return exitcode.New(code, nil)
	}
	return nil
}

// finishedJob handles a rerun of submit on a job that is finished or was
// cancelled: nothing is submitted. A cancelled job exits 1; a finished one
// prints its id and exits like 'batch wait' would (0, or 7 with failures).
func finishedJob(opts *BatchSubmitOptions, job *batch.Job) error {
	if job.Cancelled() {
		n := 0
		for _, s := range job.Shards {
			if s.Status == batch.StatusCancelled || s.Status == batch.StatusCancelling {
				n++
			}
		}
		return exitcode.Errorf(exitcode.Failure, "job %s was cancelled (%d of %s cancelled); nothing was submitted: pass --new to submit the input again, or get what ran with 'oairl batch results %s -o results.jsonl --failed retry.jsonl'",
			job.ID, n, plural(len(job.Shards), "shard"), job.ID)
	}
	if err := printJob(opts.IO.Out, opts.Format, job); err != nil {
		return err
	}
	code, summary := jobOutcome(job)
	if log := opts.logWriter(); log != nil {
		fmt.Fprintf(log, "job %s already completed at %s; nothing was submitted\n%s\nresults: oairl batch results %s -o results.jsonl --failed retry.jsonl; pass --new to submit again\n",
			job.ID, job.UpdatedAt.UTC().Format(time.RFC3339), summary, job.ID)
	}
	if code != 0 {
		return exitcode.New(code, nil)
	}
	return nil
}

func modelOrNone(m string) string {
	if m == "" {
		return "(no model)"
	}
	return m
}

// printPlan prints the shards of a --dry-run on stdout: a table on a TTY,
// tab-separated rows otherwise (shard, model, requests, bytes, tokens,
// queue_limit).
func printPlan(opts *BatchSubmitOptions, j *batch.Job) error {
	ios := opts.IO
	if opts.Format == "json" {
		return writeJSON(ios.Out, batchStatusDoc(j))
	}
	if !ios.IsStdoutTTY() {
		for _, s := range j.Shards {
			fmt.Fprintf(ios.Out, "%d\t%s\t%s\t%d\t%d\t%d\t%d\n", s.Index, s.Endpoint, s.Model, s.Requests, s.Bytes, s.Tokens, j.QueueLimits[s.Model])
		}
		return nil
	}
	t := batchTable(ios.Out, []string{"SHARD", "ENDPOINT", "MODEL", "REQUESTS", "BYTES", "TOKENS", "QUEUE LIMIT"})
	for _, s := range j.Shards {
		lim := "—"
		if l := j.QueueLimits[s.Model]; l > 0 {
			lim = input.Thousands(l)
		}
		t.Append([]string{strconv.Itoa(s.Index), s.Endpoint, modelOrNone(s.Model), input.Thousands(int64(s.Requests)), input.Thousands(s.Bytes), input.Thousands(s.Tokens), lim})
	}
	if err := t.Render(); err != nil {
		return err
	}
	fmt.Fprintf(ios.Out, "\n%s in %s; dry run: nothing uploaded.\n", humanize.Count(int64(j.Requests), "request", "requests"), plural(len(j.Shards), "shard"))
	return nil
}

// printJob prints a job on stdout: its id (table format), or its document
// (json: the same as 'oairl batch status --json').
func printJob(w io.Writer, format string, job *batch.Job) error {
	if format == "json" {
		return writeJSON(w, batchStatusDoc(job))
	}
	_, err := fmt.Fprintln(w, job.ID)
	return err
}

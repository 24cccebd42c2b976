package cmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/batch"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
)

// BatchWaitOptions holds the dependencies and flag values of 'oairl batch
// wait'.
type BatchWaitOptions struct {
	batchDeps
	Ref          string        // JOB or BATCH_ID ("" = the latest job)
	Timeout      time.Duration // --timeout
	PollInterval time.Duration // --poll-interval
	TimeScale    float64       // --time-scale
	Format       string        // --format: table (nothing on stdout) or json (the job document)
}

const batchWaitLong = `Wait until every batch of a job (or one batch) is done, submitting any
shard still waiting for room in the enqueued-token queue and resubmitting
shards that failed with token_limit_exceeded.

Polls with backoff: the first wait is --poll-interval, growing by half
while nothing changes, up to 8 times --poll-interval (at most 2 min by
default). Transient API errors (network, 5xx, 429) are retried.

Progress: on a terminal, a bar of requests done (completed + failed) across
all shards, on stderr; otherwise one line per status change, e.g.
  batch_abc in_progress 120/500

--format json (--json): at the end (also on a --timeout), the job
document of 'oairl batch status --json' on stdout: schema_version (1), id,
state_file, input_sha256, endpoint, requests, rejected, shards[].

Exit codes: 0 every batch completed and every request succeeded, 7 some
requests or batches failed, expired or were cancelled ('oairl batch results'
writes them to --failed), 8 --timeout passed first (the batches keep
running; wait again), 4 auth, 5 quota, 130 interrupted.`

func newBatchWaitCmd(f *Factory, runF func(*BatchWaitOptions) error) *cobra.Command {
	opts := &BatchWaitOptions{batchDeps: newBatchDeps(f)}
	c := &cobra.Command{
		Use:     "wait [JOB|BATCH_ID] [flags]",
		Short:   "Wait until a job's batches are done (exit 0 all succeeded, 7 some failed, 8 timeout)",
		Long:    batchWaitLong,
		Example: "  oairl batch wait job_3f2a9c0e1b7d4a65 --timeout 2h\n  oairl batch wait batch_abc123 --poll-interval 1m",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Ref = args[0]
			}
			if opts.PollInterval <= 0 || opts.Timeout < 0 {
				return FlagErrorf("--poll-interval must be positive and --timeout not negative")
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
			return batchWaitRun(c, opts)
		},
	}
	fl := c.Flags()
	fl.DurationVar(&opts.Timeout, "timeout", 0, "give up after this long (exit 8); 0 waits until done")
	fl.DurationVar(&opts.PollInterval, "poll-interval", batch.DefaultPollInterval, "first wait between polls; it grows while nothing changes")
	fl.Float64Var(&opts.TimeScale, "time-scale", 1, "run the clock K times faster (only against 'oairl sim --time-scale K')")
	addFormatFlags(f, c, &opts.Format, "output: table (progress on stderr only) or json (the job document at the end, as 'batch status --json')", "table", "json")
	addStateFlag(c, &opts.batchDeps)
	addBudgetFlags(c.Flags(), &opts.Budget)
	c.ValidArgsFunction = completeJobRefs(&opts.batchDeps)
	return c
}

func batchWaitRun(c *cobra.Command, opts *BatchWaitOptions) error {
	ctx := c.Context()
	job, client, err := opts.resolveJob(ctx, opts.Ref)
	if err != nil {
		return err
	}
	err = opts.waitJob(ctx, job, client, batch.UntilDone, opts.PollInterval, opts.Timeout, batch.Hooks{}, nil)
	if opts.Format == "json" && (err == nil || exitcode.Of(err) == exitcode.Pending || exitcode.Of(err) == exitcode.Interrupted) {
		if perr := writeJSON(opts.IO.Out, batchStatusDoc(job)); perr != nil {
			return perr
		}
	}
	if err != nil {
		if exitcode.Of(err) == exitcode.Pending && !opts.IO.Quiet {
			_, summary := jobOutcome(job)
			fmt.Fprintln(opts.IO.ErrOut, summary)
		}
		return opts.timeoutErr(err, job, opts.Timeout)
	}
	code, summary := jobOutcome(job)
	if !opts.IO.Quiet {
		fmt.Fprintln(opts.IO.ErrOut, summary)
		if job.Path() != "" {
			fmt.Fprintf(opts.IO.ErrOut, "next: oairl batch results %s -o results.jsonl --failed retry.jsonl\n", job.ID)
		}
	}
	if code != 0 {
		return exitcode.New(code, nil)
	}
	return nil
}

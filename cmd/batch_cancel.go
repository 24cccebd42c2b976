package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/batch"
)

// BatchCancelOptions holds the dependencies and flag values of 'oairl
// batch cancel'.
type BatchCancelOptions struct {
	batchDeps
	Ref    string // JOB or BATCH_ID
	Format string // --format: table or json
}

func newBatchCancelCmd(f *Factory, runF func(*BatchCancelOptions) error) *cobra.Command {
	opts := &BatchCancelOptions{batchDeps: newBatchDeps(f)}
	c := &cobra.Command{
		Use:   "cancel JOB|BATCH_ID",
		Short: "Cancel a job's batches (and keep its unsubmitted shards from being submitted)",
		Long: `Cancel every batch of a job that is not finished yet, and mark its shards
that were never submitted as cancelled. A batch stays "cancelling" for up
to 10 minutes; requests it finished are in its output ('oairl batch
results'), the rest come back as batch_cancelled in --failed.

Prints the ids of the batches asked to cancel, one per line; with
--format json (--json) one document:
  {"schema_version": 1, "id": JOB, "batch_ids": [BATCH_ID, ...]}`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Ref = args[0]
			if runF != nil {
				return runF(opts)
			}
			return batchCancelRun(c, opts)
		},
	}
	addFormatFlags(f, c, &opts.Format, "output: table (batch ids, one per line) or json", "table", "json")
	addStateFlag(c, &opts.batchDeps)
	c.ValidArgsFunction = completeJobRefs(&opts.batchDeps)
	return c
}

// batchCancelJSON is the --format json document of 'batch cancel'.
type batchCancelJSON struct {
	ID       string   `json:"id"`
	BatchIDs []string `json:"batch_ids"`
}

func batchCancelRun(c *cobra.Command, opts *BatchCancelOptions) error {
	ctx := c.Context()
	job, client, err := opts.resolveJob(ctx, opts.Ref)
	if err != nil {
		return err
	}
	before := map[int]string{}
	for _, s := range job.Shards {
		before[s.Index] = s.Status
	}
	ids, err := batch.Cancel(ctx, job, client, opts.Clock.Now(), opts.logWriter())
	if opts.Format == "json" {
		if ids == nil {
			ids = []string{}
		}
		if perr := writeJSON(opts.IO.Out, batchCancelJSON{ID: job.ID, BatchIDs: ids}); perr != nil {
			return perr
		}
	} else {
		for _, id := range ids {
			fmt.Fprintln(opts.IO.Out, id)
		}
	}
	if log := opts.logWriter(); log != nil {
		var done, unsent []string
		for _, s := range job.Shards {
			switch {
			case batch.Terminal(before[s.Index]):
				done = append(done, batch.Describe(s))
			case s.BatchID == "":
				unsent = append(unsent, fmt.Sprintf("shard %d", s.Index))
			}
		}
		fmt.Fprintf(log, "%s: asked to cancel %s", job.ID, plural(len(ids), "batch"))
		if len(ids) > 0 {
			fmt.Fprintf(log, " (%s)", strings.Join(ids, " "))
		}
		if len(unsent) > 0 {
			fmt.Fprintf(log, "; %d never submitted, marked cancelled", len(unsent))
		}
		if len(done) > 0 {
			fmt.Fprintf(log, "; already terminal: %s", strings.Join(done, ", "))
		}
		fmt.Fprintln(log)
	}
	return err
}

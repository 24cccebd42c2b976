package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/batch"
	"github.com/oairl/oairl/internal/input"
)

// BatchListOptions holds the dependencies and flag values of 'oairl batch
// list'.
type BatchListOptions struct {
	batchDeps
	Limit  int    // --limit
	Format string // table or json
}

func newBatchListCmd(f *Factory, runF func(*BatchListOptions) error) *cobra.Command {
	opts := &BatchListOptions{batchDeps: newBatchDeps(f)}
	c := &cobra.Command{
		Use:   "list [flags]",
		Short: "List recent batches from the API, with the local jobs they belong to",
		Long: `List the organization's most recent batches (newest first), joined with the
local jobs (the job column comes from the oairl_job metadata, or from a
local state file that holds the batch).

Pages of GET /batches are read with after/limit, never more than 20 pages.

Output: a table on a terminal; piped, tab-separated rows: batch_id, status,
endpoint, completed, failed, total, created_at (RFC 3339), job, shard.
--format json (--json): {schema_version: 1, data: [{id, status, endpoint,
request_counts{total, completed, failed}, created_at, expires_at,
input_file_id, output_file_id, error_file_id, job, shard, metadata}]}.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Limit < 1 || opts.Limit > 2000 {
				return FlagErrorf("--limit must be between 1 and 2000")
			}
			if runF != nil {
				return runF(opts)
			}
			return batchListRun(c, opts)
		},
	}
	fl := c.Flags()
	fl.IntVar(&opts.Limit, "limit", 20, "how many batches to list")
	addFormatFlags(f, c, &opts.Format, "output format: table (tab-separated when piped), json", "table", "json")
	addStateFlag(c, &opts.batchDeps)
	return c
}

type batchListJSON struct {
	ID            string              `json:"id"`
	Status        string              `json:"status"`
	Endpoint      string              `json:"endpoint"`
	RequestCounts batch.RequestCounts `json:"request_counts"`
	CreatedAt     *string             `json:"created_at"`
	ExpiresAt     *string             `json:"expires_at"`
	InputFileID   string              `json:"input_file_id"`
	OutputFileID  string              `json:"output_file_id"`
	ErrorFileID   string              `json:"error_file_id"`
	Job           string              `json:"job"`
	Shard         string              `json:"shard"`
	Metadata      map[string]string   `json:"metadata"`
}

// batchListDoc is the --format json document: {schema_version, data[]}.
type batchListDoc struct {
	Data []batchListJSON `json:"data"`
}

func batchListRun(c *cobra.Command, opts *BatchListOptions) error {
	ctx := c.Context()
	client, err := opts.client()
	if err != nil {
		return err
	}
	bs, err := batch.ListBatches(ctx, client, opts.Limit, opts.Clock.Now())
	if err != nil {
		return err
	}
	local := map[string]string{} // batch id → job id
	if opts.State != "" {
		if j, err := batch.LoadJob(opts.State); err == nil {
			for _, s := range j.Shards {
				local[s.BatchID] = j.ID
			}
		}
	} else if jobs, err := batch.ListJobs(opts.stateDir()); err == nil {
		for _, j := range jobs {
			for _, s := range j.Shards {
				local[s.BatchID] = j.ID
				for _, f := range s.FailedBatches {
					local[f] = j.ID
				}
			}
		}
	}
	rows := make([]batchListJSON, 0, len(bs))
	for _, b := range bs {
		job := b.Metadata[batch.MetaJob]
		if job == "" {
			job = local[b.ID]
		}
		md := b.Metadata
		if md == nil {
			md = map[string]string{}
		}
		rows = append(rows, batchListJSON{ID: b.ID, Status: b.Status, Endpoint: b.Endpoint, RequestCounts: b.RequestCounts,
			CreatedAt: rfc3339(b.CreatedAt), ExpiresAt: rfc3339(b.ExpiresAt), InputFileID: b.InputFileID,
			OutputFileID: b.OutputFileID, ErrorFileID: b.ErrorFileID, Job: job, Shard: b.Metadata[batch.MetaShard], Metadata: md})
	}
	ios := opts.IO
	if opts.Format == "json" {
		return writeJSON(ios.Out, batchListDoc{Data: rows})
	}
	if !ios.IsStdoutTTY() {
		for i, r := range rows {
			fmt.Fprintf(ios.Out, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", r.ID, r.Status, r.Endpoint, r.RequestCounts.Completed,
				r.RequestCounts.Failed, r.RequestCounts.Total, batchTime(bs[i].CreatedAt, false), r.Job, r.Shard)
		}
		return nil
	}
	t := batchTable(ios.Out, []string{"BATCH", "STATUS", "ENDPOINT", "DONE", "FAILED", "TOTAL", "CREATED", "JOB", "SHARD"})
	for i, r := range rows {
		t.Append([]string{r.ID, r.Status, r.Endpoint, input.Thousands(int64(r.RequestCounts.Completed)), input.Thousands(int64(r.RequestCounts.Failed)),
			input.Thousands(int64(r.RequestCounts.Total)), batchTime(bs[i].CreatedAt, true), r.Job, r.Shard})
	}
	return t.Render()
}

package cmd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/batch"
	"github.com/oairl/oairl/internal/httpx"
	"github.com/oairl/oairl/internal/input"
)

// Shell completion of flag values and arguments ('oairl completion bash|
// zsh|fish|powershell' prints the script). Everything here is local and
// fast, except batch ids from the API, which are asked only when a key is
// set, once, without retries and within completionTimeout.

// completionTimeout bounds the one API call a completion may make.
const completionTimeout = 1500 * time.Millisecond

// tierValues are the usage tiers --tier accepts.
var tierValues = []string{"free", "1", "2", "3", "4", "5"}

func noFiles(values ...string) cobra.CompletionFunc {
	return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
}

func completeEndpoints(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	for _, e := range input.Endpoints {
		out = append(out, e.Path)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeModels completes model ids from the registry (built in, plus
// --models / OAIRL_MODELS).
func completeModels(f *Factory) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		reg, err := f.Registry()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, m := range reg.Models() {
			if strings.HasPrefix(m.ID, prefix) {
				out = append(out, m.ID)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeJobRefs completes the JOB|BATCH_ID argument: the jobs under the
// state directory (newest first, described by input size and status), their
// batch ids, and with a key set the account's recent batches from the API.
func completeJobRefs(d *batchDeps) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		seen := map[string]bool{}
		var out []cobra.Completion
		add := func(id, desc string) {
			if id == "" || seen[id] || !strings.HasPrefix(id, prefix) {
				return
			}
			seen[id] = true
			out = append(out, cobra.CompletionWithDesc(id, desc))
		}
		jobs, _ := batch.ListJobs(d.stateDir())
		for _, j := range jobs {
			add(j.ID, fmt.Sprintf("%d requests, %d shards, created %s", j.Requests, len(j.Shards), j.CreatedAt.UTC().Format(time.RFC3339)))
		}
		if !strings.HasPrefix(prefix, "job_") {
			for _, j := range jobs {
				for _, s := range j.Shards {
					add(s.BatchID, fmt.Sprintf("%s shard %d, %s", j.ID, s.Index, s.Status))
				}
			}
			if d.HasKey != nil && d.HasKey() {
				for _, b := range recentBatches(c.Context(), d) {
					add(b.ID, fmt.Sprintf("%s, %s", b.Status, b.Endpoint))
				}
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// recentBatches asks the API for one page of batches: once, no retries,
// within completionTimeout; any failure gives none.
func recentBatches(ctx context.Context, d *batchDeps) []batch.Batch {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(httpx.WithoutRetry(ctx), completionTimeout)
	defer cancel()
	cl, err := d.client()
	if err != nil {
		return nil
	}
	p, err := cl.ListBatches(ctx, "", 20)
	if err != nil {
		return nil
	}
	return p.Data
}

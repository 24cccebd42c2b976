package cmd

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/batch"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/humanize"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/models"
)

// BatchResultsOptions holds the dependencies and flag values of 'oairl
// batch results'.
type BatchResultsOptions struct {
	batchDeps
	Registry func() (*models.Registry, error)

	Ref       string   // JOB or BATCH_ID ("" = the latest job)
	Output    string   // -o
	Failed    string   // --failed
	Unmatched string   // --unmatched
	FromFiles []string // --from-file (offline)
	Errors    []string // --errors (offline)
	Input     string   // --input
	Format    string   // --format: "table" (summary on stderr) or "json" (on stdout)
}

const batchResultsLong = `Download the output and error files of every batch of a job and write one
results file in the Batch API output format, with exactly one line per
input request, in input order:

  {"id": "batch_req_...", "custom_id": "...",
   "response": {"status_code": 200, "request_id": "...", "body": {...}} | null,
   "error": {"code": "...", "message": "..."} | null}

Lines are joined to the input strictly on custom_id (output files are not
in input order). A request succeeded only if error is null and
200 <= response.status_code < 300. A request with no output line (its
batch expired or was cancelled first) gets an error line with code
batch_expired, batch_cancelled, batch_failed or missing_result.

--failed FILE receives the original input line of every request that did
not succeed, ready to resubmit ('oairl batch submit FILE' or 'oairl run
FILE'). Output lines whose custom_id is in no input are never dropped: they
are reported and written to --unmatched (default OUTPUT.unmatched.jsonl).
Files are written atomically: an interrupted run leaves none half-written.

Offline: --from-file OUT.jsonl [--errors ERR.jsonl] --input IN.jsonl joins
saved files without any API call. For a batch no local job knows, give
--input (the submitted requests).

Summary (stderr; --json: stdout): requests, succeeded, failed by error
code, tokens used (usage) and their cost at the Batch API price.
JSON fields (--format json, or --json): schema_version (1), requests, succeeded, failed, failed_by_code{code: n},
synthesized, unmatched, unmatched_ids[], duplicates, usage[{model,
requests, prompt_tokens, completion_tokens, cost_usd}], prompt_tokens,
completion_tokens, cost_usd.

Exit codes: 0 every request succeeded, 7 some failed (see --failed), 8 the
job is still running ('oairl batch wait'), 3 an output file is unreadable.`

func newBatchResultsCmd(f *Factory, runF func(*BatchResultsOptions) error) *cobra.Command {
	opts := &BatchResultsOptions{batchDeps: newBatchDeps(f), Registry: f.Registry}
	var order string
	c := &cobra.Command{
		Use:   "results [JOB|BATCH_ID] -o FILE [flags]",
		Short: "Merge a job's output and error files into one results file in input order",
		Long:  batchResultsLong,
		Example: `  oairl batch results job_3f2a9c0e1b7d4a65 -o results.jsonl --failed retry.jsonl
  oairl batch results --from-file out.jsonl --errors err.jsonl --input requests.jsonl -o results.jsonl`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Ref = args[0]
			}
			if opts.Output == "" {
				return FlagErrorf("-o/--output FILE is required")
			}
			if order != "input" {
				return FlagErrorf("--order: only \"input\" is supported")
			}
			// A directory is refused before anything is downloaded: the
			// rename at the end would fail after all the work.
			for _, o := range []struct{ flag, path string }{{"-o", opts.Output}, {"--failed", opts.Failed}, {"--unmatched", opts.Unmatched}} {
				if o.path == "" {
					continue
				}
				if fi, err := os.Stat(o.path); (err == nil && fi.IsDir()) || strings.HasSuffix(o.path, "/") || strings.HasSuffix(o.path, string(os.PathSeparator)) {
					return FlagErrorf("%s %s is a directory: give a file, e.g. %s", o.flag, o.path, filepath.Join(o.path, "results.jsonl"))
				}
			}
			if len(opts.FromFiles) > 0 {
				if opts.Ref != "" {
					return FlagErrorf("--from-file and a JOB or BATCH_ID cannot be combined")
				}
				if opts.Input == "" {
					return FlagErrorf("--from-file needs --input (the requests that were submitted)")
				}
			} else if len(opts.Errors) > 0 {
				return FlagErrorf("--errors needs --from-file")
			}
			for _, p := range []string{opts.Failed, opts.Unmatched} {
				if p != "" && p == opts.Output {
					return FlagErrorf("--failed and --unmatched must differ from -o")
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return batchResultsRun(c, opts)
		},
	}
	fl := c.Flags()
	fl.StringVarP(&opts.Output, "output", "o", "", "results file to write (Batch output format, input order)")
	fl.StringVar(&opts.Failed, "failed", "", "write the input lines of requests that did not succeed here")
	fl.StringVar(&opts.Unmatched, "unmatched", "", "where output lines with an unknown custom_id go (default OUTPUT.unmatched.jsonl)")
	fl.StringArrayVar(&opts.FromFiles, "from-file", nil, "offline: a saved output file (repeatable)")
	fl.StringArrayVar(&opts.Errors, "errors", nil, "offline: a saved error file (repeatable)")
	fl.StringVar(&opts.Input, "input", "", "the submitted request file (offline, or for a batch no local job knows)")
	fl.StringVar(&order, "order", "input", "output order: input (the only one; output files are unordered)")
	_ = c.RegisterFlagCompletionFunc("order", noFiles("input"))
	addFormatFlags(f, c, &opts.Format, "summary format: table (on stderr) or json (on stdout)", "table", "json")
	addStateFlag(c, &opts.batchDeps)
	c.ValidArgsFunction = completeJobRefs(&opts.batchDeps)
	return c
}

func batchResultsRun(c *cobra.Command, opts *BatchResultsOptions) error {
	ctx := c.Context()
	reg, err := opts.Registry()
	if err != nil {
		return err
	}
	ro := batch.ResultsOptions{Out: opts.Output, Failed: opts.Failed, Unmatched: opts.Unmatched, Registry: reg,
		Log: opts.logWriter(), Now: opts.Clock.Now()}
	if ro.Log == nil {
		ro.Log = opts.IO.ErrOut // unmatched ids and all-failed batches are warnings, shown even with --quiet
	}
	var sum batch.MergeSummary
	label := opts.Input
	if len(opts.FromFiles) > 0 {
		if err := outputsAreNotInputs(opts, append(append([]string{opts.Input}, opts.FromFiles...), opts.Errors...)); err != nil {
			return err
		}
		limitMemory()
		sum, err = batch.MergeFiles(append(append([]string{}, opts.FromFiles...), opts.Errors...), opts.Input, ro)
	} else {
		job, client, rerr := opts.resolveJob(ctx, opts.Ref)
		if rerr != nil {
			return rerr
		}
		label = job.ID
		if err := outputsAreNotInputs(opts, append(append([]string{}, job.Inputs...), opts.Input)); err != nil {
			return err
		}
		if job.Path() != "" {
			if err := batch.Refresh(ctx, job, client, opts.Clock.Now()); err != nil {
				return err
			}
		} else if opts.Input == "" {
			return FlagErrorf("%s is in no local job: give --input FILE (the requests it ran) to join its results", opts.Ref)
		}
		ro.Client = client
		var in batch.InputIter
		if job.Path() == "" || opts.Input != "" {
			fi, err := batch.OpenFileInput(opts.Input)
			if err != nil {
				return err
			}
			in = fi
		}
		limitMemory()
		sum, err = batch.Results(ctx, job, in, ro)
	}
	if err != nil {
		return err
	}
	ios := opts.IO
	if opts.Format == "json" {
		if sum.FailedByCode == nil {
			sum.FailedByCode = map[string]int{}
		}
		if sum.Usage == nil {
			sum.Usage = []*batch.ModelUsage{}
		}
		if err := writeJSON(ios.Out, sum); err != nil {
			return err
		}
	}
	if !ios.Quiet {
		fmt.Fprintln(ios.ErrOut, resultsSummary(label, sum, opts))
	}
	if sum.Failed > 0 {
		return exitcode.New(exitcode.Partial, nil)
	}
	return nil
}

func resultsSummary(label string, s batch.MergeSummary, opts *BatchResultsOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: %s succeeded, %s failed", label, humanize.Count(int64(s.Requests), "request", "requests"),
		input.Thousands(int64(s.Succeeded)), input.Thousands(int64(s.Failed)))
	if len(s.FailedByCode) > 0 {
		codes := make([]string, 0, len(s.FailedByCode))
		for c := range s.FailedByCode {
			codes = append(codes, c)
		}
		sort.Slice(codes, func(i, j int) bool {
			if s.FailedByCode[codes[i]] != s.FailedByCode[codes[j]] {
				return s.FailedByCode[codes[i]] > s.FailedByCode[codes[j]]
			}
			return codes[i] < codes[j]
		})
		var parts []string
		for _, c := range codes {
			parts = append(parts, fmt.Sprintf("%s: %d", c, s.FailedByCode[c]))
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, "\ntokens used: %s prompt + %s completion; cost at the Batch price: $%.4f",
		input.Thousands(s.PromptTokens), input.Thousands(s.CompletionTokens), s.CostUSD)
	fmt.Fprintf(&b, "\nresults: %s", opts.Output)
	if opts.Failed != "" && s.Failed > 0 {
		fmt.Fprintf(&b, "; failed requests' input lines: %s (resubmit: oairl batch submit %s)", opts.Failed, opts.Failed)
	}
	if s.Unmatched > 0 {
		fmt.Fprintf(&b, "\n%d output lines matched no input custom_id (kept, not dropped)", s.Unmatched)
	}
	return b.String()
}

// outputsAreNotInputs refuses an output path (-o, --failed, --unmatched)
// that is one of the input files, by file identity (a symlink or hard link
// counts): writing results there would destroy the requests.
func outputsAreNotInputs(opts *BatchResultsOptions, inputs []string) error {
	for _, out := range []string{opts.Output, opts.Failed, opts.Unmatched} {
		if out == "" {
			continue
		}
		oi, err := os.Stat(out)
		if err != nil {
			continue // does not exist yet: cannot be an input
		}
		for _, in := range inputs {
			if in == "" || in == "-" {
				continue
			}
			if ii, err := os.Stat(in); err == nil && os.SameFile(oi, ii) {
				return FlagErrorf("%s is the input file %s: writing results there would overwrite the requests; choose another path", out, in)
			}
		}
	}
	return nil
}

package cmd

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/runner"
)

// RunOptions holds the dependencies and flag values of 'oairl run'.
type RunOptions struct {
	f *Factory

	Files         []string
	Output        string
	Tier          string
	RPM, TPM      int64
	MaxConcurrent int
	Headroom      float64
	MaxAttempts   int
	MaxWait       time.Duration
	Model         string
	AssumeOutput  int64
	Strict        bool
	Ordered       bool
	RetryFailed   bool
	Grace         time.Duration
	Metrics       string
	Format        string
	DryRun        bool
	TimeScale     float64
	Seed          uint64
}

const runLong = `Send a JSONL file of requests to the API, paced under the RPM, TPM and
concurrency limits, with retries that honour Retry-After, resumable, nothing
lost and nothing sent twice.

Input: the lines 'oairl count' reads (Batch API input format, or bare request
bodies with --model for lines that name none), validated with the same checks:
invalid lines are reported and skipped (--strict: nothing is sent, exit 3).
Each body is sent exactly as written to its line's url under the base URL, so
parameters unknown to client libraries still reach the API.

Pacing: per model, a requests bucket (RPM) and a tokens bucket (TPM) at
--headroom of the limits; a request's TPM charge is its prompt tokens + output
budget × n (as OpenAI's limiter counts it). Limits come from --rpm/--tpm, else
--tier (the published tier table), else the x-ratelimit-limit-* headers of the
first responses; x-ratelimit-remaining-* correct the buckets, and a lower limit
in the headers replaces the one given. A request whose
charge exceeds the TPM limit can never be sent (request_too_large) and is
refused up front. The in-flight cap (--max-concurrent) halves on each
"too many concurrent requests" 429 and creeps back up.

Retries: rate limits wait what the response says (retry-after-ms, retry-after,
"try again in", x-ratelimit-reset-*) and pause that limit for every worker;
5xx, 408, 409 and network errors back off exponentially with full jitter;
insufficient_quota and billing errors stop the run at once (exit 5); 401/403
stop it (exit 4); request_too_large and other 4xx are final failures. A
server-requested wait over --max-wait (a daily limit) stops the run (exit 6).

Results (-o, required): one line per request in the Batch API output format,
appended as answers arrive:
  {"id":"batch_req_...","custom_id":"...","response":{"status_code":200,
   "request_id":"req_...","body":{...}},"error":null}
A failed request has "error":{"code","message"} (and "response" when an HTTP
answer came). Rerunning the same command skips every custom_id already in the
file and sends the rest; a torn last line left by a crash is removed first.
--retry-failed also resends recorded retryable failures (5xx, rate limits,
network errors). --ordered rewrites the file in input order at the end.

Ctrl-C stops sending and lets in-flight requests finish (--grace); a second
Ctrl-C abandons them. Either way the results so far are kept: rerun the same
command to resume (exit 130).

Summary (stdout): a table, or with --format json one document with the keys
requests, invalid, skipped, to_send, sent, succeeded, failed, failed_by_kind,
unsent, attempts, retries, rate_limited (429s by RPM/TPM/RPD/TPD/concurrency/
other), prompt_tokens, completion_tokens, cost_usd, elapsed_seconds,
active_seconds, torn_bytes, stop_reason, exit_code, and models[] (model,
rpm_limit, tpm_limit, succeeded, failed, attempts, retries, rate_limited,
tpm_charged, prompt_tokens, completion_tokens, achieved_rpm, achieved_tpm,
rpm_percent, tpm_percent, cost_usd). --metrics FILE writes the same counters
in Prometheus text format (labels model, limit_type).

Additional exit codes: 3 invalid input under --strict, or nothing valid;
4 auth (401/403, model not found); 5 insufficient_quota or billing; 6 still
rate-limited after --max-attempts, or a wait over --max-wait; 7 some requests
failed (their lines carry the error); 130 interrupted. The worst wins.`

const runExample = `  # rehearse against the simulator at tier 1, 60x faster than real time
  oairl sim --tier 1 --time-scale 60 --addr 127.0.0.1:8080 &
  OPENAI_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_API_KEY=sk-any \
    oairl run requests.jsonl -o results.jsonl --tier 1 --time-scale 60

  # the real API, tier 2 limits, results in input order
  oairl run requests.jsonl -o results.jsonl --tier 2 --ordered

  # what would it take? (no requests sent)
  oairl run requests.jsonl -o results.jsonl --tpm 20000 --dry-run`

func newRunCmd(f *Factory, runF func(*RunOptions) error) *cobra.Command {
	opts := &RunOptions{f: f}
	c := &cobra.Command{
		Use:     "run FILE... -o RESULTS.jsonl",
		Short:   "Send requests paced under RPM/TPM/concurrency limits, resumable",
		Long:    runLong,
		Example: runExample,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Files = args
			if opts.Output == "" {
				return FlagErrorf("-o/--output is required: the results file (JSONL, appended to; rerun to resume)")
			}
			if opts.Format != "table" && opts.Format != "json" {
				return FlagErrorf("--format must be table or json, not %q", opts.Format)
			}
			if opts.Headroom <= 0 || opts.Headroom > 1 {
				return FlagErrorf("--headroom must be in (0, 1], e.g. 0.9")
			}
			if opts.RPM < 0 || opts.TPM < 0 || opts.MaxConcurrent < 1 || opts.MaxAttempts < 1 || opts.AssumeOutput < 0 {
				return FlagErrorf("--rpm/--tpm/--assume-output must not be negative; --max-concurrent and --max-attempts at least 1")
			}
			if opts.TimeScale <= 0 {
				return FlagErrorf("--time-scale must be positive")
			}
			if opts.Tier == "" {
				opts.Tier = f.Getenv("OAIRL_TIER")
			}
			if t := strings.TrimPrefix(strings.ToLower(opts.Tier), "tier"); t != "" {
				switch t {
				case "free", "1", "2", "3", "4", "5":
					opts.Tier = t
				default:
					return FlagErrorf("--tier must be free or 1-5, not %q", opts.Tier)
				}
			}
			for _, file := range opts.Files {
				if file == opts.Output {
					return FlagErrorf("the results file %s is also an input file", file)
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return runRun(c, opts)
		},
	}
	fl := c.Flags()
	fl.StringVarP(&opts.Output, "output", "o", "", "results file (JSONL, Batch API output format), appended to; required")
	fl.StringVar(&opts.Tier, "tier", "", "usage tier whose published limits apply: free, 1-5 (env OAIRL_TIER)")
	fl.Int64Var(&opts.RPM, "rpm", 0, "requests per minute limit, for every model (overrides --tier)")
	fl.Int64Var(&opts.TPM, "tpm", 0, "tokens per minute limit, for every model (overrides --tier)")
	fl.IntVar(&opts.MaxConcurrent, "max-concurrent", 50, "most requests in flight at once")
	fl.IntVar(&opts.MaxConcurrent, "concurrency", 50, "alias of --max-concurrent")
	_ = fl.MarkHidden("concurrency")
	fl.Float64Var(&opts.Headroom, "headroom", 0.9, "fraction of each limit to use, in (0, 1]")
	fl.IntVar(&opts.MaxAttempts, "max-attempts", 8, "most attempts per request, the first included")
	fl.DurationVar(&opts.MaxWait, "max-wait", 2*time.Minute, "longest server-requested wait to sleep through; a longer one stops the run (exit 6, resumable)")
	fl.DurationVar(&opts.MaxWait, "max-retry-wait", 2*time.Minute, "alias of --max-wait")
	_ = fl.MarkHidden("max-retry-wait")
	fl.StringVar(&opts.Model, "model", "", "model for lines whose body names none")
	fl.Int64Var(&opts.AssumeOutput, "assume-output", 1024, "output budget in tokens assumed for lines without max_tokens/max_completion_tokens (counts toward TPM)")
	fl.BoolVar(&opts.Strict, "strict", false, "send nothing if any line is invalid (exit 3)")
	fl.BoolVar(&opts.Ordered, "ordered", false, "rewrite the results file in input order at the end")
	fl.BoolVar(&opts.RetryFailed, "retry-failed", false, "also resend lines whose recorded result is a retryable failure (5xx, rate limit, network)")
	fl.DurationVar(&opts.Grace, "grace", 30*time.Second, "after Ctrl-C, how long in-flight requests may take to finish")
	fl.StringVar(&opts.Metrics, "metrics", "", "write the counters to `FILE` in Prometheus text format (node_exporter textfile collector), atomically")
	fl.StringVar(&opts.Format, "format", "table", "summary format: table or json")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print the schedule (per model: charge, minutes needed, requests refused) and send nothing")
	fl.Float64Var(&opts.TimeScale, "time-scale", 1, "for rehearsal against 'oairl sim --time-scale K': the client's clock runs K times faster so both agree")
	fl.Uint64Var(&opts.Seed, "seed", 0, "seed for backoff jitter (tests)")
	_ = fl.MarkHidden("seed")
	return c
}

func runRun(c *cobra.Command, opts *RunOptions) error {
	f := opts.f
	ios := f.IOStreams
	reg, err := f.Registry()
	if err != nil {
		return err
	}
	ro := runner.Options{
		Output: opts.Output, Registry: reg, Model: opts.Model, AssumeOutput: opts.AssumeOutput,
		Tier: opts.Tier, RPM: opts.RPM, TPM: opts.TPM, MaxConcurrent: opts.MaxConcurrent,
		Headroom: opts.Headroom, MaxAttempts: opts.MaxAttempts, MaxWait: opts.MaxWait, Grace: opts.Grace,
		Strict: opts.Strict, Ordered: opts.Ordered, RetryFailed: opts.RetryFailed, DryRun: opts.DryRun,
		HardContext: f.HardContext, Clock: clock.Scaled(opts.TimeScale), Seed: opts.Seed,
		Log: ios.ErrOut, Out: ios.Out, Quiet: ios.Quiet,
	}
	for _, file := range opts.Files {
		ro.Sources = append(ro.Sources, input.Source{Name: file})
	}
	if !opts.DryRun {
		client, err := f.APIClient()
		if err != nil {
			return exitcode.New(exitcode.Auth, err)
		}
		ro.Client = client
	}
	if ios.ProgressEnabled() {
		ro.NewBar = func(total int64) runner.Bar { return ios.NewProgressBar(total, "sending") }
	}
	sum, err := runner.Run(c.Context(), ro)
	if err != nil {
		return err
	}
	if opts.DryRun {
		return exitOrNil(sum.ExitCode)
	}
	if opts.Format == "json" {
		if err := sum.WriteJSON(ios.Out); err != nil {
			return err
		}
	} else if err := sum.WriteTable(ios.Out, ios.IsStdoutTTY()); err != nil {
		return err
	}
	if opts.Metrics != "" {
		if err := runner.WriteMetricsFile(opts.Metrics, sum); err != nil {
			fmt.Fprintf(ios.ErrOut, "oairl: writing --metrics %s: %v\n", opts.Metrics, err)
			sum.ExitCode = exitcode.Worst(sum.ExitCode, exitcode.Failure)
		}
	}
	resume := fmt.Sprintf("rerun the same command to resume: oairl %s", strings.Join(redactArgs(os.Args[1:]), " "))
	switch {
	case sum.ExitCode == exitcode.Interrupted:
		fmt.Fprintf(ios.ErrOut, "oairl: interrupted: %d results written to %s, %d requests not sent; %s\n",
			sum.Succeeded+sum.Failed, opts.Output, sum.Unsent, resume)
	case sum.StopReason != "":
		fmt.Fprintf(ios.ErrOut, "oairl: stopped: %s\n", sum.StopReason)
		if sum.Unsent > 0 {
			fmt.Fprintf(ios.ErrOut, "%d requests not sent; %s\n", sum.Unsent, resume)
		}
	case sum.Failed > 0 && !ios.Quiet:
		fmt.Fprintf(ios.ErrOut, "%d requests failed; their lines in %s carry the error (--retry-failed resends the retryable ones)\n", sum.Failed, opts.Output)
	}
	return exitOrNil(sum.ExitCode)
}

func exitOrNil(code int) error {
	if code == exitcode.OK {
		return nil
	}
	return exitcode.New(code, nil)
}

// redactArgs returns the arguments for a resume hint (flags only carry
// limits and paths; nothing secret is passed on the command line, but an
// accidental key is still masked).
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, "sk-") {
			a = "sk-…"
		}
		if strings.ContainsAny(a, " \t'\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}

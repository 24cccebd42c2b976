package cmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/humanize"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/pace"
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
	Budget        BudgetOptions
	FlexFallback  int
}

const runLong = `Send a JSONL file of requests to the API, paced under the RPM, TPM and
concurrency limits, with retries that honour Retry-After, resumable, nothing
lost and nothing sent twice.

Input: the lines 'oairl count' reads (Batch API input format, or bare request
bodies with --model for lines that name none), validated with the same checks:
invalid lines are reported and skipped, and the run exits 3 (--strict:
nothing is sent, exit 3).
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

` + budgetHelp + `Retries: rate limits wait what the response says (retry-after-ms, retry-after,
"try again in", x-ratelimit-reset-*) and pause that limit for every worker;
5xx, 408, 409 and network errors back off exponentially with full jitter;
insufficient_quota and billing errors stop the run at once (exit 5); 401/403
stop it (exit 4); request_too_large and other 4xx are final failures. A
server-requested wait over --max-wait stops the run (exit 6). A 429 that
names a daily limit (RPD/TPD: "… per day (RPD): Limit 10000 … try again in
8.64s") is read as a rolling day that frees limit ÷ 86,400 per second: when
the model's lines left need longer than --max-wait at that rate, dispatching
stops at once (exit 6, nothing recorded for them, resumable) and the message
says when the daily budget allows the rest; otherwise that model is paced at
the daily rate from then on: one request every 86,400 ÷ limit seconds (for
TPD, its charge's share), one probe per refill at most, no burst at every
short reset (a --budget redis:// limiter pauses the other processes too).
A flex request refused for lack of capacity (429 resource_unavailable) backs
off without pausing the rate-limit buckets; --flex-fallback N resends it as
service_tier "auto" after N such answers.

Providers: --provider (env OAIRL_PROVIDER; default detected from the base
URL) reads Azure OpenAI (deployment URLs with --api-version, api-key header,
10 s request windows paced as per-minute ones), Groq (per-day request
headers, 413 request too large), OpenRouter and vLLM answers. Models of one
shared-limit group (the registry's shared_limit_groups) share one pair of
buckets; when the project's token window (x-ratelimit-*-project-tokens)
has less room than the organization's, pacing follows the project's.

Results (-o, required): one line per request in the Batch API output format,
appended as answers arrive:
  {"id":"batch_req_...","custom_id":"...","response":{"status_code":200,
   "request_id":"req_...","body":{...}},"error":null}
Each line also carries "oairl_body_sha256" (16 hex digits of the SHA-256 of
the body sent; Batch readers ignore it). A failed request has
"error":{"code","message"} (and "response" when an HTTP answer came); a 200
whose body is empty, not JSON or an error is a (retryable) failure, never a
success. The API key is masked in every message and stored error.

Resume: rerunning the same command skips every custom_id that already has a
result (a line with response.status_code or an error; other lines are
reported and ignored) for the same body fingerprint, and sends the rest. If a
line's body changed, a line with an explicit custom_id is sent again (with a
warning); bare bodies (auto ids line-N) refuse to run (exit 3): the input
changed, so give the lines custom_ids or use a new -o. A success always wins
over a failure recorded for the same custom_id. A torn last line left by a
crash is removed (a complete one missing only its newline is kept). Recorded
failures for the input make a rerun exit 7; --retry-failed resends the
retryable ones (5xx, rate limits, network errors, bad 200s). --ordered
rewrites the file at the end with one line per custom_id in input order
(older lines for a custom_id go to FILE.superseded.jsonl, never dropped).
Only one run may use a results
file at a time (lock .NAME.lock beside it): a second is refused, exit 1. The
results file must not be an input file (or a link to one): exit 2.

If nothing reaches the server (connection refused or DNS failure on the first
attempts, no answer yet), the run stops early: "cannot reach BASE_URL", exit 1,
nothing recorded.

Ctrl-C stops sending and lets in-flight requests finish (--grace); a second
Ctrl-C abandons them (they may have been processed and billed; a rerun sends
them again). Either way the results so far are kept: rerun the same command
to resume (exit 130).

Progress: on a terminal one line, in the run's clock: done/total, RPM and TPM
over the last minute "of" the limits in force, 429s, ETA. Off a terminal
(CI logs): one plain line per state change (pause, limit learned, concurrency
lowered) and a "progress:" heartbeat every 30 s of wall time (not with -q).

Summary (stdout): a table, or with --format json (--json) one document with
the keys schema_version (1), requests, invalid, skipped, to_send, sent (reached the server at least once),
succeeded, failed, failed_by_kind, unsent (never sent), abandoned (in flight
when abandoned), no_result (all without a result line), skipped_failed,
quota_errors (insufficient_quota/billing, not counted as rate limits),
attempts, retries, rate_limited (429s by RPM/TPM/RPD/TPD/concurrency/
request_too_large/edge_throttled/flex_unavailable/other), prompt_tokens, completion_tokens, cost_usd, elapsed_seconds,
active_seconds, torn_bytes, stop_reason, exit_code, server_charge ({ratio,
samples, steady, followed}: the TPM charge the server applied, measured from
x-ratelimit-remaining-tokens between consecutive admissions, relative to
oairl's estimate, in the server's order of admission; steady: at least 20
requests measured with nothing else in flight agree with it; once steady and
more than 3% from 1, pacing follows it),
and models[] (model,
rpm_limit, tpm_limit, succeeded, failed, attempts, retries, rate_limited,
tpm_charged, prompt_tokens, completion_tokens, achieved_rpm, achieved_tpm,
rpm_percent, tpm_percent, cost_usd). rpm_limit/tpm_limit are the limits in
force at the end (a lower one learned from headers replaces the one given).
achieved_rpm/tpm are steady-state rates in the run's clock: the first
limit's worth of successes (the initial full bucket, which any short run
drains at once) is excluded, and the rest is divided by the time from the
success that drained it to the last one; a run that fits in the initial
bucket is divided by max(elapsed, 1 minute). So they never read as over the
limit; with no 429 at all the percentages are capped at 100. --metrics FILE writes the same counters
in Prometheus text format (labels model, limit_type).

Exit codes of run: 1 cannot reach the base URL, results file in use by
another run, unreadable input or results file; 2 usage (also -o naming an
input file); 3 invalid input lines (skipped: they have no result line; under
--strict nothing is sent), nothing valid, or bare-body input changed since
the results were written; 4 auth (401/403, model not
found); 5 insufficient_quota or billing; 6 still rate-limited after
--max-attempts, or a wait over --max-wait; 7 partial: results were written
and some requests failed — including 5xx and network errors after the
retries, and failures recorded by an earlier run (their lines carry the
error); 130 interrupted. The worst wins.`

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
			if opts.Output == "-" {
				return FlagErrorf("-o must be a file, not stdout: results are appended and reread to resume")
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
			if opts.Tier != "" {
				t, ok := normalizeTier(opts.Tier)
				if !ok {
					return FlagErrorf("--tier must be free or 1-5 (or project: the limits 'oairl limits pull' saved), not %q", opts.Tier)
				}
				opts.Tier = t
			}
			if err := opts.Budget.resolve(f); err != nil {
				return err
			}
			if err := usePulledLimits(f, &opts.Tier, opts.RPM > 0 || opts.TPM > 0); err != nil {
				return err
			}
			if err := f.Config().ProviderErr; err != nil {
				return err
			}
			if !opts.DryRun {
				// A malformed base URL or key is a usage error before
				// anything is sent or recorded (not 8 "network errors").
				if err := f.Config().SendErr(); err != nil {
					return err
				}
			}
			if opts.FlexFallback < 0 {
				return FlagErrorf("--flex-fallback must not be negative")
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
	fl.IntVar(&opts.FlexFallback, "flex-fallback", 0, "resend a service_tier \"flex\" request as \"auto\" after `N` 429 resource_unavailable answers (0 = keep retrying flex)")
	fl.IntVar(&opts.MaxAttempts, "max-attempts", 8, "most attempts per request, the first included")
	fl.DurationVar(&opts.MaxWait, "max-wait", 2*time.Minute, "longest server-requested wait to sleep through; a longer one stops the run (exit 6, resumable)")
	fl.DurationVar(&opts.MaxWait, "max-retry-wait", 2*time.Minute, "alias of --max-wait")
	_ = fl.MarkHidden("max-retry-wait")
	fl.StringVar(&opts.Model, "model", "", "model for lines whose body names none")
	_ = c.RegisterFlagCompletionFunc("model", completeModels(f))
	_ = c.RegisterFlagCompletionFunc("tier", noFiles(tierValues...))
	fl.Int64Var(&opts.AssumeOutput, "assume-output", 1024, "output budget in tokens assumed for lines without max_tokens/max_completion_tokens (counts toward TPM)")
	fl.BoolVar(&opts.Strict, "strict", false, "send nothing if any line is invalid (exit 3)")
	fl.BoolVar(&opts.Ordered, "ordered", false, "rewrite the results file in input order at the end")
	fl.BoolVar(&opts.RetryFailed, "retry-failed", false, "also resend lines whose recorded result is a retryable failure (5xx, rate limit, network)")
	fl.DurationVar(&opts.Grace, "grace", 30*time.Second, "after Ctrl-C, how long in-flight requests may take to finish")
	fl.StringVar(&opts.Metrics, "metrics", "", "write the counters to `FILE` in Prometheus text format (node_exporter textfile collector), atomically")
	addFormatFlags(f, c, &opts.Format, "summary format: table or json", "table", "json")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print the schedule (per model: charge, minutes needed, requests refused) and send nothing")
	fl.Float64Var(&opts.TimeScale, "time-scale", 1, "for rehearsal against 'oairl sim --time-scale K': the client's clock runs K times faster so both agree")
	fl.Uint64Var(&opts.Seed, "seed", 0, "seed for backoff jitter (tests)")
	_ = fl.MarkHidden("seed")
	addBudgetFlags(fl, &opts.Budget)
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
		Log: ios.ErrOut, Out: ios.Out, Quiet: ios.Quiet, Stdin: ios.In,
	}
	for _, file := range opts.Files {
		ro.Sources = append(ro.Sources, input.Source{Name: file})
		if file == "-" {
			continue
		}
		// Unreadable input is exit 1 (as in count), checked before the key.
		if fh, err := os.Open(file); err != nil {
			return exitcode.Errorf(exitcode.Failure, "cannot open %s: %w; nothing was sent", file, errors.Unwrap(err))
		} else {
			fh.Close()
		}
	}
	if opts.Budget.URL != "" && !opts.DryRun {
		ctx := c.Context()
		ro.NewLimiter = func(pc pace.Config) (pace.Limiter, error) { return newLimiter(ctx, f, opts.Budget, pc) }
	}
	if !opts.DryRun {
		f.SetHTTPTuning(opts.MaxConcurrent, ro.Clock)
		client, err := f.APIClient()
		if err != nil {
			return exitcode.New(exitcode.Auth, err)
		}
		ro.Client = client
		cfg := f.Config()
		ro.APIKey, ro.BaseURL, ro.Provider = cfg.APIKey, cfg.BaseURL, cfg.Provider
		ro.FlexFallback = opts.FlexFallback
	}
	if ios.ProgressEnabled() {
		ro.NewBar = func(total int64) runner.Bar { return &lineBar{w: ios.ErrOut} }
	} else if !ios.Quiet {
		ro.Heartbeat = 30 * time.Second
	}
	limitMemory()
	sum, err := runner.Run(c.Context(), ro)
	if err != nil {
		return err
	}
	if opts.DryRun {
		return exitOrNil(sum.ExitCode)
	}
	if opts.Format == "json" {
		if err := writeJSON(ios.Out, sum); err != nil {
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
		fmt.Fprintf(ios.ErrOut, "oairl: interrupted: %d results written to %s; %s; %s\n",
			sum.Succeeded+sum.Failed, opts.Output, noResultWords(sum), resume)
	case sum.StopReason != "":
		fmt.Fprintf(ios.ErrOut, "oairl: stopped: %s\n", sum.StopReason)
		if sum.NoResult > 0 {
			fmt.Fprintf(ios.ErrOut, "%s; %s\n", noResultWords(sum), resume)
		}
	case sum.Failed > 0 && !ios.Quiet:
		fmt.Fprintf(ios.ErrOut, "%s failed; their lines in %s carry the error (--retry-failed resends the retryable ones)\n", humanize.Count(int64(sum.Failed), "request", "requests"), opts.Output)
	}
	return exitOrNil(sum.ExitCode)
}

// noResultWords says which requests have no result: never sent, abandoned
// in flight (may have been billed), or sent and stopped between retries.
func noResultWords(sum *runner.Summary) string {
	parts := []string{fmt.Sprintf("%d never sent", sum.Unsent)}
	if sum.Abandoned > 0 {
		parts = append(parts, fmt.Sprintf("%d in flight were abandoned: they may have been processed and billed; a rerun sends them again", sum.Abandoned))
	}
	if n := sum.NoResult - sum.Unsent - sum.Abandoned; n > 0 {
		parts = append(parts, fmt.Sprintf("%d sent but stopped before a final answer", n))
	}
	return fmt.Sprintf("%s %s no result (%s)", humanize.Count(int64(sum.NoResult), "request", "requests"), hasHave(sum.NoResult), strings.Join(parts, "; "))
}

// lineBar is the terminal progress line: one line, redrawn in place, with
// the runner's description (done/total, RPM and TPM of the limits, 429s,
// ETA, all in the run's clock), so no wall-clock rate mixes in.
type lineBar struct {
	w     io.Writer
	drawn bool
}

func (b *lineBar) Add(int64) {}
func (b *lineBar) Describe(s string) {
	fmt.Fprintf(b.w, "\r\x1b[Ksending %s", s)
	b.drawn = true
}
func (b *lineBar) Finish() {
	if b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
}

// Clear erases the line before a log line is printed (the next Describe
// draws it again).
func (b *lineBar) Clear() {
	if b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
		b.drawn = false
	}
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

// hasHave is "has" for 1, else "have".
func hasHave(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

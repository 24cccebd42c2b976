package cmd

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/iostreams"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/internal/redact"
)

// DiagnoseOptions holds the dependencies and flag values of 'oairl diagnose'.
type DiagnoseOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*api.Client, error)
	Registry  func() (*models.Registry, error)
	Now       func() time.Time
	// Secrets are values never printed (the API key).
	Secrets []string
	// Provider returns the provider named by --provider/OAIRL_PROVIDER
	// ("" when auto): saved responses are read with its header semantics
	// (Groq's per-day request headers, Azure's bare-second resets).
	Provider func() string
	// Open opens a saved-response file (default os.Open).
	Open func(name string) (io.ReadCloser, error)

	Model            string
	From             string // FILE, "-" for stdin, "" for live
	Format           string // "table" or "json"
	Redact           bool
	ProbeConcurrency int
	Yes              bool
}

var diagnoseLong = `Diagnose tells apart what an OpenAI API error means: a per-minute or per-day
limit (wait), a request bigger than the whole token bucket (shrink it), a ramp
or concurrency limit (slow down), quota or billing (pay; waiting never helps),
auth, an unavailable model, or server capacity. Live or from a saved response.

Live (needs OPENAI_API_KEY): sends ONE minimal chat completion to
/v1/chat/completions (the message "ping", an output budget of 1 token:
max_tokens, or max_completion_tokens for reasoning models) and reports, for the
request and token windows, the limit, remaining, reset and utilisation; whether
the request window is daily (a reset of hours); the usage tier whose published
limits match the headers ("custom limits" when none does); and the verdict with
fixes. 401/403/404 answers are diagnosed too. --probe-concurrency N --yes also
sends N such requests at once and reports whether a concurrency limit bites; it
costs N small requests of tokens, so it requires --yes.

Saved (--from FILE, or - for stdin, or FILE as the argument): no network call.
Reads, in any mix and any number: curl -i / curl -v output (HTTP/1.1 or HTTP/2
status lines, headers, body), raw JSON error bodies (OpenAI, Azure, Anthropic,
Groq, OpenRouter, vLLM, Mistral), Responses API and Realtime events and SSE
streams ("data: {...}": a rate limit inside a 200 is a rate limit), Batch
objects and Batch output lines (batch_expired and batch_cancelled requests are
not_executed: resubmit them), Python SDK lines ("Error code: 429 -
{'error': {...}}", and the pre-1.0 "openai.error.RateLimitError: ..." also
quoted by LangChain), go-openai errors ("error, status
code: 429, status: ..., message: ...") and Node SDK errors ("429 Rate limit
reached ..."). UTF-16 files (PowerShell ">") are decoded. JSON that is neither
an error nor an API response (a log line, a request body, {}) is skipped, and
input with nothing readable exits 3. A status is never guessed: a body without
one reports status 0 ("-"). A capture cut short is classified from what is
readable and says so ("truncated": true). One finding per response, plus a
summary line when there are several (on stderr when piped). An empty --from is
a usage error (it never falls back to the live request).

Verdicts: ok, rpm_limited, tpm_limited, rpd_limited, tpd_limited,
request_too_large, ramp_limited, concurrency_limited, quota_exhausted,
batch_queue_full, context_length_exceeded, auth_failed, model_unavailable,
server_overloaded, server_error, network_error, edge_throttled,
invalid_request, not_executed, unknown. Azure's "Please retry after 86400
seconds" (a zero or trial quota that never recovers) is quota_exhausted.

The wait a response implies is read in this order of trust: retry-after-ms,
retry-after (seconds, decimals allowed, or an HTTP-date taken against the
response's Date header), the "Please try again in 1m26.4s" text, then the reset
header of the window the verdict names (also Azure's x-rate-limit-reset-tokens
and x-ratelimit-reset-tokens_usage_based). retry-after: 0, negative and
unparseable values mean "no hint" (never "retry at once"): callers apply their
own floor; a positive wait under 1 ms is reported as 1 ms.

Output: on a terminal, one block per finding. Piped, one tab-separated row per
finding, no header, raw integers and seconds, "-" for unknown values; columns:
` + wrapColumns(diagnose.TSVColumns) + `
(a concurrency probe adds a row "probe N ok=K concurrency_limit_bites=BOOL").
--redact masks organization and project ids (org-…, org_…, proj_…, user-…, and
Anthropic's organization UUIDs) so the output can be pasted publicly. API keys
are never printed: the configured key, and any OpenAI (sk-, sk-proj-,
sk-svcacct-), Anthropic (sk-ant-), Groq (gsk_), OpenRouter (sk-or-) or Azure
(32 hex digits after "key") key or bearer token in a message.

` + diagnose.JSONSchemaHelp + `
Exit codes (the worst over all findings wins):
  0  ok            4  auth_failed, model_unavailable
  5  quota_exhausted (insufficient_quota and the billing codes)
  6  rate limited: rpm/tpm/rpd/tpd/ramp/concurrency, batch_queue_full,
     edge_throttled (also when a probe shows a concurrency limit)
  3  the saved response cannot be read (nothing readable in it)
  1  anything else (server or network errors, request_too_large,
     not_executed, ...)
  2  usage (e.g. --probe-concurrency without --yes, an empty --from)`

// wrapColumns lists column names indented, about 76 characters a line.
func wrapColumns(cols []string) string {
	var b strings.Builder
	line := " "
	for _, c := range cols {
		if len(line)+len(c)+1 > 78 {
			b.WriteString(line + "\n")
			line = " "
		}
		line += " " + c
	}
	b.WriteString(line)
	return b.String()
}

func newDiagnoseCmd(f *Factory, runF func(*DiagnoseOptions) error) *cobra.Command {
	opts := &DiagnoseOptions{
		IO:       f.IOStreams,
		Registry: f.Registry,
		Now:      func() time.Time { return f.Now() },
		Open:     func(name string) (io.ReadCloser, error) { return os.Open(name) },
		Provider: f.explicitProvider,
	}
	opts.APIClient = func() (*api.Client, error) {
		// --probe-concurrency N sends N requests at once: keep N idle
		// connections (the probes themselves are never retried).
		f.SetHTTPTuning(opts.ProbeConcurrency, nil)
		return f.APIClient()
	}
	c := &cobra.Command{
		Use:   "diagnose [FILE]",
		Short: "Tell RPM, TPM, daily, concurrency, quota and auth errors apart, live or from a saved response",
		Long:  diagnoseLong,
		Example: `  oairl diagnose --model gpt-4o-mini          # one minimal live request
  oairl diagnose --from saved-429.txt          # curl -i output or an SDK log
  pbpaste | oairl diagnose --from - --redact   # paste publicly afterwards
  oairl diagnose --probe-concurrency 20 --yes  # costs 20 tiny requests
  oairl diagnose --from err.json --format json | jq .summary`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Secrets = f.secrets()
			if c.Flags().Changed("from") && strings.TrimSpace(opts.From) == "" {
				// An empty --from (an unset shell variable) must not fall
				// back to the live probe, which sends a billed request.
				return FlagErrorf("--from needs a file name, or - for stdin")
			}
			if len(args) == 1 {
				if opts.From != "" {
					return FlagErrorf("give the saved response either as an argument or with --from, not both")
				}
				opts.From = args[0]
			}
			if opts.From != "" && (c.Flags().Changed("model") || opts.ProbeConcurrency != 0) {
				return FlagErrorf("--model and --probe-concurrency apply to a live diagnosis, not to --from")
			}
			if opts.ProbeConcurrency < 0 || opts.ProbeConcurrency > 1000 {
				return FlagErrorf("--probe-concurrency must be between 1 and 1000")
			}
			if opts.ProbeConcurrency > 0 && !opts.Yes {
				return FlagErrorf("--probe-concurrency %d sends %d real requests at once and costs tokens (about %d); add --yes to confirm",
					opts.ProbeConcurrency, opts.ProbeConcurrency, opts.ProbeConcurrency*10)
			}
			if runF != nil {
				return runF(opts)
			}
			return diagnoseRun(c, opts)
		},
	}
	fl := c.Flags()
	fl.StringVar(&opts.Model, "model", "gpt-4o-mini", "model for the live request")
	_ = c.RegisterFlagCompletionFunc("model", completeModels(f))
	fl.StringVar(&opts.From, "from", "", "diagnose a saved response from `FILE` (- for stdin) instead of sending a request")
	addFormatFlags(f, c, &opts.Format, "output format: table (text on a terminal, tab-separated rows when piped) or json", "table", "json")
	fl.BoolVar(&opts.Redact, "redact", false, "mask organization and project ids in the output")
	fl.IntVar(&opts.ProbeConcurrency, "probe-concurrency", 0, "also send `N` minimal requests at once to find a concurrency limit (costs tokens; needs --yes)")
	fl.BoolVar(&opts.Yes, "yes", false, "confirm --probe-concurrency")
	return c
}

func diagnoseRun(c *cobra.Command, opts *DiagnoseOptions) error {
	var rep diagnose.Report
	var err error
	if opts.From != "" && (opts.Format == "json" || !opts.IO.IsStdoutTTY()) {
		// For scripts: stream, one finding at a time, in flat memory.
		return diagnoseSavedStream(opts)
	}
	if opts.From != "" {
		rep, err = diagnoseSaved(opts)
	} else {
		rep, err = diagnoseLive(c, opts)
	}
	if err != nil {
		return err
	}
	if opts.Redact {
		rep = rep.Redacted()
	}
	var buf bytes.Buffer
	switch {
	case opts.Format == "json":
		err = rep.WriteJSON(&buf)
	case opts.IO.IsStdoutTTY():
		err = rep.WriteText(&buf)
	default:
		err = rep.WriteTSV(&buf)
	}
	if err != nil {
		return err
	}
	out := redact.String(buf.String(), opts.Secrets...)
	if opts.Redact {
		// Ids in fields the report does not mask (fixes, origins).
		out = redact.IDs(out)
	}
	if _, err := io.WriteString(opts.IO.Out, out); err != nil {
		return err
	}
	if opts.Format != "json" && !opts.IO.IsStdoutTTY() && len(rep.Findings) > 1 && !opts.IO.Quiet {
		// Piped rows carry no summary (the columns are a contract): say it on stderr.
		line := redact.String(rep.SummaryLine(), opts.Secrets...)
		if opts.Redact {
			line = redact.IDs(line)
		}
		fmt.Fprintln(opts.IO.ErrOut, line)
	}
	if code := rep.ExitCode(); code != exitcode.OK {
		return exitcode.New(code, nil)
	}
	return nil
}

// diagnoseSavedStream diagnoses a saved file as JSON or TSV, writing each
// finding as it is classified (a log of 100,000 responses takes the
// memory of the file, not of its findings).
func diagnoseSavedStream(opts *DiagnoseOptions) error {
	name := opts.From
	var r io.Reader
	if name == "-" {
		name = "stdin"
		r = opts.IO.In
	} else {
		fh, err := opts.Open(name)
		if err != nil {
			return exitcode.New(exitcode.Input, fmt.Errorf("reading saved response: %w", err))
		}
		defer fh.Close()
		r = fh
	}
	mask := func(s string) string {
		s = redact.String(s, opts.Secrets...)
		if opts.Redact {
			s = redact.IDs(s)
		}
		return s
	}
	st := diagnose.NewStream(opts.IO.Out, "saved", opts.Format, mask)
	now := opts.Now()
	err := diagnose.ParseSavedFunc(r, func(cp diagnose.Capture) error {
		hint := ""
		if opts.Provider != nil {
			hint = opts.Provider()
		}
		e := diagnose.Entry{Finding: diagnose.ClassifyCaptureAs(hint, cp, now), Origin: fmt.Sprintf("%s:%d", name, cp.Line), Format: cp.Source}
		if opts.Redact {
			e = diagnose.Report{Findings: []diagnose.Entry{e}}.Redacted().Findings[0]
		}
		return st.Add(e)
	})
	if err != nil {
		if st.Count() > 0 {
			return err // a write error mid-way
		}
		return exitcode.New(exitcode.Input, fmt.Errorf("%s: %w", name, err))
	}
	if err := st.Close(); err != nil {
		return err
	}
	if opts.Format != "json" && st.Count() > 1 && !opts.IO.Quiet {
		// Piped rows carry no summary (the columns are a contract): say it on stderr.
		fmt.Fprintln(opts.IO.ErrOut, mask(st.SummaryLine()))
	}
	if code := st.ExitCode(); code != exitcode.OK {
		return exitcode.New(code, nil)
	}
	return nil
}

func diagnoseSaved(opts *DiagnoseOptions) (diagnose.Report, error) {
	name := opts.From
	var r io.Reader
	if name == "-" {
		name = "stdin"
		r = opts.IO.In
	} else {
		fh, err := opts.Open(name)
		if err != nil {
			return diagnose.Report{}, exitcode.New(exitcode.Input, fmt.Errorf("reading saved response: %w", err))
		}
		defer fh.Close()
		r = fh
	}
	caps, err := diagnose.ParseSaved(r)
	if err != nil {
		return diagnose.Report{}, exitcode.New(exitcode.Input, fmt.Errorf("%s: %w", name, err))
	}
	rep := diagnose.Report{Mode: "saved"}
	now := opts.Now()
	for _, cp := range caps {
		rep.Findings = append(rep.Findings, diagnose.Entry{
			Finding: diagnose.ClassifyCapture(cp, now),
			Origin:  fmt.Sprintf("%s:%d", name, cp.Line),
			Format:  cp.Source,
		})
	}
	return rep, nil
}

func diagnoseLive(c *cobra.Command, opts *DiagnoseOptions) (diagnose.Report, error) {
	client, err := opts.APIClient()
	if err != nil {
		return diagnose.Report{}, exitcode.New(exitcode.Auth, err)
	}
	reg, err := opts.Registry()
	if err != nil {
		return diagnose.Report{}, err
	}
	po := diagnose.ProbeOptions{Model: opts.Model, Registry: reg, Now: opts.Now}
	if !opts.IO.Quiet {
		fmt.Fprintf(opts.IO.ErrOut, "sending one minimal request (%s, 1 output token) to %s\n", opts.Model, redact.URL(client.URLFor(diagnose.ProbePath)))
	}
	rep := diagnose.Report{Mode: "live"}
	rep.Findings = append(rep.Findings, diagnose.Probe(c.Context(), client, po))
	if n := opts.ProbeConcurrency; n > 0 {
		if !opts.IO.Quiet {
			fmt.Fprintf(opts.IO.ErrOut, "sending %d minimal requests at once\n", n)
		}
		res, _ := diagnose.ProbeConcurrency(c.Context(), client, po, n)
		rep.Probe = &res
	}
	return rep, nil
}

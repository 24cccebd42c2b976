package cmd

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/internal/iostreams"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/internal/sim"
)

// SimOptions holds the dependencies and flag values of 'oairl sim'.
type SimOptions struct {
	IO       *iostreams.IOStreams
	Registry func() (*models.Registry, error)
	// Ctx is cancelled on Ctrl-C: the server then stops and prints its
	// summary.
	Ctx context.Context
	// Ready, when set, is called with the base URL once the server listens
	// (tests).
	Ready func(baseURL string)

	Flags *sim.Flags
}

const simLong = `Serve a local OpenAI-compatible API that enforces a usage tier's rate limits,
so you can rehearse what your client does at tier 1 (or any limits) without
spending money or quota. Point any OpenAI SDK at it with OPENAI_BASE_URL.

It prints its base URL (one line on stdout, e.g. http://127.0.0.1:40123/v1)
and serves until interrupted, then prints a summary on stderr: requests,
2xx, 429s by limit type, 5xx, and goodput (requests and tokens per minute of
sim time, for runs of at least a minute) against the limits ("unlimited" where
none applies).

Limits are per model and shared by every API key, as OpenAI's are per
organization. RPM and TPM are continuously refilling buckets whose capacity
is the per-minute limit; a request's TPM charge is its prompt tokens plus
max_tokens (or max_completion_tokens / max_output_tokens) times n, taken
when it is admitted. Unsuccessful requests count: every 429, and every 400
for a known model, uses up a request; retrying a 429 before its retry-after
goes into debt, so the reset moves further away. Every answer
carries the six x-ratelimit-* headers in OpenAI's formats (6m0s, 1.5s,
20ms), x-request-id and openai-processing-ms; 429s carry OpenAI's error
bodies ("Rate limit reached for MODEL in organization org-... on tokens per
min (TPM): Limit L, Used U, Requested R. Please try again in D.") and
retry-after. Tier limits are the published ones (see 'oairl count --tier').

Endpoints: POST /v1/chat/completions (also stream: true), /v1/completions,
/v1/embeddings, /v1/responses; GET /v1/models; the Files API; the Batch API
(validating -> in_progress -> finalizing -> completed on the clock, with
shuffled output files, the enqueued-token limit, cancel and expiry).

--time-scale K makes the whole clock K times faster: refill, resets,
latency and batch progress. Durations in headers and messages are sim time.

Fault modes: --quota-exhausted [CODE] (every endpoint, Files and Batches
included, answers 429 insufficient_quota or a billing code; also
--quota-code CODE), --fault-rate F (500, 503, dropped connections), --invalid-key (401),
--slow-down (429 slow_down), --max-concurrent N (429 when more are in
flight). Requests over a model's context window get 400
context_length_exceeded; unknown models 404 model_not_found; a missing
Authorization header 401.

Exit codes: 0 after an interrupt, 2 bad flags, 1 when the address cannot be
bound.`

const simExample = `  # Tier-1 limits, on a free port; in another shell point an SDK at it
  oairl sim --tier 1
  OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=sk-anything python my_client.py

  # Custom limits, 60x faster, with retry-after-ms and 1% faults
  oairl sim --rpm 60 --tpm 10000 --time-scale 60 --retry-after ms --fault-rate 0.01 --log sim.jsonl`

func newSimCmd(f *Factory, runF func(*SimOptions) error) *cobra.Command {
	opts := &SimOptions{IO: f.IOStreams, Registry: f.Registry}
	c := &cobra.Command{
		Use:     "sim [flags]",
		Short:   "Serve a local OpenAI-compatible API that enforces a tier's rate limits",
		Long:    simLong,
		Example: simExample,
		Args: func(c *cobra.Command, args []string) error {
			if err := opts.Flags.TakeArgs(args); err != nil {
				return FlagErrorf("%w", err)
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := opts.Flags.Config(); err != nil {
				return FlagErrorf("%w", err)
			}
			opts.Ctx = c.Context()
			if runF != nil {
				return runF(opts)
			}
			return simRun(opts)
		},
	}
	opts.Flags = sim.BindFlags(c.Flags())
	_ = c.RegisterFlagCompletionFunc("tier", noFiles(append([]string{"none"}, tierValues...)...))
	_ = c.RegisterFlagCompletionFunc("retry-after", noFiles(sim.RetryAfterSeconds, sim.RetryAfterNone, sim.RetryAfterMS))
	_ = c.RegisterFlagCompletionFunc("quota-code", noFiles(sim.QuotaCodes...))
	_ = c.RegisterFlagCompletionFunc("quota-exhausted", noFiles(sim.QuotaCodes...))
	return c
}

// simRun serves until opts.Ctx is done.
func simRun(opts *SimOptions) error {
	cfg, err := opts.Flags.Config()
	if err != nil {
		return FlagErrorf("%w", err)
	}
	reg, err := opts.Registry()
	if err != nil {
		return err
	}
	cfg.Registry = reg
	if opts.Flags.LogFile != "" {
		lf, err := os.OpenFile(opts.Flags.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("sim log: %w", err)
		}
		defer lf.Close()
		cfg.Log = lf
	}
	srv, err := sim.New(cfg)
	if err != nil {
		return FlagErrorf("%w", err)
	}
	cfg = srv.Config()
	ln, err := net.Listen("tcp", opts.Flags.Addr)
	if err != nil {
		return fmt.Errorf("sim: listen on %s: %w", opts.Flags.Addr, err)
	}
	base := "http://" + ln.Addr().String() + "/v1"
	fmt.Fprintln(opts.IO.Out, base)
	if !opts.IO.Quiet {
		fmt.Fprintf(opts.IO.ErrOut, "oairl sim: serving %s (tier %s, time scale %gx); Ctrl-C to stop\n", base, tierName(cfg), cfg.TimeScale)
	}
	if opts.Ready != nil {
		opts.Ready(base)
	}
	ctx := opts.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	err = srv.Serve(ctx, ln)
	writeSimSummary(opts.IO.ErrOut, srv)
	return err
}

func tierName(c sim.Config) string {
	if c.Tier == "" {
		return fmt.Sprintf("custom: %d RPM, %d TPM, %d RPD, %d TPD", c.RPM, c.TPM, c.RPD, c.TPD)
	}
	if c.Tier == "none" {
		return "none (no limits)"
	}
	return c.Tier
}

func writeSimSummary(w io.Writer, srv *sim.Server) {
	srv.Stats().WriteSummary(w)
}

// Package cmd wires oairl's commands: the root command, the global flags,
// the factory that resolves configuration, the help topics, and one file per
// command. It holds no business logic: each command parses its flags into an
// options struct and calls a domain package (tokens, batch, diagnose,
// internal/...).
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/iostreams"
	"github.com/oairl/oairl/internal/redact"
)

// Main runs oairl with os.Args and returns the process exit code. It never
// calls os.Exit, so tests and testscript can drive the real entry point.
func Main(version string) int {
	ios := iostreams.System()
	f := NewFactory(ios, os.Getenv, version)

	// First Ctrl-C: cancel the soft context (stop sending, finish in-flight
	// work, save state). Second Ctrl-C: cancel the hard context too.
	soft, cancelSoft := context.WithCancel(context.Background())
	hard, cancelHard := context.WithCancel(context.Background())
	defer cancelSoft()
	defer cancelHard()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		var first time.Time
		for range sigs {
			if first.IsZero() {
				first = time.Now()
				cancelSoft()
				continue
			}
			// `timeout -s INT` (without --foreground) and some process
			// managers deliver one interrupt twice, to the process and to its
			// group: a second signal within 300 ms is the same Ctrl-C.
			if time.Since(first) < 300*time.Millisecond {
				continue
			}
			cancelHard()
			return
		}
	}()
	f.HardContext = hard

	return run(f, soft, os.Args[1:])
}

// run executes the root command with args and maps the result to an exit
// code, printing the error (redacted) once, here.
func run(f *Factory, ctx context.Context, args []string) int {
	// Count what reaches stdout: in JSON mode a failing command prints a
	// JSON error document there unless it already printed its own.
	f.IOStreams.ResolveColor(f.Getenv)
	out := &countingWriter{w: f.IOStreams.Out}
	f.IOStreams.Out = out
	defer func() { f.IOStreams.Out = out.w }()
	root := NewRootCmd(f)
	root.SetArgs(args)
	root.SetIn(f.IOStreams.In)
	root.SetOut(f.IOStreams.Out)
	root.SetErr(f.IOStreams.ErrOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitcode.OK
	}
	code := exitcode.Of(err)
	var flagErr *FlagError
	if errors.As(err, &flagErr) || isCobraUsageError(err) {
		code = exitcode.Usage
	}
	msg := ""
	var ee *exitcode.Error
	if !(errors.As(err, &ee) && ee.Err == nil) {
		msg = redact.String(err.Error(), f.secrets()...)
		fmt.Fprintf(f.IOStreams.ErrOut, "%s %s\n", f.IOStreams.ErrorPrefix(), msg)
		if code == exitcode.Usage {
			fmt.Fprintln(f.IOStreams.ErrOut, "Run 'oairl --help' (or 'oairl COMMAND --help') for usage.")
		}
	}
	if (f.jsonOutput || wantsJSON(args)) && out.n == 0 {
		if msg == "" {
			msg = fmt.Sprintf("exit %d (%s)", code, errorCodes[code])
		}
		_ = writeJSONError(out, code, msg)
	}
	return code
}

// FlagError is a usage error: bad flags or a bad flag combination (exit 2).
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// FlagErrorf returns a FlagError with a formatted message.
func FlagErrorf(format string, args ...any) error {
	return &FlagError{Err: fmt.Errorf(format, args...)}
}

func isCobraUsageError(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "unknown command", "invalid argument",
		"flag needs an argument", "accepts ", "requires at least", "requires at most", "required flag",
		"if any flags in the group", "none of the others can be"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// NewRootCmd builds the command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "oairl",
		Short: "Stop OpenAI 429s: count, pace, batch and diagnose your requests",
		Long: `oairl ends HTTP 429 rate_limit_exceeded by calling smarter, not retrying harder.

  oairl count FILE.jsonl      exact token counts, TPM charge, cost and problems; offline
  oairl run FILE.jsonl        send requests paced under RPM/TPM/concurrency limits
  oairl batch submit FILE     the Batch API (50% cheaper, separate limits) done right
  oairl diagnose              tell RPM, TPM, daily, concurrency, quota and auth apart
  oairl sim                   a local OpenAI-compatible server that enforces a tier's limits
  oairl proxy                 a gateway in front of an unchanged app: its 429s become short waits
  oairl limits pull           save your project's real limits (Admin API) for count, run, batch

Input files are JSONL in the Batch API input format ({"custom_id", "method",
"url", "body"}) or bare request bodies ({"model", "messages", ...}).

See 'oairl help exit-codes' and 'oairl help environment'.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       versionText(buildVersion(f.Version)),
	}
	root.SetVersionTemplate("{{.Version}}")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &FlagError{Err: err} })

	pf := root.PersistentFlags()
	pf.StringVar(&f.flags.baseURL, "base-url", "", "API base URL, e.g. http://127.0.0.1:8080/v1 for oairl sim (env OPENAI_BASE_URL; default https://api.openai.com/v1)")
	pf.StringVar(&f.flags.provider, "provider", "", "server kind: auto, openai, azure, groq, openrouter, vllm, anthropic (env OAIRL_PROVIDER; default auto: detected from the base URL)")
	pf.StringVar(&f.flags.apiVersion, "api-version", "", "Azure OpenAI api-version query parameter (env OPENAI_API_VERSION; default 2024-10-21)")
	pf.StringVar(&f.flags.modelsFile, "models", "", "JSON file that overrides or extends the built-in model registry (env OAIRL_MODELS)")
	pf.BoolVarP(&f.flags.quiet, "quiet", "q", false, "print no progress lines or hints (errors and data only)")
	pf.BoolVar(&f.flags.noProgress, "no-progress", false, "never draw progress bars")
	pf.BoolVar(&f.flags.debug, "debug", false, "trace every HTTP exchange to stderr, key masked (env OAIRL_DEBUG=api)")
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		f.IOStreams.Quiet = f.flags.quiet
		f.IOStreams.NoProgress = f.flags.noProgress || f.Getenv("OAIRL_NO_PROGRESS") != ""
		return nil
	}

	root.AddCommand(
		newCountCmd(f, nil),
		newRunCmd(f, nil),
		newBatchCmd(f),
		newDiagnoseCmd(f, nil),
		newSimCmd(f, nil),
		newBudgetCmd(f),
		newProxyCmd(f, nil),
		newLimitsCmd(f),
		newVersionCmd(f),
		newHelpTopic("exit-codes", "Exit codes shared by every command", exitcode.Help),
		newHelpTopic("environment", "Environment variables oairl reads", environmentHelp),
	)
	return root
}

// newHelpTopic is a help-only command: `oairl help NAME` prints text.
func newHelpTopic(name, short, text string) *cobra.Command {
	c := &cobra.Command{
		Use:   name,
		Short: short,
		Long:  text,
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			_, err := io.WriteString(c.OutOrStdout(), text)
			return err
		},
	}
	c.SetHelpFunc(func(c *cobra.Command, _ []string) { _, _ = io.WriteString(c.OutOrStdout(), text) })
	// Help topics appear under "Additional help topics", not as commands.
	c.Run = nil
	c.RunE = nil
	return c
}

const environmentHelp = `Environment variables. Flags win over the environment, which wins over
defaults. oairl never prints an API key; errors and debug output redact it.

  OPENAI_API_KEY      API key sent as "Authorization: Bearer ..." (run, batch,
                      diagnose); to Azure as "api-key: ...". Not needed by count
                      or sim.
  OPENAI_BASE_URL     API base URL (--base-url), default https://api.openai.com/v1.
                      Point it at oairl sim, e.g. http://127.0.0.1:8080/v1.
  OPENAI_ORG_ID       sent as the OpenAI-Organization header
  OPENAI_PROJECT_ID   sent as the OpenAI-Project header
  OAIRL_PROVIDER      server kind (--provider): auto (default: detected from the
                      base URL), openai, azure, groq, openrouter, vllm, anthropic
  OPENAI_API_VERSION  Azure OpenAI api-version (--api-version), default 2024-10-21
  OPENAI_ADMIN_KEY    admin key for 'oairl limits pull' only; never printed or
                      stored
  OAIRL_LIMITS        project limits file written by 'oairl limits pull' (default
                      limits.json in the state directory); used instead of the
                      published tier table when present
  OAIRL_MODELS        model registry override file (--models)
  OAIRL_TIER          default usage tier for --tier (1-5 or free)
  OAIRL_PROXY_TOKEN   token 'oairl proxy' requires of every request (--proxy-token)
  OAIRL_STATE_DIR     where batch job state is kept (default: the user's state
                      directory, $XDG_STATE_HOME/oairl or ~/.local/state/oairl)
  OAIRL_NO_PROGRESS   any value: never draw progress bars (--no-progress)
  OAIRL_BUDGET        Redis URL of the shared budget (--budget): run, batch,
                      proxy and 'oairl budget'
  OAIRL_BUDGET_KEY    budget name when OPENAI_ORG_ID/OPENAI_PROJECT_ID are
                      unset (--budget-key)
  OAIRL_DEBUG         "api": trace every HTTP exchange to stderr (--debug): method,
                      URL, status, timing, headers and the first 2 KB of bodies,
                      the key and bearer tokens masked
  NO_COLOR            any value: no colour. oairl colours only stderr: the
                      "oairl:" error prefix and progress bars, and only on a
                      terminal unless CLICOLOR_FORCE is set
  CLICOLOR            0: no colour
  CLICOLOR_FORCE      set and not 0: colour even off a terminal (wins over
                      NO_COLOR and CLICOLOR)
`

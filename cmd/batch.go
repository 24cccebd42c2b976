package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"

	"github.com/oairl/oairl/batch"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/humanize"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/iostreams"
	"github.com/oairl/oairl/internal/redact"
)

const batchLong = `Run request files through the OpenAI Batch API (half the price, separate
limits), safely: validate, split, queue, wait, merge.

  oairl batch submit requests.jsonl --tier 1 --wait   # prints a job id
  oairl batch status [JOB]                            # shards and their batches
  oairl batch wait JOB                                # until every batch is done
  oairl batch results JOB -o results.jsonl --failed retry.jsonl
  oairl batch cancel JOB
  oairl batch list                                    # recent batches, with their jobs

A job is one submitted input. It is split into shards that each fit one
batch (at most 50,000 requests and 200 MB, one endpoint and one model, no
more tokens than the model's enqueued-token limit), and kept in a local
state file, so rerunning a command resumes it and never creates a second
batch for a shard, also when two commands run at once on the same job
(each step holds a lock on it: .JOB.lock beside the state file). Commands that take JOB also take a batch id.

State: $OAIRL_STATE_DIR, else $XDG_STATE_HOME/oairl, else
~/.local/state/oairl (jobs/JOB.json and jobs/JOB.shards/), or --state FILE.`

func newBatchCmd(f *Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "batch",
		Short: "Submit, split, queue, wait for and merge Batch API jobs, idempotently",
		Long:  batchLong,
	}
	c.AddCommand(
		newBatchSubmitCmd(f, nil),
		newBatchStatusCmd(f, nil),
		newBatchWaitCmd(f, nil),
		newBatchResultsCmd(f, nil),
		newBatchCancelCmd(f, nil),
		newBatchListCmd(f, nil),
	)
	return c
}

// batchStateDir resolves where job state lives: $OAIRL_STATE_DIR, else
// $XDG_STATE_HOME/oairl, else ~/.local/state/oairl.
func batchStateDir(getenv func(string) string) string {
	if d := getenv("OAIRL_STATE_DIR"); d != "" {
		return d
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "oairl")
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".local", "state", "oairl")
}

// batchDeps are the dependencies every batch subcommand shares.
type batchDeps struct {
	IO     *iostreams.IOStreams
	Getenv func(string) string
	// Client returns the Files/Batches client (tests inject a fake or one
	// pointed at the in-process sim).
	Client func() (batch.Client, error)
	// Clock paces polling (tests inject a scaled or fake clock).
	Clock clock.Clock
	// State is --state FILE ("" = the state directory).
	State string
	// BaseURL returns the API base URL in use (jobs remember theirs). It
	// is a func because --base-url is parsed after the command is built:
	// reading the config earlier recorded the default URL (issue 14 §1).
	BaseURL func() string
	// HasKey reports whether an API key is configured.
	HasKey func() bool
	// tune hands the HTTP layer the clock its retry waits run on.
	tune func(clock.Clock)
	// Budget shares the enqueued-token queues through Redis (--budget).
	Budget  BudgetOptions
	factory *Factory
}

// client returns the API client, its retries timed on d.Clock (the
// --time-scale clock, or a test's).
func (d *batchDeps) client() (batch.Client, error) {
	if d.tune != nil {
		d.tune(d.Clock)
	}
	return d.Client()
}

func newBatchDeps(f *Factory) batchDeps {
	return batchDeps{
		IO: f.IOStreams, Getenv: f.Getenv, Clock: clock.Real(), factory: f,
		BaseURL: func() string { return redact.URL(f.Config().BaseURL, f.Config().APIKey) },
		HasKey:  func() bool { return f.Config().APIKey != "" },
		tune:    func(c clock.Clock) { f.SetHTTPTuning(0, c) },
		Client: func() (batch.Client, error) {
			c, err := f.APIClient()
			if err != nil {
				// A missing key is an auth problem (exit 4), as in
				// 'oairl run' and 'oairl diagnose'.
				return nil, exitcode.New(exitcode.Auth, err)
			}
			return batch.NewOpenAIClient(c), nil
		},
	}
}

// checkServer refuses a job submitted to another server than the current
// base URL: its batch and file ids mean nothing (or something unrelated)
// there.
func (d *batchDeps) checkServer(j *batch.Job) error {
	cur := d.baseURL()
	if j.BaseURL == "" || cur == "" || strings.TrimRight(j.BaseURL, "/") == strings.TrimRight(cur, "/") {
		return nil
	}
	return exitcode.Errorf(exitcode.Failure, "job %s was submitted to %s, but the base URL is now %s: its batch ids mean nothing on another server; use --base-url %s (or OPENAI_BASE_URL), or submit the input again there",
		j.ID, j.BaseURL, cur, j.BaseURL)
}

// baseURL is the resolved base URL ("" when none is wired, in tests).
func (d *batchDeps) baseURL() string {
	if d.BaseURL == nil {
		return ""
	}
	return d.BaseURL()
}

func (d *batchDeps) stateDir() string { return batchStateDir(d.Getenv) }

// logWriter is where status lines go: stderr unless --quiet.
func (d *batchDeps) logWriter() io.Writer {
	if d.IO.Quiet {
		return nil
	}
	return d.IO.ErrOut
}

// resolveJob finds the local job for ref (a job id, a batch id, or "" for
// the latest job); for a batch id no local job knows, it returns a job
// holding just that batch (not saved).
func (d *batchDeps) resolveJob(ctx context.Context, ref string) (*batch.Job, batch.Client, error) {
	j, err := batch.FindJob(d.stateDir(), d.State, ref)
	if err == nil {
		if err := d.checkServer(j); err != nil {
			return nil, nil, err
		}
		c, cerr := d.client()
		return j, c, cerr
	}
	if !errors.Is(err, batch.ErrNotFound) || !strings.HasPrefix(ref, "batch_") {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("no job state at %s: %w", d.State, err)
		}
		return nil, nil, err
	}
	c, err := d.client()
	if err != nil {
		return nil, nil, err
	}
	j, err = batch.AdhocJob(ctx, c, ref, d.Clock.Now())
	return j, c, err
}

func addStateFlag(c *cobra.Command, d *batchDeps) {
	c.Flags().StringVar(&d.State, "state", "", "job state file to use instead of the state directory ($OAIRL_STATE_DIR)")
}

// batchTable returns a borderless table like count's.
func batchTable(w io.Writer, header []string) *tablewriter.Table {
	return newTable(w, header, nil, false)
}

// newTable returns the borderless table every command prints for people:
// a rule under the header (and over the footer when footer is set), cells
// aligned per column by align (nil: left), header text as given.
func newTable(w io.Writer, header []string, align []tw.Align, footer bool) *tablewriter.Table {
	lines := tw.Lines{ShowHeaderLine: tw.On}
	if footer {
		lines.ShowFooterLine = tw.On
	}
	t := tablewriter.NewTable(w,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{
			Borders:  tw.BorderNone,
			Symbols:  tw.NewSymbols(tw.StyleLight),
			Settings: tw.Settings{Separators: tw.Separators{BetweenColumns: tw.Off, BetweenRows: tw.Off}, Lines: lines},
		})),
		tablewriter.WithConfig(tablewriter.Config{
			Header: tw.CellConfig{Alignment: tw.CellAlignment{PerColumn: align}, Formatting: tw.CellFormatting{AutoFormat: tw.Off}},
			Row:    tw.CellConfig{Alignment: tw.CellAlignment{PerColumn: align}},
			Footer: tw.CellConfig{Alignment: tw.CellAlignment{PerColumn: align}},
		}),
	)
	t.Header(header)
	return t
}

// batchTime renders a time: RFC 3339 off a TTY, shorter for people.
func batchTime(t time.Time, tty bool) string {
	if t.IsZero() {
		if tty {
			return "—"
		}
		return ""
	}
	if tty {
		return t.Local().Format("2006-01-02 15:04")
	}
	return t.UTC().Format(time.RFC3339)
}

// autoID reports whether id is input.AutoID's id for a bare body on line
// (line-N, or BASE:line-N for later files): not worth printing.
func autoID(id string, line int) bool {
	auto := fmt.Sprintf("line-%d", line)
	return id == auto || strings.HasSuffix(id, ":"+auto)
}

// plural returns "1 shard" / "2 shards", "1 batch" / "2 batches".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	if strings.HasSuffix(word, "ch") {
		return fmt.Sprintf("%d %ses", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// jobOutcome is the exit code of a finished job: 0 when every shard
// completed and no request failed, 7 (partial) otherwise.
func jobOutcome(j *batch.Job) (code int, summary string) {
	c := j.Counts()
	byStatus := map[string]int{}
	for _, s := range j.Shards {
		byStatus[s.Status]++
	}
	var parts []string
	for _, st := range []string{batch.StatusCompleted, batch.StatusFailed, batch.StatusExpired, batch.StatusCancelled} {
		if byStatus[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", byStatus[st], st))
		}
	}
	detail := ""
	if len(parts) > 0 {
		detail = " (" + strings.Join(parts, ", ") + ")"
	}
	batches := "batches"
	if len(j.Shards) == 1 {
		batches = "batch"
	}
	summary = fmt.Sprintf("%s: %d/%d %s terminal%s; %s: %s completed, %s failed",
		j.ID, byStatus[batch.StatusCompleted]+byStatus[batch.StatusFailed]+byStatus[batch.StatusExpired]+byStatus[batch.StatusCancelled],
		len(j.Shards), batches, detail, humanize.Count(int64(c.Total), "request", "requests"), input.Thousands(int64(c.Completed)), input.Thousands(int64(c.Failed)))
	if byStatus[batch.StatusCompleted] != len(j.Shards) || c.Failed > 0 || c.Completed < c.Total {
		return 7, summary
	}
	return 0, summary
}

// waitJob drives j until done (or submitted) with a progress bar on a TTY
// and one line per status change otherwise.
func (d *batchDeps) waitJob(ctx context.Context, j *batch.Job, c batch.Client, until batch.Until, poll, timeout time.Duration, hooks batch.Hooks, onSubmitted func()) error {
	opts := batch.RunOptions{Client: c, Clock: d.Clock, PollInterval: poll, MaxPollInterval: 8 * poll, Until: until, Hooks: hooks, OnSubmitted: onSubmitted}
	if timeout > 0 {
		opts.Deadline = d.Clock.Now().Add(timeout)
	}
	opts.Log = d.logWriter()
	if d.Budget.URL != "" && d.factory != nil {
		q, closeQ, err := newBatchQueue(ctx, d.factory, d.Budget, d.Clock, opts.Log, d.Clock.Wall(3*opts.MaxPollInterval))
		if err != nil {
			return err
		}
		if q != nil {
			defer closeQ()
			opts.Queue = q
		}
	}
	if d.IO.ProgressEnabled() {
		total := j.Counts().Total
		// The bar says which phase the batches are in ("validating" takes
		// minutes with no request done), counts requests without a rate
		// (they complete in jumps) and is erased before any note is
		// printed, so no text is glued to a half-drawn bar.
		bar := d.IO.NewStatusBar(int64(total), phases(j))
		last := 0
		opts.Progress = func(done, _ int) {
			bar.Describe(phases(j))
			if done > last {
				bar.Add(int64(done - last))
				last = done
			}
			bar.Redraw()
		}
		defer bar.Finish()
		if onSubmitted != nil {
			opts.OnSubmitted = func() {
				bar.Clear()
				onSubmitted()
				bar.Redraw()
			}
		}
		opts.Log = bar.Writer(opts.Log)
		// The bar replaces the status lines; notes (queue waits, retries)
		// are still printed.
		opts.NoStatusLines = true
	}
	opts.ModelOf = d.modelOf()
	return batch.Run(ctx, j, opts)
}

// phases describes where a job's shards are, for the progress bar:
// "validating", "2 in_progress, 1 validating", "1 waiting for queue room".
func phases(j *batch.Job) string {
	word := func(st string) string {
		switch st {
		case batch.StatusPending, batch.StatusUploaded:
			return "to submit"
		case batch.StatusUploading, batch.StatusCreating:
			return "submitting"
		}
		return st
	}
	order := []string{"to submit", "submitting", batch.StatusValidating, batch.StatusInProgress, batch.StatusFinalizing, batch.StatusCancelling}
	by := map[string]int{}
	for _, s := range j.Shards {
		by[word(s.Status)]++
	}
	var parts []string
	for _, w := range order {
		switch n := by[w]; {
		case n == 0:
		case len(j.Shards) == 1:
			parts = append(parts, w)
		default:
			parts = append(parts, fmt.Sprintf("%d %s", n, w))
		}
	}
	if len(parts) == 0 {
		return "requests done"
	}
	return strings.Join(parts, ", ")
}

// timeoutErr rewrites the pending error of a --timeout into one that says
// the batches keep running and gives the command that resumes waiting
// (with the --state and --base-url it needs); other errors pass through.
func (d *batchDeps) timeoutErr(err error, j *batch.Job, timeout time.Duration) error {
	if exitcode.Of(err) != exitcode.Pending || !errors.Is(err, batch.ErrTimeout) {
		return err
	}
	cmd := "oairl batch wait " + j.ID
	if d.State != "" {
		cmd += " --state " + shellQuote(d.State)
	}
	if u := d.baseURL(); u != "" && u != DefaultBaseURL && d.Getenv("OPENAI_BASE_URL") == "" {
		cmd += " --base-url " + shellQuote(u)
	}
	return exitcode.Errorf(exitcode.Pending, "--timeout %s passed while batches of %s are still pending; they keep running on the server: resume waiting with '%s'", timeout, j.ID, cmd)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// modelOf returns the model of a batch from the local state of the job
// that created it ("" when no local job knows it; go-openai's Batch has no
// model field).
func (d *batchDeps) modelOf() func(b batch.Batch) string {
	var byBatch map[string]string
	return func(b batch.Batch) string {
		if byBatch == nil {
			byBatch = map[string]string{}
			jobs, _ := batch.ListJobs(d.stateDir())
			for _, j := range jobs {
				for _, s := range j.Shards {
					if s.BatchID != "" {
						byBatch[s.BatchID] = s.Model
					}
				}
			}
		}
		return byBatch[b.ID]
	}
}

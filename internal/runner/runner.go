// Package runner is the engine of `oairl run`: it reads request files
// (JSONL in the Batch API input format, or bare request bodies) through
// internal/input with the same checks as `oairl count`, paces the requests
// under each model's RPM, TPM and concurrency limits (internal/pace), sends
// every body exactly as written to its line's url, classifies every answer
// with the diagnose package, retries what can succeed later, and appends one
// result per request to a results file in the Batch API output format
// (Result), so that `run` and `batch` results are interchangeable.
//
// Retry rules (after openai-go requestconfig.go shouldRetry/retryDelay,
// except that quota errors fail at once):
//   - rate limits (RPM, TPM, RPD, TPD, slow_down, concurrency): wait what
//     the response says (retry-after-ms, retry-after seconds or HTTP-date,
//     "Please try again in …", x-ratelimit-reset-*), else backoff; an RPM or
//     TPM 429 pauses that bucket for every worker; a concurrency 429 halves
//     the in-flight cap;
//   - 5xx, 408, 409 and network errors: exponential backoff with full
//     jitter;
//   - never retried: insufficient_quota and the billing codes (dispatching
//     stops at once, in-flight requests finish, exit 5), 401/403 (stop,
//     exit 4), request_too_large, other 4xx (the line's result records the
//     error);
//   - a wait longer than MaxWait is not slept through: the run stops
//     cleanly (exit 6) and can be resumed later.
//
// Resume: the results file is append-only; every line is written whole with
// one write call; on start a torn last line (from a crash) is truncated
// away (a complete one missing only its "\n" is kept), and every custom_id
// that already has a result (response.status_code or error) for the same
// body fingerprint (oairl_body_sha256) is skipped, so rerunning the same
// command sends only what has no result yet. A success always wins over a
// failure for the same custom_id. A request whose result was written is
// never sent again; requests not answered when a run stops (quota, auth,
// max-wait, Ctrl-C, unreachable server) are simply absent from the file.
// Bare bodies (positional ids line-N) whose body changed are refused (exit
// 3). One run per results file: an flock on ".NAME.lock" beside it.
package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/extsort"
	"github.com/oairl/oairl/internal/humanize"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/provider"
	"github.com/oairl/oairl/internal/redact"
	"github.com/oairl/oairl/internal/send"
	"github.com/oairl/oairl/tokens"
)

var timeZero time.Time

// Poster sends one raw request body. *api.Client implements it.
type Poster interface {
	// Post sends body unchanged to path (e.g. "/v1/chat/completions") and
	// returns the whole answer; err is a transport error (no HTTP answer).
	Post(ctx context.Context, path string, body []byte) (*api.Response, error)
}

// Bar is a progress display (iostreams.Progress implements it).
type Bar interface {
	Add(n int64)
	Describe(s string)
	Finish()
}

// Options configure Run.
type Options struct {
	// Sources are the input files ("-" for Stdin). Each is read twice
	// (validated, then each line read back by offset when sent); a gzip
	// or piped source is copied, decompressed, to a temporary file beside
	// Output during the first read.
	Sources []input.Source
	// Stdin is read for the source "-".
	Stdin io.Reader
	// Output is the results file (required); created, or appended to.
	Output string
	// Client sends the requests (required unless DryRun).
	Client Poster
	// Registry resolves models (required) and Counter counts tokens
	// (default tokens.NewCounter with AssumeOutput).
	Registry *models.Registry
	Counter  *tokens.Counter
	// Model is used for lines whose body names none (--model); it is
	// inserted into such a body before sending.
	Model string
	// AssumeOutput is the output budget in tokens assumed for a request
	// that sets none (--assume-output).
	AssumeOutput int64

	// Tier selects the published limits of a usage tier ("free", "1".."5").
	Tier string
	// RPM, TPM override the limits for every model (requests/tokens per
	// minute). With neither Tier nor RPM/TPM, limits are learned from the
	// x-ratelimit-limit-* headers of the first responses.
	RPM, TPM int64
	// MaxConcurrent is the most requests in flight (default 50).
	MaxConcurrent int
	// Headroom is the fraction of each limit used (default 0.9).
	Headroom float64
	// MaxAttempts is the most attempts per request, first included
	// (default 8).
	MaxAttempts int
	// MaxWait is the longest server-requested wait that is slept through
	// (default 2m); a longer one stops the run (exit 6, resumable).
	MaxWait time.Duration
	// Grace is how long in-flight requests may take to finish after ctx is
	// cancelled (first Ctrl-C), in wall time (0: abandoned at once; the
	// command's default is 30s).
	Grace time.Duration

	// Strict refuses to send anything when a line is invalid (exit 3).
	Strict bool
	// Ordered rewrites the results file in input order at the end.
	Ordered bool
	// RetryFailed sends again the lines whose recorded result is a
	// retryable failure (5xx, rate limit, network error); their old lines
	// are removed first.
	RetryFailed bool
	// DryRun prints the schedule (per model: requests, TPM charge, minutes
	// needed at the limits, requests refused) and sends nothing.
	DryRun bool

	// AttemptTimeout bounds one HTTP attempt in wall time (default 10m,
	// the SDKs' 600 s); a timed-out attempt is a network error, retried.
	AttemptTimeout time.Duration

	// HardContext is cancelled on a second Ctrl-C: in-flight requests are
	// abandoned (their lines stay unanswered, to be resumed).
	HardContext context.Context
	// Clock paces and waits (default the wall clock; clock.Scaled for
	// --time-scale).
	Clock clock.Clock
	// Seed seeds backoff jitter and result ids (0: a random seed).
	Seed uint64
	// APIKey is masked (internal/redact) in every message and stored
	// error message, and as a string in stored response bodies.
	APIKey string
	// BaseURL names the server in the "cannot reach" message.
	BaseURL string
	// Heartbeat is the wall-time period of a plain "progress: …" line on
	// Log when there is no progress bar (CI logs); 0: none. Not under
	// Quiet.
	Heartbeat time.Duration
	// Limiter overrides the in-process pace.Local (e.g. shared budgets).
	Limiter pace.Limiter
	// NewLimiter, when set (and Limiter is not), builds the limiter from
	// the run's pace.Config (clock, headroom, in-flight cap, the limits of
	// --tier/--rpm/--tpm, events), e.g. a shared Redis budget; an error
	// stops the run before anything is sent. A limiter that is an
	// io.Closer is closed when the run ends.
	NewLimiter func(pace.Config) (pace.Limiter, error)
	// Provider is the server's kind (internal/provider; zero: OpenAI):
	// how its answers and rate-limit windows are read.
	Provider provider.Provider
	// FlexFallback, when > 0, resends a service_tier "flex" request as
	// "auto" after that many 429 resource_unavailable answers (flex
	// capacity misses back off without pausing the rate-limit buckets).
	FlexFallback int

	// Out receives the --dry-run schedule (stdout).
	Out io.Writer
	// Log receives hints, problems and state-change lines (stderr); nil
	// discards them. Quiet silences state-change lines and hints.
	Log   io.Writer
	Quiet bool
	// NewBar, when set, returns a progress bar for total requests (only
	// on a terminal).
	NewBar func(total int64) Bar
}

// Run sends the requests and writes their results. The returned Summary is
// filled even on error; Summary.ExitCode is the exit code the command
// should end with (worst of all that happened). err is a setup failure
// (unreadable input or results file), with its exit code attached.
func Run(ctx context.Context, o Options) (*Summary, error) {
	r, err := newRun(o)
	if err != nil {
		return &Summary{ExitCode: exitcode.Failure}, err
	}
	return r.run(ctx)
}

type job struct {
	idx      int
	customID string
	file     string
	line     int
	url      string
	body     []byte
	fp       string // bodyFingerprint(body)
	// Set by the one worker carrying the job, read after the workers end.
	reached   bool // an attempt reached the server (sent)
	written   bool // its result line was written
	abandoned bool // in flight when the requests were abandoned
	model     string
	charge    int64
	res       models.Resolution
}

type run struct {
	// seed hashes custom_ids (resume index, --ordered) and lines.
	seed maphash.Seed
	// order is the input order for --ordered: custom_id hash, position and
	// current body fingerprint of every valid request (sorted on disk).
	order *extsort.Sorter[orderEntry]
	// inputs reads the requests back by offset (stream.go); names interns
	// the models and urls of jobRec.
	inputs  *inputFiles
	names   []string
	nameIdx map[string]uint32
	// Outcomes of the sending pass (dispatch).
	nSent, nUnsent, nAbandoned, nStopped atomic.Int64

	o       Options
	clk     clock.Clock
	log     io.Writer
	lim     pace.Limiter
	local   *pace.Local
	backoff *pace.Backoff
	cycle   *send.Cycle
	results *resultsFile
	sum     *Summary

	mu       sync.Mutex
	codes    []int
	stopMsg  string
	models   map[string]*ModelSummary
	res      map[string]models.Resolution
	started  time.Time
	firstAt  time.Time
	lastAt   time.Time
	done     atomic.Int64
	rl429    atomic.Int64
	bar      Bar
	progress sync.Mutex
	stop     *stopState
	shown    atomic.Int64 // failure lines printed
	// events are the successes per model (rates), 16 bytes each, their
	// slices made to the model's number of requests to send up front (no
	// growth copies).
	events map[string][]doneEvent
	// toSend and chargeOf are the requests and TPM charge (tokens) to send
	// per model, for the daily-limit budget (dailyLimit).
	toSend   map[string]int
	chargeOf map[string]int64
}

// doneEvent is one success: when (run clock, Unix nanoseconds) and its TPM
// charge.
type doneEvent struct {
	at     int64
	charge int64
}

// unreachableStop is how many consecutive connection-refused/DNS failures,
// with no HTTP answer yet in the run, stop dispatching ("cannot reach").
const unreachableStop = send.UnreachableStop

// redact masks the API key (and anything that looks like a key) in s.
func (r *run) redact(s string) string { return redact.String(s, r.o.APIKey) }

// redactBody masks the API key in a stored body, in any form the server
// may echo it (JSON-escaped, without its prefix; see redact.Body). The
// result is valid JSON when b is.
func (r *run) redactBody(b json.RawMessage) json.RawMessage {
	return redact.Body(b, r.o.APIKey)
}

func newRun(o Options) (*run, error) {
	if o.Output == "" && !o.DryRun {
		return nil, exitcode.Errorf(exitcode.Usage, "no results file: pass -o results.jsonl")
	}
	if o.Registry == nil {
		o.Registry = models.Default()
	}
	if o.Counter == nil {
		o.Counter = tokens.NewCounter(tokens.Options{Registry: o.Registry, AssumeOutput: o.AssumeOutput})
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 50
	}
	if o.Headroom <= 0 || o.Headroom > 1 {
		o.Headroom = 0.9
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 2 * time.Minute
	}
	if o.Grace < 0 {
		o.Grace = 0
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 10 * time.Minute
	}
	if o.HardContext == nil {
		o.HardContext = context.Background()
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	// BaseURL is only ever printed: a key in it (?api-key=, userinfo) is
	// masked once, here.
	o.BaseURL = redact.URL(o.BaseURL, o.APIKey)
	r := &run{o: o, clk: o.Clock, log: o.Log, models: map[string]*ModelSummary{}, res: map[string]models.Resolution{}, events: map[string][]doneEvent{},
		seed: maphash.MakeSeed(), nameIdx: map[string]uint32{}}
	if r.log == nil {
		r.log = io.Discard
	}
	r.backoff = pace.NewBackoff(o.Seed)
	r.sum = &Summary{FailedByKind: map[string]int{}, RateLimited: map[string]int{}}
	return r, nil
}

// limitsFor returns the configured limits of a model (flags win over the
// tier table); zero fields are learned from headers.
//
// model may be a model name or a limiter key (models.Registry.LimitKey: a
// shared-limit group's id): a group's limits are its own.
func (r *run) limitsFor(model string) pace.Limits {
	return send.TierLimits(r.o.Registry, r.o.Tier, r.o.RPM, r.o.TPM)(model)
}

func (r *run) addCode(c int) {
	r.mu.Lock()
	r.codes = append(r.codes, c)
	r.mu.Unlock()
}

func (r *run) logf(format string, args ...any) {
	if r.o.Quiet {
		return
	}
	r.progress.Lock()
	defer r.progress.Unlock()
	if c, ok := r.bar.(interface{ Clear() }); ok {
		c.Clear()
	}
	fmt.Fprintln(r.log, r.redact(fmt.Sprintf(format, args...)))
}

// problemf prints a problem line even under Quiet (it is an error report).
func (r *run) problemf(format string, args ...any) {
	r.progress.Lock()
	defer r.progress.Unlock()
	if c, ok := r.bar.(interface{ Clear() }); ok {
		c.Clear()
	}
	fmt.Fprintln(r.log, r.redact(fmt.Sprintf(format, args...)))
}

func (r *run) model(name string) *ModelSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.models[name]
	if m == nil {
		m = &ModelSummary{Model: name}
		r.models[name] = m
	}
	return m
}

const maxProblemsShown = 20

// batchOnly are the file warnings (input.Scan's, shared with count) about
// the Batch API's own rules, which run (one request at a time) does not
// have: run does not repeat them (issue 14 §7).
var batchOnly = map[string]bool{"several_models": true, "over_batch_requests": true, "over_batch_bytes": true}

func (r *run) run(ctx context.Context) (*Summary, error) {
	o := r.o
	sum := r.sum
	r.started = r.clk.Now()

	// 0. The results file must not be an input file (a copy of the input
	// as -o, a symlink or hard link to it): nothing would be sent.
	if o.Output != "" {
		if ost, err := os.Stat(o.Output); err == nil {
			for _, src := range o.Sources {
				if src.Name == "" || src.Name == "-" {
					continue
				}
				if ist, err := os.Stat(src.Name); err == nil && os.SameFile(ost, ist) {
					sum.ExitCode = exitcode.Usage
					return sum, exitcode.Errorf(exitcode.Usage, "the results file %s is the input file %s (same file): pass another -o", o.Output, src.Name)
				}
			}
		}
	}
	// Only one run per results file (two would send everything twice).
	if !o.DryRun {
		unlock, err := lockOutput(o.Output)
		if err != nil {
			sum.ExitCode = exitcode.Failure
			return sum, err
		}
		defer unlock()
	}

	// 1. What an earlier run already answered (read only: nothing is
	// created or changed before we know we will send).
	rep, err := loadResults(o.Output)
	if o.DryRun && err != nil {
		rep, err = newLoadReport(), nil
	}
	if err != nil {
		sum.ExitCode = exitcode.Failure
		return sum, err
	}
	var skippedFailed, skippedRetryable, changedExplicit, changedBareN int
	var changedBare []string

	// 2. Read and validate the input, in one streaming pass: what is to be
	// sent goes to a spool of fixed-size records (stream.go), not memory;
	// the lines are read back from the files when they are sent.
	dir := os.TempDir()
	if o.Output != "" {
		dir = filepath.Dir(o.Output)
	}
	r.inputs = newInputFiles(dir, o.Sources)
	defer r.inputs.close()
	var jobs *extsort.Spool[jobRec]
	if !o.DryRun {
		if jobs, err = extsort.NewSpool(dir, jobRecWidth, encJobRec, decJobRec); err != nil {
			sum.ExitCode = exitcode.Failure
			return sum, fmt.Errorf("creating a temporary file in %s: %w", dir, err)
		}
		defer jobs.Close()
		if o.Ordered {
			r.order = newOrderLog(dir)
			defer r.order.Close()
		}
	}
	plan := map[string]*planAgg{}  // --dry-run
	sendModels := map[string]int{} // requests to send per model
	sendCharge := map[string]int64{}
	var tooLarge []*job
	toSend := 0
	var pos uint64
	shown := 0
	// run sends each line to its own url: a file may mix endpoints.
	scanOpts := input.Options{Registry: o.Registry, Counter: o.Counter, Model: o.Model, Stdin: o.Stdin, MixedEndpoints: true}
	if !o.DryRun {
		scanOpts.Spill = r.inputs.spill
	}
	scanSum, err := input.Scan(ctx, o.Sources, scanOpts, func(q *input.Request) error {
		sum.Requests++
		if !q.Valid() {
			sum.Invalid++
			for _, p := range q.Problems {
				if p.Severity != tokens.Error {
					continue
				}
				if shown < maxProblemsShown {
					r.problemf("%s:%d: %s: %s [%s]", p.File, p.Line, displayID(p.CustomID), p.Message, p.Code)
				}
				shown++
			}
			return nil
		}
		r.mu.Lock()
		if _, ok := r.res[q.Model]; !ok {
			r.res[q.Model] = q.Resolution
		}
		r.mu.Unlock()
		body := []byte(q.Body)
		if o.Model != "" {
			// --model fills in a body that names no model; others are
			// sent exactly as written.
			body = withModel(body, q.Model)
		}
		fp := bodyFingerprint(body)
		if r.order != nil {
			if err := r.order.Add(orderEntry{id: maphash.String(r.seed, q.CustomID), pos: pos, fp: fpNum(r.seed, fp)}); err != nil {
				return err
			}
			pos++
		}
		if st, ok, mismatch := rep.lookup(q.CustomID, fp); mismatch {
			if q.Bare {
				changedBareN++
				if len(changedBare) < 3 {
					changedBare = append(changedBare, fmt.Sprintf("%s:%d (%s)", q.File, q.Line, q.CustomID))
				}
				return nil
			}
			changedExplicit++
			if changedExplicit <= maxProblemsShown {
				r.problemf("%s:%d: custom_id %s: warning: %s holds a result for this custom_id but for a different body; the line changed, so it is sent again", q.File, q.Line, q.CustomID, o.Output)
			}
		} else if ok && !(o.RetryFailed && st == recRetryable) {
			sum.Skipped++
			switch st {
			case recFailed:
				skippedFailed++
			case recRetryable:
				skippedRetryable++
			}
			return nil
		} else if ok {
			rep.Dropped++
		}
		// Requests that can never be admitted: charge over the TPM limit.
		if l := r.limitsFor(q.Model); l.TPM > 0 && q.Count.TPMCharge > l.TPM {
			tooLarge = append(tooLarge, &job{customID: q.CustomID, file: q.File, line: q.Line, fp: fp, model: q.Model,
				charge: q.Count.TPMCharge, res: q.Resolution})
			return nil
		}
		toSend++
		sendModels[q.Model]++
		sendCharge[q.Model] += q.Count.TPMCharge
		if o.DryRun {
			a := plan[q.Model]
			if a == nil {
				a = &planAgg{}
				plan[q.Model] = a
			}
			a.n++
			a.charge += q.Count.TPMCharge
			a.big = max(a.big, q.Count.TPMCharge)
			return nil
		}
		return jobs.Add(jobRec{off: q.Offset, size: q.Size, line: int64(q.Line), fp: fpNum(r.seed, fp),
			rawHash: maphash.Bytes(r.seed, q.Raw), charge: q.Count.TPMCharge, src: uint32(q.Source),
			model: r.intern(q.Model), url: r.intern(q.URL), bare: q.Bare})
	})
	if shown > maxProblemsShown {
		r.problemf("... and %d more problems (oairl count lists them all)", shown-maxProblemsShown)
	}
	if err != nil {
		if ctx.Err() != nil {
			sum.ExitCode = exitcode.Interrupted
			sum.StopReason = "interrupted while reading the input"
			return r.finish()
		}
		// A source that cannot be opened or read: exit 1, as in count and
		// batch submit ('oairl help exit-codes').
		sum.ExitCode = exitcode.Failure
		return sum, exitcode.New(exitcode.Failure, err)
	}
	if changedBareN > 0 {
		sum.ExitCode = exitcode.Input
		ex := changedBare
		if changedBareN > len(ex) {
			ex = append(ex, "…")
		}
		return sum, exitcode.Errorf(exitcode.Input, "the input changed since %s was written: %d lines without a custom_id (auto ids line-N) now have a different body than the result recorded for their line number (%s); their results would be attributed to the wrong request. Give every line an explicit custom_id (Batch input format) or use a new -o; nothing was sent",
			o.Output, changedBareN, strings.Join(ex, ", "))
	}
	if skippedFailed+skippedRetryable > 0 {
		// Recorded failures are part of this input's outcome: exit 7.
		sum.SkippedFailed = skippedFailed + skippedRetryable
		r.addCode(exitcode.Partial)
		hint := "they are final (4xx: fix the lines, then resend them with a new -o or by deleting their lines)"
		if skippedRetryable > 0 {
			hint = fmt.Sprintf("%d of them retryable: rerun with --retry-failed to send those again", skippedRetryable)
		}
		r.problemf("%s already holds %d failed results for this input (not sent again): %s", o.Output, skippedFailed+skippedRetryable, hint)
	}
	for _, p := range scanSum.FileProblems {
		if p.Severity == tokens.Error {
			r.problemf("%s:%d: %s [%s]", p.File, p.Line, p.Message, p.Code)
		} else if !o.Quiet && p.Severity == tokens.Warning && !batchOnly[p.Code] {
			r.logf("%s: warning: %s [%s]", p.File, p.Message, p.Code)
		}
	}

	for _, j := range tooLarge {
		r.problemf("%s:%d: %s: needs ~%d rate-limit tokens per request (prompt + output budget), which exceeds the %s limit of %d TPM; it can never be sent. Lower max_tokens or raise the limit [request_too_large]",
			j.file, j.line, displayID(j.customID), j.charge, j.model, r.limitsFor(j.model).TPM)
	}

	if o.DryRun {
		r.printSchedule(plan, toSend, tooLarge)
		sum.ExitCode = exitcode.OK
		if sum.Invalid > 0 && o.Strict {
			sum.ExitCode = exitcode.Input
		}
		if toSend == 0 && len(tooLarge) == 0 && sum.Skipped == 0 {
			// The same verdict as the real run: nothing could be sent.
			sum.ExitCode = exitcode.Input
			return sum, exitcode.Errorf(exitcode.Input, "no valid request to send (%s, %d invalid)", humanize.Count(int64(sum.Requests), "line", "lines"), sum.Invalid)
		}
		return sum, nil
	}

	if o.Strict && (sum.Invalid > 0 || len(tooLarge) > 0) {
		sum.ExitCode = exitcode.Input
		return sum, exitcode.Errorf(exitcode.Input, "--strict: %d invalid lines, %d requests too large; nothing was sent", sum.Invalid, len(tooLarge))
	}
	if toSend == 0 && len(tooLarge) == 0 {
		if sum.Skipped > 0 {
			if rep.TornBytes > 0 || r.order != nil {
				// Still remove a torn last line (its custom_id is not in this
				// input, or it would be sent); --ordered still rewrites the
				// file in input order (finish).
				if err := r.openOutput(&rep); err != nil {
					sum.ExitCode = exitcode.Failure
					return sum, err
				}
			}
			if rep.TornBytes == 0 && r.order == nil {
				r.reportBadLines(rep.BadLines, rep.BadN)
			}
			if sum.Skipped == 1 {
				r.logf("nothing to send: the 1 request already has a result in %s", o.Output)
			} else {
				r.logf("nothing to send: all %s already have a result in %s", humanize.Count(int64(sum.Skipped), "request", "requests"), o.Output)
			}
			if r.order != nil {
				r.logf("--ordered: rewriting %s in input order", o.Output)
			}
			sum.ExitCode = exitcode.OK
			if skippedFailed+skippedRetryable > 0 {
				r.addCode(exitcode.Partial)
			}
			if sum.Invalid > 0 {
				// Skipped invalid lines have no result line: exit 3, as
				// count (the worst wins).
				r.addCode(exitcode.Input)
			}
			return r.finish()
		}
		sum.ExitCode = exitcode.Input
		return sum, exitcode.Errorf(exitcode.Input, "no valid request to send (%s, %d invalid)", humanize.Count(int64(sum.Requests), "line", "lines"), sum.Invalid)
	}
	if sum.Invalid > 0 {
		// Skipped invalid lines have no result line: exit 3 (invalid
		// input), not 7 (failed lines are in the results file).
		r.addCode(exitcode.Input)
	}
	if err := r.inputs.flush(); err != nil {
		sum.ExitCode = exitcode.Failure
		return sum, err
	}
	if err := r.openOutput(&rep); err != nil {
		sum.ExitCode = exitcode.Failure
		return sum, err
	}
	rep = loadReport{} // the resume index is no longer needed
	defer r.results.close()
	for _, j := range tooLarge {
		ms := r.model(j.model)
		r.mu.Lock()
		ms.Failed++
		r.mu.Unlock()
		r.recordFailureKind("request_too_large")
		lim := r.limitsFor(j.model).TPM
		if err := r.results.write(&Result{CustomID: j.customID, BodySHA256: j.fp, Error: &ResultError{Code: "request_too_large",
			Message: fmt.Sprintf("needs %d rate-limit tokens (prompt + output budget), over the %s limit of %d TPM; never sent", j.charge, j.model, lim)}}); err != nil {
			sum.ExitCode = exitcode.Failure
			return sum, err
		}
		r.addCode(exitcode.Partial)
	}
	sum.ToSend = toSend

	// 3. Pace and send.
	r.lim = o.Limiter
	if r.lim == nil {
		pc := pace.Config{Clock: r.clk, Headroom: o.Headroom, MaxConcurrent: o.MaxConcurrent,
			Limits: r.limitsFor, Events: func(e pace.Event) { r.logf("%s: %s", e.Model, e.Message) }}
		if o.NewLimiter != nil {
			lim, err := o.NewLimiter(pc)
			if err != nil {
				sum.ExitCode = exitcode.Failure
				return sum, exitcode.Errorf(exitcode.Failure, "%w; nothing was sent", err)
			}
			r.lim = lim
			if c, ok := lim.(io.Closer); ok {
				defer c.Close()
			}
		} else {
			r.local = pace.New(pc)
			r.lim = r.local
		}
	}
	r.cycle = send.NewFor(o.Registry, o.Provider, send.Config{Limiter: r.lim, Clock: r.clk, Backoff: r.backoff, MaxAttempts: o.MaxAttempts,
		MaxWait: o.MaxWait, AttemptTimeout: o.AttemptTimeout, FlexFallback: o.FlexFallback, FollowCharge: true,
		Secrets: []string{o.APIKey}})
	r.toSend, r.chargeOf = sendModels, sendCharge
	for _, name := range slices.Sorted(maps.Keys(sendModels)) {
		m := r.model(name)
		l := r.limitsFor(name)
		r.mu.Lock()
		m.RPMLimit, m.TPMLimit = l.RPM, l.TPM
		r.events[name] = make([]doneEvent, 0, sendModels[name])
		r.mu.Unlock()
	}
	if o.NewBar != nil {
		r.bar = o.NewBar(int64(toSend))
	}
	hbDone := make(chan struct{})
	hbEnded := make(chan struct{})
	go func() { defer close(hbEnded); r.heartbeat(hbDone) }()
	r.dispatch(ctx, jobs, toSend)
	close(hbDone)
	<-hbEnded
	if r.bar != nil {
		r.bar.Finish()
	}
	return r.finish()
}

// displayID renders a custom_id for messages.
func displayID(id string) string {
	if id == "" {
		return "(no custom_id)"
	}
	return fmt.Sprintf("custom_id %q", id)
}

// withModel inserts "model" into a body that names none (--model).
func withModel(body []byte, model string) []byte {
	if model == "" {
		return body
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) != nil {
		return body
	}
	if _, ok := probe["model"]; ok {
		return body
	}
	i := bytes.IndexByte(body, '{')
	if i < 0 {
		return body
	}
	m, _ := json.Marshal(model)
	var b bytes.Buffer
	b.Write(body[:i+1])
	b.WriteString(`"model":`)
	b.Write(m)
	if len(probe) > 0 {
		b.WriteByte(',')
	}
	b.Write(body[i+1:])
	return b.Bytes()
}

// stopState records why dispatching stopped.
type stopState struct {
	once   sync.Once
	cancel context.CancelFunc
	code   int
	msg    string
	redact func(string) string
}

func (s *stopState) stop(code int, msg string) {
	if s.redact != nil {
		msg = s.redact(msg)
	}
	s.once.Do(func() {
		s.code, s.msg = code, msg
		s.cancel()
	})
}

// dispatch sends the total jobs of the spool: one feeder reads them back
// (the line from its file, stream.go) just before a worker takes them, so
// at most MaxConcurrent bodies are in memory.
func (r *run) dispatch(ctx context.Context, jobs *extsort.Spool[jobRec], total int) {
	o := r.o
	// stopCtx ends dispatching and waits between attempts: on Ctrl-C (ctx)
	// or a run-wide stop (quota, auth, max-wait).
	stopCtx, cancelStop := context.WithCancel(ctx)
	defer cancelStop()
	st := &stopState{cancel: cancelStop, redact: r.redact}
	r.stop = st
	// reqCtx carries the requests in flight: cancelled on the second
	// Ctrl-C, or Grace after the first.
	reqCtx, cancelReq := context.WithCancel(o.HardContext)
	defer cancelReq()
	graceDone := make(chan struct{})
	go func() {
		defer close(graceDone)
		select {
		case <-ctx.Done():
			t := time.NewTimer(o.Grace)
			defer t.Stop()
			select {
			case <-t.C:
				cancelReq()
			case <-reqCtx.Done():
			}
		case <-reqCtx.Done():
		}
	}()

	queue := make(chan *job)
	var wg sync.WaitGroup
	workers := min(o.MaxConcurrent, total)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				r.send(stopCtx, reqCtx, st, j)
				r.tally(j)
			}
		}()
	}
	fed := 0
	errStopped := errors.New("stopped")
	err := jobs.Each(func(rec jobRec) error {
		if stopCtx.Err() != nil {
			return errStopped
		}
		j, err := r.reread(rec)
		if err != nil {
			return err
		}
		select {
		case <-stopCtx.Done():
			return errStopped
		case queue <- j:
			fed++
			return nil
		}
	})
	if err != nil && !errors.Is(err, errStopped) {
		r.problemf("%v", err)
		st.stop(exitcode.Failure, fmt.Sprintf("cannot read the input back: %v; rerun the same command to send the rest", err))
	}
	close(queue)
	wg.Wait()
	cancelReq()
	<-graceDone

	r.sum.Sent = int(r.nSent.Load())
	r.sum.Abandoned = int(r.nAbandoned.Load())
	r.sum.Unsent = int(r.nUnsent.Load()) + total - fed
	r.sum.NoResult = int(r.nStopped.Load()) + r.sum.Unsent + r.sum.Abandoned
	switch {
	case ctx.Err() != nil:
		r.addCode(exitcode.Interrupted)
		r.sum.StopReason = "interrupted"
	case st.code != 0:
		r.addCode(st.code)
		r.sum.StopReason = st.msg
	}
}

// tally counts what became of a job once its worker is done with it.
func (r *run) tally(j *job) {
	if j.reached {
		r.nSent.Add(1)
	}
	switch {
	case j.written:
	case j.abandoned:
		r.nAbandoned.Add(1)
	case !j.reached:
		r.nUnsent.Add(1)
	default:
		r.nStopped.Add(1) // sent, then stopped before a final answer
	}
}

// send carries one request through the shared cycle (internal/send). It
// returns when the request has a written result or will not get one in
// this run.
func (r *run) send(stopCtx, reqCtx context.Context, st *stopState, j *job) {
	o := r.o
	ms := r.model(j.model)
	res := r.cycle.Do(stopCtx, reqCtx, send.Request{
		Model:  j.model,
		Charge: j.charge,
		FlexFallback: func() {
			if b, ok := send.WithServiceTier(j.body, "auto"); ok {
				r.logf("%s:%d custom_id %s: flex capacity unavailable %d times; resending with service_tier \"auto\" (standard price)",
					j.file, j.line, displayID(j.customID), o.FlexFallback)
				j.body = b
			}
		},
		Attempt: func(ctx context.Context) (*send.Answer, error) {
			resp, err := o.Client.Post(ctx, j.url, j.body)
			if err != nil {
				return nil, err
			}
			return &send.Answer{Response: *resp}, nil
		},
		Hooks: send.Hooks{
			Sending: func(attempt int) {
				if attempt == 1 {
					r.mu.Lock()
					if r.firstAt.IsZero() {
						r.firstAt = r.clk.Now()
					}
					r.mu.Unlock()
				}
			},
			Attempted: func(int) {
				r.mu.Lock()
				r.sum.Attempts++
				ms.Attempts++
				r.mu.Unlock()
			},
			Failed: func(f diagnose.Finding) {
				if f.Verdict == diagnose.RPDLimited || f.Verdict == diagnose.TPDLimited {
					r.dailyLimit(st, ms, j, f)
				}
				if f.Verdict == diagnose.QuotaExhausted {
					r.mu.Lock()
					r.sum.QuotaErrors++
					r.mu.Unlock()
				} else if f.Status == 429 || f.IsRateLimit() {
					r.count429(ms, f)
				}
			},
			Retrying: func(diagnose.Finding, time.Duration) {
				r.mu.Lock()
				r.sum.Retries++
				ms.Retries++
				r.mu.Unlock()
			},
			Stopping: func(out send.Outcome, f diagnose.Finding) {
				r.stopFor(st, out, f, j)
			},
		},
	})
	if res.Reached {
		j.reached = true
	}
	f := res.Finding
	var resp *api.Response
	if res.Answer != nil {
		resp = &res.Answer.Response
	}
	switch res.Outcome {
	case send.Succeeded:
		r.success(j, ms, resp, res.At)
	case send.Failed:
		r.finalFailure(j, ms, resp, res.Code, res.Message, res.GaveUp)
		if f.Verdict == diagnose.ModelUnavailable && !res.GaveUp {
			r.addCode(exitcode.Auth)
		}
		if res.GaveUp && (f.IsRateLimit() || f.Verdict == diagnose.EdgeThrottled) {
			r.addCode(exitcode.RateLimited)
		}
	case send.QuotaExhausted, send.AuthFailed:
		r.stopFor(st, res.Outcome, f, j) // already stopped by the Stopping hook
	case send.WrongEndpoint:
		// Nothing reached the API proper: no result, not counted as sent.
		j.reached = false
		r.stopFor(st, res.Outcome, f, j)
	case send.WaitTooLong:
		how := f.Wait.Round(time.Second).String()
		if f.Wait > 1000*time.Hour && resp != nil {
			how = "longer than --max-wait (" + firstNonEmpty(resp.Header.Get("retry-after"), how) + "s)"
		}
		st.stop(exitcode.RateLimited, fmt.Sprintf("%s: server asked to wait %s (%s, custom_id %s); rerun later or raise --max-wait",
			f.Verdict, how, j.model, j.customID))
	case send.Unreachable:
		// Nothing has reached the server: a wrong base URL or no network.
		// Stop rather than retry every request; no result is written, so
		// a rerun sends them all.
		st.stop(exitcode.Failure, fmt.Sprintf("cannot reach %s: %s (%d attempts in a row could not connect and none got an answer); check --base-url / OPENAI_BASE_URL and the network, then rerun the same command",
			firstNonEmpty(redact.URL(o.BaseURL, o.APIKey), "the API"), f.Code, res.Unreachable))
	case send.Abandoned:
		// Second Ctrl-C or grace over: no result, resumable. The request
		// went out and may have been processed: counted as sent.
		j.abandoned = true
	case send.NotAdmitted, send.Stopped:
		// Stopped: not sent (again), resumable.
	}
}

// dailyLimit acts on a 429 that names a daily window (RPD, TPD; case B38
// of issue 14 §2): "… per day (RPD): Limit 10000, Used 10000 … try again
// in 8.64s" is one slot of a rolling day refilling, so the sustainable
// rate is limit ÷ 86,400 per second. When the model's requests still to
// send (or their TPM charge, for TPD) need longer than --max-wait at that
// rate, dispatching stops at once (exit 6, resumable) with when the daily
// budget allows the rest, instead of a retry storm at every short reset.
// Otherwise the cycle's pause keeps the model to about one request per
// refill (pace.Backoff never waits less than the server says).
func (r *run) dailyLimit(st *stopState, ms *ModelSummary, j *job, f diagnose.Finding) {
	limit := send.DailyLimit(f)
	if limit <= 0 {
		return // the window's size is unknown: the usual retries
	}
	r.mu.Lock()
	done := ms.Succeeded + ms.Failed
	left := max(1, r.toSend[j.model]-done)
	leftTok := max(j.charge, r.chargeOf[j.model]-ms.Charged)
	r.mu.Unlock()
	day := 24 * time.Hour
	need := time.Duration(float64(day) * float64(left) / float64(limit))
	what := fmt.Sprintf("%s left", humanize.Count(int64(left), "request", "requests"))
	if f.Verdict == diagnose.TPDLimited {
		need = time.Duration(float64(day) * float64(leftTok) / float64(limit))
		what = fmt.Sprintf("%s left (%s tokens of TPM charge)", humanize.Count(int64(left), "request", "requests"), humanize.Int(leftTok))
	}
	if need <= r.o.MaxWait {
		return
	}
	rate := fmt.Sprintf("one request every %s", time.Duration(float64(day)/float64(limit)).Round(10*time.Millisecond))
	unit := "requests"
	if f.Verdict == diagnose.TPDLimited {
		rate, unit = fmt.Sprintf("%.1f tokens a second", float64(limit)/day.Seconds()), "tokens"
	}
	st.stop(exitcode.RateLimited, fmt.Sprintf("%s: daily limit reached (%s %s per day): a rolling day frees %s, so the %s need about %s at that rate, longer than --max-wait %s; stopped at once. The daily budget allows the rest in about %s (or when the organization's daily window resets); rerun the same command then: the results file is resumable",
		j.model, humanize.Int(limit), unit, rate, what, need.Round(time.Second), r.o.MaxWait, need.Round(time.Minute)))
}

// stopFor stops dispatching for an outcome that ends the whole run
// (quota, auth, a wrong endpoint), with the reason and the remedy.
func (r *run) stopFor(st *stopState, out send.Outcome, f diagnose.Finding, j *job) {
	switch out {
	case send.QuotaExhausted:
		st.stop(exitcode.Quota, fmt.Sprintf("%s (%s:%d, custom_id %s): %s — not a rate limit; waiting will not fix it. Check billing and the project's budget, then rerun the same command to send the rest",
			firstNonEmpty(f.Code, "insufficient_quota"), j.file, j.line, j.customID, f.Message))
	case send.AuthFailed:
		st.stop(exitcode.Auth, fmt.Sprintf("authentication failed (HTTP %d, %s:%d, custom_id %s): %s", f.Status, j.file, j.line, j.customID, f.Message))
	case send.WrongEndpoint:
		what := fmt.Sprintf("HTTP %d %s", f.Status, firstNonEmpty(f.Message, string(f.Verdict)))
		if f.Verdict == diagnose.NotAPIResponse {
			what = fmt.Sprintf("not an API response (HTTP %d, %s: %q)", f.Status, firstNonEmpty(f.ContentType, "no content type"), f.Message)
		}
		st.stop(exitcode.Failure, fmt.Sprintf("the endpoint is wrong, not the requests: %d answers in a row were %s; check --base-url / OPENAI_BASE_URL (now %s), then rerun the same command: nothing was recorded",
			send.EndpointStop, what, firstNonEmpty(r.o.BaseURL, "the default")))
	}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func (r *run) count429(ms *ModelSummary, f diagnose.Finding) {
	kind := send.LimitKind(f)
	if f.Status != 429 {
		return
	}
	r.rl429.Add(1)
	r.mu.Lock()
	r.sum.RateLimited[kind]++
	if ms.RateLimited == nil {
		ms.RateLimited = map[string]int{}
	}
	ms.RateLimited[kind]++
	r.mu.Unlock()
}

// usage is the usage object of chat/completions/embeddings (prompt_tokens,
// completion_tokens) or responses (input_tokens, output_tokens).
type usage struct {
	Usage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		InputTokens      int64 `json:"input_tokens"`
		OutputTokens     int64 `json:"output_tokens"`
	} `json:"usage"`
}

func (r *run) success(j *job, ms *ModelSummary, resp *api.Response, now time.Time) {
	res := &Result{CustomID: j.customID, BodySHA256: j.fp, Response: &ResultResponse{StatusCode: resp.StatusCode,
		RequestID: r.redact(resp.Header.Get("x-request-id")), Body: r.redactBody(compactBody(resp.Body))}}
	if err := r.results.write(res); err != nil {
		r.writeFailed(err)
		return
	}
	j.written = true
	var u usage
	_ = json.Unmarshal(resp.Body, &u)
	prompt := u.Usage.PromptTokens + u.Usage.InputTokens
	completion := u.Usage.CompletionTokens + u.Usage.OutputTokens
	r.mu.Lock()
	r.sum.Succeeded++
	ms.Succeeded++
	ms.Charged += j.charge
	ms.PromptTokens += prompt
	ms.CompletionTokens += completion
	if now.After(r.lastAt) {
		r.lastAt = now
	}
	r.events[j.model] = append(r.events[j.model], doneEvent{now.UnixNano(), j.charge})
	r.mu.Unlock()
	r.tick()
}

func (r *run) recordFailureKind(kind string) {
	r.mu.Lock()
	r.sum.Failed++
	r.sum.FailedByKind[kind]++
	r.mu.Unlock()
}

// finalFailure writes a failed result (the last answer and its error).
func (r *run) finalFailure(j *job, ms *ModelSummary, resp *api.Response, code, msg string, retryable bool) {
	msg = r.redact(msg)
	res := &Result{CustomID: j.customID, BodySHA256: j.fp, Error: &ResultError{Code: code, Message: msg}}
	if resp != nil {
		res.Response = &ResultResponse{StatusCode: resp.StatusCode, RequestID: r.redact(resp.Header.Get("x-request-id")), Body: r.redactBody(compactBody(resp.Body))}
	}
	if err := r.results.write(res); err != nil {
		r.writeFailed(err)
		return
	}
	j.written = true
	r.recordFailureKind(code)
	r.mu.Lock()
	ms.Failed++
	r.mu.Unlock()
	r.addCode(exitcode.Partial)
	if n := r.shown.Add(1); !r.o.Quiet && n <= maxProblemsShown {
		r.problemf("%s:%d: custom_id %s failed: %s: %s", j.file, j.line, j.customID, code, truncate(msg, 300))
		if n == maxProblemsShown {
			r.problemf("(further failures are not printed; every one is in %s)", r.o.Output)
		}
	}
	r.tick()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// tick counts a finished request and refreshes the progress bar.
func (r *run) tick() {
	r.done.Add(1)
	if r.bar == nil {
		return
	}
	r.progress.Lock()
	defer r.progress.Unlock()
	r.bar.Add(1)
	r.bar.Describe(r.progressLine())
}

// progressLine is the progress description, all in the run's clock
// (sim time under --time-scale): done/total, RPM and TPM of the effective
// limits (over the last minute; during the first two minutes over the run
// so far without the initial full bucket, see steadyRate), 429s, and the
// ETA at the current rate.
func (r *run) progressLine() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clk.Now()
	var rpm, tpm int64
	var reqWin, tokWin, reqSteady, tokSteady float64
	cut := now.Add(-time.Minute)
	h := r.o.Headroom
	for name, m := range r.models {
		l := r.effectiveLimits(m)
		rpm += l.RPM
		tpm += l.TPM
		evs := r.events[name]
		for k := len(evs) - 1; k >= 0 && evs[k].at > cut.UnixNano(); k-- {
			reqWin++
			tokWin += float64(evs[k].charge)
		}
		reqSteady += steadyRate(evs, one, capacityOf(l.RPM, h))
		tokSteady += steadyRate(evs, charge, capacityOf(l.TPM, h))
	}
	done := r.done.Load()
	s := fmt.Sprintf("%d/%d", done, r.sum.ToSend)
	if r.firstAt.IsZero() {
		return s + " waiting for the first answer"
	}
	el := now.Sub(r.firstAt)
	rpmNow, tpmNow := reqSteady, tokSteady
	if el >= 2*time.Minute {
		rpmNow, tpmNow = reqWin, tokWin
	}
	s += fmt.Sprintf(" · %.0f RPM", rpmNow)
	if rpm > 0 {
		s += fmt.Sprintf(" of %d", rpm)
	}
	s += fmt.Sprintf(" · %.0f TPM", tpmNow)
	if tpm > 0 {
		s += fmt.Sprintf(" of %d", tpm)
	}
	s += fmt.Sprintf(" · 429s %d", r.rl429.Load())
	if left := int64(r.sum.ToSend) - done; left > 0 && done > 0 && el > 0 {
		per := el / time.Duration(done)
		s += " · ETA " + (per * time.Duration(left)).Round(time.Second).String()
	}
	return s
}

// steadyRate is the per-minute rate of evs (successes, weighted by w: 1
// for RPM, the TPM charge for TPM) in the steady state, excluding the
// initial burst: buckets start full (oairl's holds headroom × limit, the
// server's the limit), so a short run passes up to limit + limit ×
// minutes, which would read as "over the limit" though no limit was
// exceeded; capacity is that burst (capacityOf). The window starts
// at the success that used up the initial capacity and ends at the last
// success; the rate is what came after it over that window. When
// everything fits the initial bucket (or the limit is unknown, capacity
// 0), it is the total over max(elapsed, 1 minute). evs must be in time
// order.
func steadyRate(evs []doneEvent, w func(doneEvent) float64, capacity float64) float64 {
	if len(evs) == 0 {
		return 0
	}
	var total float64
	for _, e := range evs {
		total += w(e)
	}
	first, last := evs[0].at, evs[len(evs)-1].at
	whole := total / max(time.Duration(last-first), time.Minute).Minutes()
	if capacity <= 0 || total <= capacity {
		return whole
	}
	var cum float64
	for i, e := range evs {
		cum += w(e)
		if cum >= capacity {
			span := time.Duration(last - e.at)
			if span <= 0 || i == len(evs)-1 {
				return whole
			}
			return (total - cum) / span.Minutes()
		}
	}
	return whole
}

func one(doneEvent) float64      { return 1 }
func charge(e doneEvent) float64 { return float64(e.charge) }

// capacityOf is the initial burst excluded from achieved rates: one
// minute's worth of the limit, the most that a full bucket holds (oairl's
// holds headroom × limit, the server's the limit itself, and the server's
// is what bounds the successes when a limit was learned late).
func capacityOf(limit int64, _ float64) float64 { return float64(limit) }

// effectiveLimits are the limits in force for a model: the learned ones
// when lower than (or instead of) the configured ones. r.mu must be held.
func (r *run) effectiveLimits(m *ModelSummary) pace.Limits {
	l := pace.Limits{RPM: m.RPMLimit, TPM: m.TPMLimit}
	if lk, ok := r.lim.(interface{ Limits(string) pace.Limits }); ok {
		got := lk.Limits(r.o.Registry.LimitKey(m.Model))
		if got.RPM > 0 && (l.RPM == 0 || got.RPM < l.RPM) {
			l.RPM = got.RPM
		}
		if got.TPM > 0 && (l.TPM == 0 || got.TPM < l.TPM) {
			l.TPM = got.TPM
		}
	}
	return l
}

// heartbeat redraws the progress bar every second, or, without a bar,
// prints a plain progress line to the log every period (wall time) so that
// a slow run in a CI log is not silent. It returns when done is closed.
func (r *run) heartbeat(done <-chan struct{}) {
	period := r.o.Heartbeat
	if r.bar != nil {
		period = time.Second
	}
	if period <= 0 || (r.bar == nil && r.o.Quiet) {
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			line := r.progressLine()
			if r.bar != nil {
				r.progress.Lock()
				r.bar.Describe(line)
				r.progress.Unlock()
			} else {
				r.logf("progress: %s", line)
			}
		}
	}
}

// finish closes the results (ordering them if asked) and fills the summary.
func (r *run) finish() (*Summary, error) {
	sum := r.sum
	if r.results != nil {
		if err := r.results.close(); err != nil {
			r.addCode(exitcode.Failure)
			r.problemf("closing %s: %v", r.o.Output, err)
		}
		if r.o.Ordered && r.order != nil {
			if err := rewriteOrdered(r.o.Output, r.order, r.seed); err != nil {
				r.addCode(exitcode.Failure)
				r.problemf("--ordered: rewriting %s: %v (the file is unchanged)", r.o.Output, err)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	end := r.clk.Now()
	sum.Elapsed = end.Sub(r.started)
	active := time.Duration(0)
	if !r.firstAt.IsZero() && r.lastAt.After(r.firstAt) {
		active = r.lastAt.Sub(r.firstAt)
	}
	sum.Active = active
	if r.cycle != nil {
		cs := r.cycle.ChargeStats()
		sum.ServerCharge = ServerCharge{Ratio: math.Round(cs.Ratio*1000) / 1000, Samples: cs.Samples, Steady: cs.Steady,
			Followed: cs.Steady && math.Abs(cs.Ratio-1) > 0.03}
	}
	names := slices.Sorted(maps.Keys(r.models))
	for _, n := range names {
		m := r.models[n]
		// The limits in force at the end (a lower learned one replaces
		// the configured one).
		l := r.effectiveLimits(m)
		m.RPMLimit, m.TPMLimit = l.RPM, l.TPM
		if evs := r.events[n]; len(evs) > 0 {
			sort.SliceStable(evs, func(a, b int) bool { return evs[a].at < evs[b].at })
			h := r.o.Headroom
			m.AchievedRPM = steadyRate(evs, one, capacityOf(m.RPMLimit, h))
			m.AchievedTPM = steadyRate(evs, charge, capacityOf(m.TPMLimit, h))
		}
		if m.RPMLimit > 0 {
			m.RPMPercent = 100 * m.AchievedRPM / float64(m.RPMLimit)
		}
		if m.TPMLimit > 0 {
			m.TPMPercent = 100 * m.AchievedTPM / float64(m.TPMLimit)
		}
		if res, ok := r.res[n]; ok && res.Model != nil {
			m.CostUSD, _ = tokens.Cost(res.Model, m.PromptTokens, m.CompletionTokens)
		}
		sum.PromptTokens += m.PromptTokens
		sum.CompletionTokens += m.CompletionTokens
		sum.CostUSD += m.CostUSD
		sum.Models = append(sum.Models, *m)
	}
	codes := append([]int{sum.ExitCode}, r.codes...)
	sum.ExitCode = exitcode.Worst(codes...)
	return sum, nil
}

// planAgg is one model's part of the --dry-run schedule.
type planAgg struct {
	n      int
	charge int64 // TPM charge, tokens
	big    int64 // largest charge of one request
}

// printSchedule prints the --dry-run plan (case B29): per model, the
// requests, their TPM charge, the limits and the minutes needed at them.
func (r *run) printSchedule(per map[string]*planAgg, toSend int, tooLarge []*job) {
	names := slices.Sorted(maps.Keys(per))
	w := r.o.Out
	if w == nil {
		w = io.Discard
	}
	fmt.Fprintf(w, "dry run: %s to send, %d already in %s, %d invalid, %d too large (headroom %.0f%%)\n",
		humanize.Count(int64(toSend), "request", "requests"), r.sum.Skipped, r.o.Output, r.sum.Invalid, len(tooLarge), 100*r.o.Headroom)
	for _, n := range names {
		a := per[n]
		l := r.limitsFor(n)
		line := fmt.Sprintf("  %s: %s, %d rate-limit tokens (largest %d)", n, humanize.Count(int64(a.n), "request", "requests"), a.charge, a.big)
		var mins float64
		if l.RPM > 0 {
			mins = max(mins, float64(a.n)/(float64(l.RPM)*r.o.Headroom))
			line += fmt.Sprintf(", %d RPM", l.RPM)
		}
		if l.TPM > 0 {
			mins = max(mins, float64(a.charge)/(float64(l.TPM)*r.o.Headroom))
			line += fmt.Sprintf(", %d TPM", l.TPM)
			if a.big > int64(float64(l.TPM)*r.o.Headroom)/2 {
				line += fmt.Sprintf("; one request reserves up to %d tokens, so at most %d fit in a minute", a.big, l.TPM/a.big)
			}
		}
		if l.RPM > 0 || l.TPM > 0 {
			line += fmt.Sprintf(": needs ~%.1f minutes", mins)
		} else if r.o.Tier != "" {
			line += fmt.Sprintf(": no published tier %s limits for this model (give --rpm/--tpm; otherwise learned from the first responses)", r.o.Tier)
		} else {
			line += ": no limits known (give --tier or --rpm/--tpm; otherwise learned from the first responses)"
		}
		fmt.Fprintln(w, line)
	}
	for _, j := range tooLarge {
		fmt.Fprintf(w, "  refused: %s:%d custom_id %s needs %d tokens > %d TPM\n", j.file, j.line, j.customID, j.charge, r.limitsFor(j.model).TPM)
	}
	if r.o.AssumeOutput > 0 {
		fmt.Fprintf(w, "  lines without max_tokens/max_completion_tokens are charged an assumed %d output tokens (--assume-output)\n", r.o.AssumeOutput)
	}
}

// openOutput opens the results file for appending, reporting what an
// earlier run left there (a torn line truncated, lines that are not
// results, failures removed for --retry-failed).
func (r *run) openOutput(rep *loadReport) error {
	o := r.o
	// rep's states are as loaded (lookups do not change them); openResults
	// rewrites the file for --retry-failed and recounts the drops.
	full := rep
	rf, err := openResults(o.Output, full, o.RetryFailed, o.Seed)
	if err != nil {
		return err
	}
	r.results = rf
	if full.TornBytes > 0 && full.TailKept {
		r.logf("%s: the last result line had no final newline; it is complete, so it was kept and the newline added", o.Output)
	} else if full.TornBytes > 0 {
		r.problemf("%s: removed a torn last line (%d bytes) left by an interrupted run; its request will be sent again", o.Output, full.TornBytes)
	}
	r.reportBadLines(full.BadLines, full.BadN)
	if full.Dropped > 0 {
		r.logf("--retry-failed: %d retryable failures removed from %s and sent again", full.Dropped, o.Output)
	}
	if !full.TailKept {
		r.sum.TornBytes = full.TornBytes
	}
	return nil
}

// reportBadLines names (the first three of) the lines of the results file
// that are not results: not counted as done, their requests are sent.
func (r *run) reportBadLines(bad []int, n int) {
	for i, l := range bad {
		if i == 3 {
			r.problemf("%s: %d more lines that are not results (ignored)", r.o.Output, n-3)
			break
		}
		r.problemf("%s:%d: not a result line (no response.status_code and no error; ignored, its request will be sent again)", r.o.Output, l)
	}
}

// writeFailed stops the run when a result cannot be written (disk full):
// sending more would only produce answers that are lost.
func (r *run) writeFailed(err error) {
	r.problemf("%v", err)
	if r.stop != nil {
		r.stop.stop(exitcode.Failure, fmt.Sprintf("cannot write results: %v", err))
	} else {
		r.addCode(exitcode.Failure)
	}
}

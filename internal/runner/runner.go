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
// away, and every custom_id already in the file is skipped, so rerunning the
// same command sends only what has no result yet. A request whose result
// was written is never sent again; requests not answered when a run stops
// (quota, auth, max-wait, Ctrl-C) are simply absent from the file.
package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/internal/pace"
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
	// Sources are the input files ("-" for stdin).
	Sources []input.Source
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
	// Limiter overrides the in-process pace.Local (e.g. shared budgets).
	Limiter pace.Limiter

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
	model    string
	charge   int64
	res      models.Resolution
}

type run struct {
	o       Options
	clk     clock.Clock
	log     io.Writer
	lim     pace.Limiter
	local   *pace.Local
	backoff *pace.Backoff
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
	r := &run{o: o, clk: o.Clock, log: o.Log, models: map[string]*ModelSummary{}, res: map[string]models.Resolution{}}
	if r.log == nil {
		r.log = io.Discard
	}
	r.backoff = pace.NewBackoff(o.Seed)
	r.sum = &Summary{FailedByKind: map[string]int{}, RateLimited: map[string]int{}}
	return r, nil
}

// limitsFor returns the configured limits of a model (flags win over the
// tier table); zero fields are learned from headers.
func (r *run) limitsFor(model string) pace.Limits {
	var l pace.Limits
	if r.o.Tier != "" {
		r.mu.Lock()
		res, ok := r.res[model]
		r.mu.Unlock()
		if !ok {
			res = r.o.Registry.Lookup(model)
		}
		if res.Model != nil {
			if tl, ok := res.Model.TierLimits(r.o.Tier); ok {
				l.RPM, l.TPM = tl.RPM, tl.TPM
			}
		}
	}
	if r.o.RPM > 0 {
		l.RPM = r.o.RPM
	}
	if r.o.TPM > 0 {
		l.TPM = r.o.TPM
	}
	return l
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
	fmt.Fprintf(r.log, format+"\n", args...)
}

// problemf prints a problem line even under Quiet (it is an error report).
func (r *run) problemf(format string, args ...any) {
	r.progress.Lock()
	defer r.progress.Unlock()
	fmt.Fprintf(r.log, format+"\n", args...)
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

func (r *run) run(ctx context.Context) (*Summary, error) {
	o := r.o
	sum := r.sum
	r.started = r.clk.Now()

	// 1. What an earlier run already answered (read only: nothing is
	// created or changed before we know we will send).
	rep, err := loadResults(o.Output)
	if o.DryRun && err != nil {
		rep, err = loadReport{Done: map[string]recState{}}, nil
	}
	if err != nil {
		sum.ExitCode = exitcode.Failure
		return sum, err
	}
	if o.RetryFailed {
		// --retry-failed: recorded retryable failures count as not done.
		for id, s := range rep.Done {
			if s == recRetryable {
				delete(rep.Done, id)
				rep.Dropped++
			}
		}
	}

	// 2. Read and validate the input.
	var jobs []*job
	var order []string
	shown := 0
	scanOpts := input.Options{Registry: o.Registry, Counter: o.Counter, Model: o.Model}
	scanSum, err := input.Scan(ctx, o.Sources, scanOpts, func(q *input.Request) error {
		sum.Requests++
		if !q.Valid() {
			sum.Invalid++
			for _, p := range q.Problems {
				if p.Severity != tokens.Error {
					continue
				}
				if shown < maxProblemsShown {
					r.problemf("%s:%d: %s: %s: %s", p.File, p.Line, displayID(p.CustomID), p.Code, p.Message)
				}
				shown++
			}
			return nil
		}
		order = append(order, q.CustomID)
		r.mu.Lock()
		if _, ok := r.res[q.Model]; !ok {
			r.res[q.Model] = q.Resolution
		}
		r.mu.Unlock()
		if _, ok := rep.Done[q.CustomID]; ok {
			sum.Skipped++
			return nil
		}
		body := []byte(q.Body)
		if o.Model != "" {
			// --model fills in a body that names no model; others are
			// sent exactly as written.
			body = withModel(body, q.Model)
		}
		jobs = append(jobs, &job{idx: len(order) - 1, customID: q.CustomID, file: q.File, line: q.Line, url: q.URL,
			body: body, model: q.Model, charge: q.Count.TPMCharge, res: q.Resolution})
		return nil
	})
	if shown > maxProblemsShown {
		r.problemf("... and %d more problems (oairl count lists them all)", shown-maxProblemsShown)
	}
	if err != nil {
		if ctx.Err() != nil {
			sum.ExitCode = exitcode.Interrupted
			sum.StopReason = "interrupted while reading the input"
			return r.finish(nil)
		}
		sum.ExitCode = exitcode.Input
		return sum, exitcode.New(exitcode.Input, err)
	}
	for _, p := range scanSum.FileProblems {
		if p.Severity == tokens.Error {
			r.problemf("%s:%d: %s: %s", p.File, p.Line, p.Code, p.Message)
		} else if !o.Quiet && p.Severity == tokens.Warning {
			r.logf("%s: warning: %s: %s", p.File, p.Code, p.Message)
		}
	}

	// Requests that can never be admitted: charge over the TPM limit.
	var tooLarge []*job
	kept := jobs[:0]
	for _, j := range jobs {
		if l := r.limitsFor(j.model); l.TPM > 0 && j.charge > l.TPM {
			tooLarge = append(tooLarge, j)
			continue
		}
		kept = append(kept, j)
	}
	jobs = kept
	for _, j := range tooLarge {
		r.problemf("%s:%d: %s: request_too_large: needs ~%d rate-limit tokens per request (prompt + output budget), which exceeds the %s limit of %d TPM; it can never be sent. Lower max_tokens or raise the limit",
			j.file, j.line, displayID(j.customID), j.charge, j.model, r.limitsFor(j.model).TPM)
	}

	if o.DryRun {
		r.printSchedule(jobs, tooLarge)
		sum.ExitCode = exitcode.OK
		if sum.Invalid > 0 && o.Strict {
			sum.ExitCode = exitcode.Input
		}
		return sum, nil
	}

	if o.Strict && (sum.Invalid > 0 || len(tooLarge) > 0) {
		sum.ExitCode = exitcode.Input
		return sum, exitcode.Errorf(exitcode.Input, "--strict: %d invalid lines, %d requests too large; nothing was sent", sum.Invalid, len(tooLarge))
	}
	if len(jobs) == 0 && len(tooLarge) == 0 {
		if sum.Skipped > 0 {
			if rep.TornBytes > 0 {
				// Still remove a torn last line (its custom_id is not in this
				// input, or it would be sent).
				if err := r.openOutput(&rep); err != nil {
					sum.ExitCode = exitcode.Failure
					return sum, err
				}
			}
			r.logf("nothing to send: all %d requests already have a result in %s", sum.Skipped, o.Output)
			sum.ExitCode = exitcode.OK
			if sum.Invalid > 0 {
				sum.ExitCode = exitcode.Partial
			}
			return r.finish(order)
		}
		sum.ExitCode = exitcode.Input
		return sum, exitcode.Errorf(exitcode.Input, "no valid request to send (%d lines, %d invalid)", sum.Requests, sum.Invalid)
	}
	if sum.Invalid > 0 {
		r.addCode(exitcode.Partial)
	}
	if err := r.openOutput(&rep); err != nil {
		sum.ExitCode = exitcode.Failure
		return sum, err
	}
	defer r.results.close()
	for _, j := range tooLarge {
		ms := r.model(j.model)
		r.mu.Lock()
		ms.Failed++
		r.mu.Unlock()
		r.recordFailureKind("request_too_large")
		lim := r.limitsFor(j.model).TPM
		if err := r.results.write(&Result{CustomID: j.customID, Error: &ResultError{Code: "request_too_large",
			Message: fmt.Sprintf("needs %d rate-limit tokens (prompt + output budget), over the %s limit of %d TPM; never sent", j.charge, j.model, lim)}}); err != nil {
			sum.ExitCode = exitcode.Failure
			return sum, err
		}
		r.addCode(exitcode.Partial)
	}
	sum.ToSend = len(jobs)

	// 3. Pace and send.
	r.lim = o.Limiter
	if r.lim == nil {
		r.local = pace.New(pace.Config{Clock: r.clk, Headroom: o.Headroom, MaxConcurrent: o.MaxConcurrent,
			Limits: r.limitsFor, Events: func(e pace.Event) { r.logf("%s: %s", e.Model, e.Message) }})
		r.lim = r.local
	}
	for _, j := range jobs {
		m := r.model(j.model)
		l := r.limitsFor(j.model)
		r.mu.Lock()
		m.RPMLimit, m.TPMLimit = l.RPM, l.TPM
		r.mu.Unlock()
	}
	if o.NewBar != nil {
		r.bar = o.NewBar(int64(len(jobs)))
	}
	r.dispatch(ctx, jobs)
	if r.bar != nil {
		r.bar.Finish()
	}
	return r.finish(order)
}

// displayID renders a custom_id for messages.
func displayID(id string) string {
	if id == "" {
		return "(no custom_id)"
	}
	return "custom_id " + id
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
}

func (s *stopState) stop(code int, msg string) {
	s.once.Do(func() {
		s.code, s.msg = code, msg
		s.cancel()
	})
}

func (r *run) dispatch(ctx context.Context, jobs []*job) {
	o := r.o
	// stopCtx ends dispatching and waits between attempts: on Ctrl-C (ctx)
	// or a run-wide stop (quota, auth, max-wait).
	stopCtx, cancelStop := context.WithCancel(ctx)
	defer cancelStop()
	st := &stopState{cancel: cancelStop}
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
	workers := min(o.MaxConcurrent, len(jobs))
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				r.send(stopCtx, reqCtx, st, j)
			}
		}()
	}
	sent := 0
feed:
	for _, j := range jobs {
		select {
		case <-stopCtx.Done():
			break feed
		case queue <- j:
			sent++
		}
	}
	close(queue)
	wg.Wait()
	cancelReq()
	<-graceDone

	r.sum.Unsent = len(jobs) - int(r.done.Load())
	switch {
	case ctx.Err() != nil:
		r.addCode(exitcode.Interrupted)
		r.sum.StopReason = "interrupted"
	case st.code != 0:
		r.addCode(st.code)
		r.sum.StopReason = st.msg
	}
}

// send carries one request through its attempts. It returns when the
// request has a written result or will not get one in this run.
func (r *run) send(stopCtx, reqCtx context.Context, st *stopState, j *job) {
	o := r.o
	ms := r.model(j.model)
	for attempt := 1; ; attempt++ {
		permit, err := r.lim.Reserve(stopCtx, j.model, j.charge)
		if err != nil {
			var tl *pace.TooLargeError
			if errors.As(err, &tl) {
				r.finalFailure(j, ms, nil, "request_too_large", tl.Error(), false)
			}
			return // stopped: not sent, resumable
		}
		if attempt == 1 {
			r.mu.Lock()
			r.sum.Sent++
			if r.firstAt.IsZero() {
				r.firstAt = r.clk.Now()
			}
			r.mu.Unlock()
		}
		sentAt := r.clk.Now()
		attemptCtx, cancelAttempt := context.WithTimeout(reqCtx, o.AttemptTimeout)
		resp, err := r.o.Client.Post(attemptCtx, j.url, j.body)
		cancelAttempt()
		now := r.clk.Now()
		r.mu.Lock()
		r.sum.Attempts++
		ms.Attempts++
		r.mu.Unlock()
		var f diagnose.Finding
		if err != nil {
			if reqCtx.Err() != nil {
				// Abandoned (second Ctrl-C or grace over): no result, resumable.
				permit.Done(pace.NotSent)
				return
			}
			f = diagnose.ClassifyTransportError(err)
		} else {
			f = diagnose.Classify(resp.StatusCode, resp.Header, resp.Body, now)
			obs := observation(f.RateLimits)
			obs.Sent = sentAt
			r.lim.Observe(j.model, obs, now)
		}
		outcome := pace.Failed
		switch {
		case err == nil && resp.StatusCode/100 == 2:
			outcome = pace.Success
		case f.Verdict == diagnose.ConcurrencyLimited:
			outcome = pace.ConcurrencyLimited
		case f.IsRateLimit():
			outcome = pace.RateLimited
		}
		permit.Done(outcome)

		if err == nil && resp.StatusCode/100 == 2 {
			r.success(j, ms, resp, now)
			return
		}
		if f.Status == 429 || f.IsRateLimit() {
			r.count429(ms, f)
		}
		switch f.Verdict {
		case diagnose.QuotaExhausted:
			st.stop(exitcode.Quota, fmt.Sprintf("%s (%s:%d, custom_id %s): %s — not a rate limit; waiting will not fix it. Check billing and the project's budget, then rerun the same command to send the rest",
				firstNonEmpty(f.Code, "insufficient_quota"), j.file, j.line, j.customID, f.Message))
			return
		case diagnose.AuthFailed:
			st.stop(exitcode.Auth, fmt.Sprintf("authentication failed (HTTP %d, %s:%d, custom_id %s): %s", f.Status, j.file, j.line, j.customID, f.Message))
			return
		}
		if err == nil && !f.Retryable {
			r.finalFailure(j, ms, resp, errCode(f), f.Message, false)
			if f.Verdict == diagnose.ModelUnavailable {
				r.addCode(exitcode.Auth)
			}
			return
		}
		if err != nil && !f.Retryable {
			r.finalFailure(j, ms, nil, string(f.Verdict), f.Message, false)
			return
		}
		// Retryable.
		if f.Wait > o.MaxWait {
			st.stop(exitcode.RateLimited, fmt.Sprintf("%s: server asked to wait %s (%s, custom_id %s); rerun later or raise --max-wait",
				f.Verdict, f.Wait.Round(time.Second), j.model, j.customID))
			return
		}
		if attempt >= o.MaxAttempts {
			msg, code := f.Message, errCode(f)
			if err != nil {
				msg, code = err.Error(), string(f.Verdict)
			}
			r.finalFailure(j, ms, resp, code, fmt.Sprintf("%s (after %d attempts)", msg, attempt), true)
			if f.IsRateLimit() {
				r.addCode(exitcode.RateLimited)
			}
			return
		}
		wait := r.backoff.Delay(attempt-1, f.Wait, f.Wait > 0)
		if strings.HasPrefix(f.WaitSource, "reset-") {
			// A reset header says when the bucket is full again, not when
			// this request fits: back off at least that long (case B17a).
			wait = max(f.Wait, r.backoff.Delay(attempt-1, 0, false))
		}
		r.mu.Lock()
		r.sum.Retries++
		ms.Retries++
		r.mu.Unlock()
		switch f.Verdict {
		case diagnose.RPMLimited, diagnose.RPDLimited, diagnose.RampLimited:
			// slow_down: every worker eases off, not just this one.
			r.lim.Pause(j.model, pace.Requests, now.Add(wait))
		case diagnose.TPMLimited, diagnose.TPDLimited:
			r.lim.Pause(j.model, pace.Tokens, now.Add(wait))
		default:
			if err := r.clk.Sleep(stopCtx, wait); err != nil {
				return
			}
		}
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

// errCode is the code recorded for a failure: the error envelope's code,
// else the verdict.
func errCode(f diagnose.Finding) string {
	if f.Code != "" {
		return f.Code
	}
	return string(f.Verdict)
}

// observation converts diagnose's parsed headers for the limiter. A daily
// window is passed with its reset so that pace does not take it for a
// per-minute limit.
func observation(rl diagnose.RateLimits) pace.Observation {
	conv := func(w diagnose.Window) pace.Window {
		if !w.Known {
			return pace.Window{Limit: -1, Remaining: -1, Reset: -1}
		}
		pw := pace.Window{Limit: w.Limit, Remaining: w.Remaining, Reset: w.Reset}
		if w.Daily && pw.Reset <= time.Minute {
			pw.Reset = 24 * time.Hour
		}
		if w.ResetRaw == "" {
			pw.Reset = -1
			if w.Daily {
				pw.Reset = 24 * time.Hour
			}
		}
		return pw
	}
	return pace.Observation{Requests: conv(rl.Requests), Tokens: conv(rl.Tokens)}
}

func (r *run) count429(ms *ModelSummary, f diagnose.Finding) {
	kind := "other"
	switch f.Verdict {
	case diagnose.RPMLimited, diagnose.RPDLimited:
		kind = "RPM"
		if f.Verdict == diagnose.RPDLimited {
			kind = "RPD"
		}
	case diagnose.TPMLimited, diagnose.TPDLimited:
		kind = "TPM"
		if f.Verdict == diagnose.TPDLimited {
			kind = "TPD"
		}
	case diagnose.ConcurrencyLimited:
		kind = "concurrency"
	}
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
	res := &Result{CustomID: j.customID, Response: &ResultResponse{StatusCode: resp.StatusCode,
		RequestID: resp.Header.Get("x-request-id"), Body: compactBody(resp.Body)}}
	if err := r.results.write(res); err != nil {
		r.writeFailed(err)
		return
	}
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
	res := &Result{CustomID: j.customID, Error: &ResultError{Code: code, Message: msg}}
	if resp != nil {
		res.Response = &ResultResponse{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("x-request-id"), Body: compactBody(resp.Body)}
	}
	if err := r.results.write(res); err != nil {
		r.writeFailed(err)
		return
	}
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

// progressLine is the bar's description: achieved RPM/TPM against the
// limits, and 429s so far.
func (r *run) progressLine() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	el := r.clk.Now().Sub(r.firstAt).Minutes()
	var req, tok, rpm, tpm int64
	for _, m := range r.models {
		req += int64(m.Succeeded)
		tok += m.Charged
		rpm += m.RPMLimit
		tpm += m.TPMLimit
	}
	if el <= 0 {
		return ""
	}
	s := fmt.Sprintf("%.0f RPM", float64(req)/el)
	if rpm > 0 {
		s += fmt.Sprintf("/%d", rpm)
	}
	s += fmt.Sprintf(" %.0f TPM", float64(tok)/el)
	if tpm > 0 {
		s += fmt.Sprintf("/%d", tpm)
	}
	return s + fmt.Sprintf(" 429s %d", r.rl429.Load())
}

// finish closes the results (ordering them if asked) and fills the summary.
func (r *run) finish(order []string) (*Summary, error) {
	sum := r.sum
	if r.results != nil {
		if err := r.results.close(); err != nil {
			r.addCode(exitcode.Failure)
			r.problemf("closing %s: %v", r.o.Output, err)
		}
		if r.o.Ordered {
			if err := rewriteOrdered(r.o.Output, order); err != nil {
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
	names := make([]string, 0, len(r.models))
	for n := range r.models {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m := r.models[n]
		if active > 0 {
			m.AchievedRPM = float64(m.Succeeded) / active.Minutes()
			m.AchievedTPM = float64(m.Charged) / active.Minutes()
		}
		if r.local != nil {
			l := r.local.Limits(n)
			if m.RPMLimit == 0 {
				m.RPMLimit = l.RPM
			}
			if m.TPMLimit == 0 {
				m.TPMLimit = l.TPM
			}
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

// printSchedule prints the --dry-run plan (case B29): per model, the
// requests, their TPM charge, the limits and the minutes needed at them.
func (r *run) printSchedule(jobs, tooLarge []*job) {
	type agg struct {
		n      int
		charge int64
		big    int64
	}
	per := map[string]*agg{}
	var names []string
	for _, j := range jobs {
		a := per[j.model]
		if a == nil {
			a = &agg{}
			per[j.model] = a
			names = append(names, j.model)
		}
		a.n++
		a.charge += j.charge
		a.big = max(a.big, j.charge)
	}
	sort.Strings(names)
	w := r.o.Out
	if w == nil {
		w = io.Discard
	}
	fmt.Fprintf(w, "dry run: %d requests to send, %d already in %s, %d invalid, %d too large (headroom %.0f%%)\n",
		len(jobs), r.sum.Skipped, r.o.Output, r.sum.Invalid, len(tooLarge), 100*r.o.Headroom)
	for _, n := range names {
		a := per[n]
		l := r.limitsFor(n)
		line := fmt.Sprintf("  %s: %d requests, %d rate-limit tokens (largest %d)", n, a.n, a.charge, a.big)
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
	// loadResults already counted --retry-failed drops; openResults
	// rewrites the file for them, so give it the original states back.
	full, err := loadResults(o.Output)
	if err != nil {
		return err
	}
	rf, err := openResults(o.Output, &full, o.RetryFailed, o.Seed)
	if err != nil {
		return err
	}
	r.results = rf
	if full.TornBytes > 0 {
		r.problemf("%s: removed a torn last line (%d bytes) left by an interrupted run; its request will be sent again", o.Output, full.TornBytes)
	}
	for i, l := range full.BadLines {
		if i == 3 {
			r.problemf("%s: %d more lines that are not results (ignored)", o.Output, len(full.BadLines)-3)
			break
		}
		r.problemf("%s:%d: not a result line (ignored; its request will be sent again)", o.Output, l)
	}
	if full.Dropped > 0 {
		r.logf("--retry-failed: %d retryable failures removed from %s and sent again", full.Dropped, o.Output)
	}
	r.sum.TornBytes = full.TornBytes
	return nil
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

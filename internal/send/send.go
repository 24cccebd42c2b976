// Package send is the one admit → send → classify → wait-or-retry cycle of
// oairl, shared by `oairl run` (internal/runner) and `oairl proxy`
// (internal/proxy). For one request it:
//
//  1. reserves the request's TPM charge from a pace.Limiter (in-process
//     pace.Local or a shared budget; a *pace.TooLargeError fails it at
//     once);
//  2. makes one attempt through the caller's Attempt func (a whole-body
//     POST for run; a streaming forward for the proxy);
//  3. classifies the answer with diagnose.Classify (transport errors with
//     diagnose.ClassifyTransportError), feeds the x-ratelimit-* headers to
//     the limiter (Observe) and ends the permit with the outcome;
//  4. decides: success, final failure, a run-wide stop (quota, auth, a
//     server wait over MaxWait, an unreachable server) or a retry after the
//     wait chosen by pace.Backoff; an RPM or TPM 429 pauses that bucket for
//     every caller (Pause) instead of sleeping.
//
// Retry rules (after openai-go requestconfig.go shouldRetry/retryDelay,
// except that quota errors fail at once): rate limits, 5xx, 408, 409,
// network errors and 2xx answers that are not a valid JSON body are
// retried; insufficient_quota and the billing codes, 401/403,
// request_too_large and other 4xx are not. An answer the Attempt func has
// already delivered to its caller (Answer.Delivered: a proxied 2xx whose
// first byte reached the app) is final, whatever follows.
//
// The caller keeps its own bookkeeping (results files, summaries,
// metrics, logs) through the Hooks and the Result; this package holds no
// per-caller state except the run-wide "is the server reachable at all"
// counter of a Cycle.
package send

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/provider"
	"github.com/oairl/oairl/internal/redact"
)

// UnreachableStop is how many consecutive attempts that could not connect
// (connection refused, DNS failure), with no HTTP answer yet from the
// server, make the cycle give up with Unreachable.
const UnreachableStop = 5

// EndpointStop is how many answers in a row that blame the endpoint, not
// the request (see EndpointFault), make the cycle give up with
// WrongEndpoint: every request would get the same answer.
const EndpointStop = 3

// EndpointFault reports whether an answer says the endpoint itself is
// wrong rather than the request: a 2xx whose body is not the API's (an
// HTML login or proxy page: diagnose's not_api_response), or a 404 that is
// not about a model (OpenAI's "Invalid URL (POST /v1/…)", a proxy's "Not
// Found" page): a wrong --base-url. Such failures are not the request's,
// so run records none of them and --retry-failed resends any recorded by
// an older version.
func EndpointFault(f diagnose.Finding) bool {
	return f.Verdict == diagnose.NotAPIResponse || f.Status == 404 && f.Verdict == diagnose.InvalidRequest
}

// Config configures a Cycle.
type Config struct {
	// Limiter paces the requests (required).
	Limiter pace.Limiter
	// Clock tells the time and sleeps between attempts (default the wall
	// clock).
	Clock clock.Clock
	// Backoff chooses the waits (default pace.NewBackoff with a random
	// seed).
	Backoff *pace.Backoff
	// MaxAttempts is the most attempts per request, first included
	// (default 8).
	MaxAttempts int
	// MaxWait is the longest server-requested wait that is waited through
	// (default 2m); a longer one ends the request with WaitTooLong.
	MaxWait time.Duration
	// AttemptTimeout bounds one attempt in wall time (default 10m, the
	// SDKs' 600 s); a timed-out attempt is a network error, retried.
	AttemptTimeout time.Duration
	// Provider is the server's kind (internal/provider; zero: OpenAI): its
	// answers are read with its header semantics (diagnose.ClassifyAs) and
	// its request windows converted to per-minute ones for the limiter
	// (Azure reports 10 s windows).
	Provider provider.Provider
	// LimitKey maps a request's model to the key of its rate-limit pool
	// (models.Registry.LimitKey: a shared-limit group, else the model);
	// the limiter keeps one pair of buckets per key. Nil: the model.
	LimitKey func(model string) string
	// Secrets are keys masked in every server-supplied string of a
	// Result (with Request.Secrets; key-shaped tokens are masked anyway).
	Secrets []string
	// FlexFallback, when > 0, resends a service_tier "flex" request as
	// "auto" (through Request.FlexFallback) after that many
	// resource_unavailable answers; 0 keeps retrying flex.
	FlexFallback int
	// FollowCharge paces with the server's measured TPM charge once the
	// measured ratio to oairl's estimate is steady (ChargeStats): the
	// reservation becomes estimate × ratio.
	FollowCharge bool
}

// Cycle carries requests through their attempts. Safe for concurrent use;
// one Cycle serves a whole run or a whole proxy.
type Cycle struct {
	cfg Config
	// unreachable counts consecutive attempts that could not connect;
	// answered is set by any HTTP answer.
	unreachable atomic.Int64
	answered    atomic.Bool
	// endpointFaults counts EndpointFault answers in a row; succeeded is
	// set by any success (after one, a 404 is the request's own).
	endpointFaults atomic.Int64
	succeeded      atomic.Bool
	// meter measures the server's TPM charge (charge.go).
	meter chargeMeter
	// daily paces a model whose daily limit (RPD/TPD) a 429 named at the
	// daily rate (daily.go).
	daily dailyPacer
}

// ChargeStats returns what the cycle measured of the server's TPM charge
// so far: "the server charged Ratio× oairl's estimate on Samples requests".
func (c *Cycle) ChargeStats() ChargeStats { return c.meter.stats() }

// New returns a Cycle for cfg.
func New(cfg Config) *Cycle {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Backoff == nil {
		cfg.Backoff = pace.NewBackoff(uint64(time.Now().UnixNano()))
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 2 * time.Minute
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Minute
	}
	return &Cycle{cfg: cfg}
}

// Limiter returns the cycle's limiter.
func (c *Cycle) Limiter() pace.Limiter { return c.cfg.Limiter }

// Answer is one HTTP answer of an attempt.
type Answer struct {
	api.Response
	// Delivered means the answer already reached the caller's client (a
	// streamed 2xx): it is final, never retried, and its Body is not
	// inspected (it may be nil).
	Delivered bool
}

// Request is one request to carry through the cycle.
type Request struct {
	// Model and Charge (its TPM charge, tokens) are what is reserved.
	Model  string
	Charge int64
	// Attempt makes one attempt: an HTTP answer, or a transport error (no
	// answer). The body it sends must be replayable: it is called again
	// for every retry.
	Attempt func(ctx context.Context) (*Answer, error)
	// Hooks, all optional, let the caller count what happens.
	Hooks Hooks
	// Secrets are the keys of this request (the app's bearer key in the
	// proxy), masked with Config.Secrets in every server-supplied string
	// of the Result (Code, Message, Finding's code, param, type, message):
	// a server may echo a key in any of them.
	Secrets []string
	// FlexFallback, when set, switches the request's body to service_tier
	// "auto" for the following attempts (Config.FlexFallback); the cycle
	// calls it at most once.
	FlexFallback func()
}

// Hooks report the steps of a request to its caller. They are called on
// the request's goroutine.
type Hooks struct {
	// Sending is called when the limiter admitted attempt n (1-based),
	// just before it is made.
	Sending func(attempt int)
	// Attempted is called when attempt n returned (every attempt,
	// abandoned ones included).
	Attempted func(attempt int)
	// Failed is called with the classification of every attempt that did
	// not succeed (before the decision): count 429s and quota errors here.
	Failed func(f diagnose.Finding)
	// Retrying is called before the cycle waits wait (in the cycle's
	// clock) and tries again.
	Retrying func(f diagnose.Finding, wait time.Duration)
	// Stopping is called for an outcome that stops every request
	// (QuotaExhausted, AuthFailed, WrongEndpoint), before the attempt's
	// permit is released: the caller stops dispatching first, so no
	// request waiting behind this one (the limiter's first-request probe)
	// goes out after the stop.
	Stopping func(o Outcome, f diagnose.Finding)
	// Answered is called with every HTTP answer's classification and the
	// times the attempt was sent and answered (to measure the server's
	// TPM charge from the x-ratelimit-remaining-tokens it reports).
	Answered func(f diagnose.Finding, sent, at time.Time)
}

// Outcome is how a request ended.
type Outcome int

const (
	// Succeeded: a 2xx answer (Result.Answer).
	Succeeded Outcome = iota
	// Failed: a final failure. Result.Code and Message say why; Answer is
	// the last HTTP answer (nil after a transport error or a request the
	// limiter refused as too large: Err is then a *pace.TooLargeError);
	// GaveUp is set when it was retryable but MaxAttempts ran out.
	Failed
	// QuotaExhausted: insufficient_quota or a billing code; waiting will
	// not help (run stops, exit 5; the proxy passes the answer on).
	QuotaExhausted
	// AuthFailed: 401/403 (run stops, exit 4).
	AuthFailed
	// WaitTooLong: the server asked to wait more than MaxWait
	// (Result.Finding.Wait).
	WaitTooLong
	// Unreachable: nothing has reached the server (UnreachableStop
	// attempts in a row could not connect, or MaxAttempts did); Result.Err
	// is the last error and Result.Unreachable the count.
	Unreachable
	// NotAdmitted: the limiter's Reserve ended with admitCtx (stopped,
	// interrupted, shed); Result.Err is its error. Not sent by this
	// attempt (earlier attempts may have been).
	NotAdmitted
	// Abandoned: reqCtx ended during an attempt; the request went out and
	// may have been processed.
	Abandoned
	// Stopped: admitCtx ended during a wait between attempts.
	Stopped
	// WrongEndpoint: EndpointStop answers in a row blamed the endpoint
	// (EndpointFault: 404 Invalid URL, a login page), with no success
	// before them, or this request ran out of attempts on such answers.
	// Nothing reached the API proper: the caller records nothing.
	WrongEndpoint
)

// Result is the end of one request.
type Result struct {
	Outcome Outcome
	// Answer is the last HTTP answer, if any.
	Answer *Answer
	// Finding is the last classification.
	Finding diagnose.Finding
	// Code and Message describe a Failed request (the error envelope's
	// code, else diagnose's verdict).
	Code, Message string
	// GaveUp: Failed after MaxAttempts retryable attempts.
	GaveUp bool
	// Err is the last transport or admission error.
	Err error
	// Attempts is the number of attempts made.
	Attempts int
	// Reached: some attempt reached the server (an answer, or a transport
	// error other than "cannot connect").
	Reached bool
	// At is the cycle's time when the last attempt returned.
	At time.Time
	// Unreachable is the count of consecutive connection failures
	// (Outcome Unreachable).
	Unreachable int64
}

// Do carries req through its attempts and returns how it ended.
// admitCtx bounds the waits for the limiter and between attempts (it ends
// dispatching: a stop or the first Ctrl-C); reqCtx bounds the attempts
// themselves (it abandons requests in flight).
func (c *Cycle) Do(admitCtx, reqCtx context.Context, req Request) Result {
	res := c.do(admitCtx, reqCtx, req)
	secrets := append(append([]string(nil), c.cfg.Secrets...), req.Secrets...)
	res.Code = redact.String(res.Code, secrets...)
	res.Message = redact.String(res.Message, secrets...)
	redactFinding(&res.Finding, secrets)
	return res
}

// redactFinding is the one choke point for what a server wrote into a
// finding: a key echoed in an error's code, type, message or request id
// must not reach hooks, results, summaries or logs (breaker1 F3/F4).
func redactFinding(f *diagnose.Finding, secrets []string) {
	for _, p := range []*string{&f.Code, &f.Type, &f.Message, &f.RequestID, &f.Summary, &f.Organization, &f.Project} {
		*p = redact.String(*p, secrets...)
	}
}

func (c *Cycle) do(admitCtx, reqCtx context.Context, req Request) Result {
	secrets := append(append([]string(nil), c.cfg.Secrets...), req.Secrets...)
	cfg := c.cfg
	h := req.Hooks
	var res Result
	// The limiter's key: the request's shared-limit pool, else its model.
	key := req.Model
	if cfg.LimitKey != nil {
		key = cfg.LimitKey(req.Model)
	}
	flexMisses := 0
	for attempt := 1; ; attempt++ {
		charge := req.Charge
		if cfg.FollowCharge {
			charge = c.meter.paced(charge)
		}
		if err := c.daily.wait(admitCtx, cfg.Clock, key); err != nil {
			res.Err, res.Outcome = err, NotAdmitted
			return res
		}
		permit, err := cfg.Limiter.Reserve(admitCtx, key, charge)
		if err == nil {
			c.daily.admitted(cfg.Limiter, cfg.Clock, key)
		}
		if err == nil && admitCtx.Err() != nil {
			// Admitted as the run stopped (a probe released the waiters
			// of its model on a quota error): do not send.
			permit.Done(pace.NotSent)
			err = admitCtx.Err()
		}
		if err != nil {
			res.Err = err
			var tl *pace.TooLargeError
			if errors.As(err, &tl) {
				res.Outcome, res.Code, res.Message = Failed, "request_too_large", tl.Error()
				return res
			}
			res.Outcome = NotAdmitted
			return res
		}
		if h.Sending != nil {
			h.Sending(attempt)
		}
		mark := c.meter.sending(key)
		sentAt := cfg.Clock.Now()
		attemptCtx, cancelAttempt := context.WithTimeout(reqCtx, cfg.AttemptTimeout)
		ans, err := req.Attempt(attemptCtx)
		cancelAttempt()
		alone := c.meter.returned(mark)
		now := cfg.Clock.Now()
		res.Attempts, res.At, res.Answer, res.Err = attempt, now, ans, err
		if h.Attempted != nil {
			h.Attempted(attempt)
		}
		var f diagnose.Finding
		var bad2xx, bad2xxMsg string
		if err != nil && (ans == nil || !ans.Delivered) {
			res.Answer = nil
			if reqCtx.Err() != nil {
				// Abandoned (second Ctrl-C, grace over, client gone): no
				// result. The request went out and may have been processed.
				res.Reached = true
				permit.Done(pace.NotSent)
				res.Outcome = Abandoned
				return res
			}
			f = diagnose.ClassifyTransportError(err)
			if CannotConnect(err) {
				n := c.unreachable.Add(1)
				if !c.answered.Load() && (n >= UnreachableStop || attempt >= cfg.MaxAttempts) {
					// Nothing has reached the server: a wrong base URL or no
					// network. Give up rather than retry every request.
					permit.Done(pace.NotSent)
					res.Outcome, res.Finding, res.Unreachable = Unreachable, f, n
					return res
				}
			} else {
				res.Reached = true
			}
		} else {
			res.Reached = true
			c.answered.Store(true)
			c.unreachable.Store(0)
			f = diagnose.ClassifyAs(cfg.Provider.Name, ans.StatusCode, ans.Header, ans.Body, now)
			redactFinding(&f, secrets)
			if ans.StatusCode/100 == 2 {
				tok := f.RateLimits.Tokens
				if !tok.Known {
					tok = f.RateLimits.ProjectTokens
				}
				c.meter.answered(mark, alone, sentAt, req.Charge, tok)
			}
			c.daily.learn(key, f, charge, now)
			if h.Answered != nil {
				h.Answered(f, sentAt, now)
			}
			if ans.StatusCode/100 == 2 && !ans.Delivered {
				if bad2xx, bad2xxMsg = BadSuccess(ans.Body, f); bad2xx != "" {
					f.Retryable = true
					if f.Verdict != diagnose.NotAPIResponse {
						f.Message = bad2xxMsg // else keep the page's excerpt
					}
				}
			}
			if f.Verdict == diagnose.EdgeThrottled {
				// A CDN's 429: retryable after its retry-after, like a
				// rate limit.
				f.Retryable = true
			}
			if f.Retryable && overflowRetryAfter(ans.Header) {
				f.Wait = time.Duration(math.MaxInt64)
			}
			if ans.Delivered {
				// Bytes reached the client: nothing can be taken back.
				f.Retryable = false
			}
		}
		res.Finding = f
		httpAnswer := res.Answer != nil
		ok2xx := httpAnswer && ans.StatusCode/100 == 2 && bad2xx == ""
		outcome := pace.Failed
		switch {
		case ok2xx:
			outcome = pace.Success
		case f.Verdict == diagnose.ConcurrencyLimited:
			outcome = pace.ConcurrencyLimited
		case f.IsRateLimit():
			outcome = pace.RateLimited
		}
		wrongEndpoint := false
		switch {
		case ok2xx:
			c.succeeded.Store(true)
			c.endpointFaults.Store(0)
		case httpAnswer && !ans.Delivered && EndpointFault(f) && (!c.succeeded.Load() || f.Verdict == diagnose.NotAPIResponse):
			// The endpoint, not the request: retried (another attempt may
			// meet a working server), never recorded as the request's
			// failure; a few in a row stop everything.
			n := c.endpointFaults.Add(1)
			f.Retryable = true
			res.Finding = f
			wrongEndpoint = n >= EndpointStop || attempt >= cfg.MaxAttempts
		default:
			if httpAnswer {
				c.endpointFaults.Store(0)
			}
		}
		stopping := Outcome(-1)
		switch {
		case wrongEndpoint:
			stopping = WrongEndpoint
		case !ok2xx && f.Verdict == diagnose.QuotaExhausted:
			stopping = QuotaExhausted
		case !ok2xx && f.Verdict == diagnose.AuthFailed:
			stopping = AuthFailed
		}
		if stopping >= 0 && h.Stopping != nil {
			// Stop first, then release the permit (and the requests that
			// wait behind it): Observe and Done both end the limiter's
			// first-request probe.
			h.Stopping(stopping, f)
		}
		if httpAnswer {
			obs := ObservationFor(f.RateLimits, cfg.Provider)
			obs.Sent = sentAt
			// A shared budget learns its name from these when none was given.
			obs.Organization, obs.Project = ans.Header.Get("openai-organization"), ans.Header.Get("openai-project")
			cfg.Limiter.Observe(key, obs, now)
		}
		permit.Done(outcome)

		if ok2xx {
			res.Outcome = Succeeded
			return res
		}
		if h.Failed != nil {
			h.Failed(f)
		}
		if stopping >= 0 {
			res.Outcome = stopping
			return res
		}
		if !f.Retryable {
			res.Outcome = Failed
			res.Code, res.Message = string(f.Verdict), f.Message
			if httpAnswer {
				res.Code = ErrCode(f)
			}
			return res
		}
		// Retryable.
		if f.Wait > cfg.MaxWait {
			res.Outcome = WaitTooLong
			return res
		}
		if attempt >= cfg.MaxAttempts {
			res.Outcome, res.GaveUp = Failed, true
			msg, code := f.Message, ErrCode(f)
			if !httpAnswer {
				msg, code = err.Error(), string(f.Verdict)
			}
			if bad2xx != "" {
				code = bad2xx
			}
			res.Code, res.Message = code, fmt.Sprintf("%s (after %d attempts)", msg, attempt)
			return res
		}
		if f.Verdict == diagnose.FlexUnavailable {
			// Flex capacity is short: not a rate limit, so the buckets are
			// not paused (the default branch below only backs this request
			// off); after FlexFallback misses it goes as "auto".
			flexMisses++
			if cfg.FlexFallback > 0 && flexMisses == cfg.FlexFallback && req.FlexFallback != nil {
				req.FlexFallback()
			}
		}
		wait := cfg.Backoff.Delay(attempt-1, f.Wait, f.Wait > 0)
		if strings.HasPrefix(f.WaitSource, "reset-") {
			// A reset header says when the bucket is full again, not when
			// this request fits: back off at least that long (case B17a).
			wait = max(f.Wait, cfg.Backoff.Delay(attempt-1, 0, false))
		}
		if h.Retrying != nil {
			h.Retrying(f, wait)
		}
		switch f.Verdict {
		case diagnose.RPMLimited, diagnose.RPDLimited, diagnose.RampLimited:
			// slow_down: every caller eases off, not just this one.
			cfg.Limiter.Pause(key, pace.Requests, now.Add(wait))
		case diagnose.TPMLimited, diagnose.TPDLimited:
			cfg.Limiter.Pause(key, pace.Tokens, now.Add(wait))
		default:
			if err := cfg.Clock.Sleep(admitCtx, wait); err != nil {
				res.Outcome, res.Err = Stopped, err
				return res
			}
		}
	}
}

// CannotConnect reports whether a transport error means the server was
// never reached (connection refused, DNS failure).
func CannotConnect(err error) bool {
	var dnsErr *net.DNSError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dnsErr)
}

// overflowRetryAfter reports a numeric retry-after too large to parse
// (e.g. 99999999999999999999 seconds): a huge wait, not no hint.
func overflowRetryAfter(h http.Header) bool {
	v := strings.TrimSpace(h.Get("retry-after"))
	if v == "" {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return err != nil || n > int64(math.MaxInt64/int64(time.Second))
}

// BadSuccess checks a 2xx answer: an empty or non-JSON body, or an error
// envelope inside it (diagnose's verdict is not ok), is not a success.
// It returns the failure code and message, or "" for a good answer.
func BadSuccess(body []byte, f diagnose.Finding) (code, msg string) {
	t := bytes.TrimSpace(body)
	switch {
	case len(t) == 0:
		return "invalid_response", "HTTP 2xx with an empty body"
	case !json.Valid(t):
		s := string(t)
		if len(s) > 120 {
			s = s[:120] + "…"
		}
		return "invalid_response", fmt.Sprintf("HTTP 2xx with a body that is not JSON (truncated?): %q", s)
	case f.Verdict != diagnose.OK && f.Verdict != "":
		m := f.Message
		if m == "" {
			m = string(f.Verdict)
		}
		return ErrCode(f), "HTTP 2xx carrying an error: " + m
	}
	return "", ""
}

// ErrCode is the code recorded for a failure: the error envelope's code,
// else the verdict.
func ErrCode(f diagnose.Finding) string {
	if f.Verdict == diagnose.RequestTooLarge || f.Verdict == diagnose.EdgeThrottled {
		return string(f.Verdict)
	}
	if f.Code != "" {
		return f.Code
	}
	return string(f.Verdict)
}

// LimitKind names the limit a rate-limit finding hit: "RPM", "RPD",
// "TPM", "TPD", "concurrency", "quota", "request_too_large",
// "edge_throttled", else "other".
func LimitKind(f diagnose.Finding) string {
	switch f.Verdict {
	case diagnose.RPMLimited:
		return "RPM"
	case diagnose.RPDLimited:
		return "RPD"
	case diagnose.TPMLimited:
		return "TPM"
	case diagnose.TPDLimited:
		return "TPD"
	case diagnose.ConcurrencyLimited:
		return "concurrency"
	case diagnose.QuotaExhausted:
		return "quota"
	case diagnose.RequestTooLarge, diagnose.EdgeThrottled:
		return string(f.Verdict)
	case diagnose.FlexUnavailable:
		return "flex_unavailable"
	}
	return "other"
}

// ObservationFor is Observation for an answer of provider p: a request
// window shorter than a minute (Azure's 10 s) is scaled to the per-minute
// figures the limiter keeps, so that 10 requests per 10 s pace at 60 RPM,
// not 10; and when the project's token window binds
// (x-ratelimit-*-project-tokens with fewer tokens left than the
// organization's), the limiter follows it.
func ObservationFor(rl diagnose.RateLimits, p provider.Provider) pace.Observation {
	if rl.Binding() == "project" {
		rl.Tokens = rl.ProjectTokens
	}
	obs := Observation(rl)
	if w := p.RequestWindow; w > 0 && w < time.Minute && !rl.Requests.Daily {
		k := int64(time.Minute / w)
		if obs.Requests.Limit > 0 {
			obs.Requests.Limit *= k
		}
		if obs.Requests.Remaining > 0 {
			obs.Requests.Remaining *= k
		}
	}
	return obs
}

// Observation converts diagnose's parsed headers for the limiter. A daily
// window is passed with its reset so that pace does not take it for a
// per-minute limit.
func Observation(rl diagnose.RateLimits) pace.Observation {
	conv := func(w diagnose.Window) pace.Window {
		if !w.Known {
			return pace.Window{Limit: -1, Remaining: -1, Reset: -1}
		}
		pw := pace.Window{Limit: w.Limit, Remaining: w.Remaining, Reset: w.Reset}
		if w.Daily && pw.Reset <= time.Minute {
			pw.Reset = 24 * time.Hour
		}
		if !w.ResetKnown {
			// Absent or unparseable ("-1", "1d", "soon"): unknown, not 0 s.
			pw.Reset = -1
			if w.Daily {
				pw.Reset = 24 * time.Hour
			}
		}
		return pw
	}
	return pace.Observation{Requests: conv(rl.Requests), Tokens: conv(rl.Tokens)}
}

// NewFor returns the cycle of `oairl run` and `oairl proxy` alike: cfg
// with the limiter keys of reg (a shared-limit group, e.g. gpt-4o and its
// snapshots, is one pair of buckets; nil reg: one per model name) and the
// provider p whose header semantics classify the answers. Both commands
// build their cycle here so that their pacing can never differ; cfg's own
// Provider and LimitKey are replaced.
func NewFor(reg *models.Registry, p provider.Provider, cfg Config) *Cycle {
	cfg.Provider = p
	cfg.LimitKey = nil
	if reg != nil {
		cfg.LimitKey = reg.LimitKey
	}
	return New(cfg)
}

// TierLimits returns the configured limits of a limiter key (a model name,
// or a shared-limit group's id as reg.LimitKey gives it): the published
// limits of tier ("" none) for that key, overridden by rpm and tpm when
// > 0. Zero fields are learned from the answers' headers. run and proxy
// both use it, so a group's limits are the same in both.
func TierLimits(reg *models.Registry, tier string, rpm, tpm int64) func(key string) pace.Limits {
	return func(key string) pace.Limits {
		var l pace.Limits
		if tier != "" && reg != nil {
			if tl, ok := reg.KeyLimits(reg.LimitKey(key), tier); ok {
				l.RPM, l.TPM = tl.RPM, tl.TPM
			}
		}
		if rpm > 0 {
			l.RPM = rpm
		}
		if tpm > 0 {
			l.TPM = tpm
		}
		return l
	}
}

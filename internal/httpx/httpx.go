// Package httpx is oairl's one HTTP layer: every API call (the raw sender
// of run, proxy and diagnose, and go-openai's Files and Batches calls) goes
// through the *http.Client that New builds. Its transport
//
//   - sets "User-Agent: oairl/VERSION" on requests that carry none (a
//     proxied app's own User-Agent is kept);
//   - keeps an idle pool sized to the caller's concurrency (Go's default
//     keeps 2 idle connections per host, so most connections of a
//     concurrent run would be reopened);
//   - traces every attempt to Options.Trace when set (OAIRL_DEBUG=api or
//     --debug): method, URL, status, timing, headers and the first
//     TraceBodyLimit bytes of each body, with the API key, bearer tokens
//     and other secrets masked by internal/redact;
//   - retries what can safely be retried, with the project's one
//     classifier (diagnose.Classify) and one backoff (pace.Backoff), on an
//     injected clock: connection errors, 408, 409, 429 and 5xx, honouring
//     retry-after-ms, retry-after and x-should-retry, and never retrying
//     insufficient_quota or a billing code, auth failures, or the Batch
//     API's enqueued-token limit (batch_queue_full, which its caller
//     schedules itself).
//
// Which calls are retried (modelled on openai-go's shouldRetry, stricter
// for POST):
//
//   - GET, HEAD, OPTIONS, PUT and DELETE: every retryable failure.
//   - POST marked with Idempotent(ctx) (e.g. cancelling a batch): the same.
//   - Any other POST: only answers that prove the server did not act on it
//     (408, 409, 429) and a failure to connect at all; never a 5xx or a
//     connection dropped after the request was written, since the server
//     may have created the object (a second batch would be billed twice).
//   - A request marked WithoutRetry(ctx): never. run and proxy mark their
//     sends so: their send cycle has its own retry loop, which pauses the
//     limiter for every worker; a second layer would multiply attempts.
//   - A request whose body cannot be replayed (no GetBody): never.
//
// A server wait longer than Options.MaxWait (a daily limit asking for
// hours) is not waited for: the answer goes back to the caller, which
// decides (exit 6, resume later). Errors are never wrapped here: an HTTP
// error status is a response, as with net/http; WithExchange lets a caller
// that only sees a library's error (go-openai) recover the last error
// answer whole: status, headers and body.
package httpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/redact"
)

// Defaults.
const (
	// DefaultMaxRetries is the number of retries after the first attempt
	// (openai-go's default is 2; oairl's calls are few and cheap to repeat,
	// so a brief 429 storm is ridden out).
	DefaultMaxRetries = 4
	// DefaultMaxWait is the longest server-requested wait honoured inside
	// one call.
	DefaultMaxWait = 60 * time.Second
	// DefaultTraceBodyLimit is how many bytes of each body a trace shows.
	DefaultTraceBodyLimit = 2048
	// DefaultMaxConns is the idle pool per host when Options.MaxConns is 0.
	DefaultMaxConns = 16
	// maxErrorBody caps how much of an error answer is read to classify it.
	maxErrorBody = 1 << 20
)

// Options configure New. The zero value is a client with oairl's pool and
// no retries, no trace and no User-Agent.
type Options struct {
	// UserAgent is set on requests without one, e.g. "oairl/1.2.0".
	UserAgent string
	// MaxConns sizes the idle connection pool per host: the caller's
	// concurrency (requests in flight at once). 0 = DefaultMaxConns.
	MaxConns int
	// MaxRetries is the number of retries after the first attempt; 0 means
	// a single attempt (no retries), negative means DefaultMaxRetries.
	MaxRetries int
	// MaxWait caps a server-requested wait (0 = DefaultMaxWait): a longer
	// one returns the answer to the caller instead of sleeping.
	MaxWait time.Duration
	// Backoff computes the waits (nil = pace.NewBackoff with a random seed).
	Backoff *pace.Backoff
	// Clock times the waits and the classification (nil = the wall clock).
	Clock clock.Clock
	// Trace receives a trace of every attempt (nil = none).
	Trace io.Writer
	// TraceBodyLimit is how many bytes of each body the trace shows
	// (0 = DefaultTraceBodyLimit).
	TraceBodyLimit int
	// Secrets are values masked in the trace besides anything that looks
	// like a key (the API key, an organization id if asked).
	Secrets []string
	// Base is the underlying transport (nil = a clone of
	// http.DefaultTransport with the pool sized by MaxConns).
	Base http.RoundTripper
}

// New returns an *http.Client whose transport implements the package
// documentation. It has no overall timeout: the caller's context bounds
// each call, retries included.
func New(o Options) *http.Client {
	return &http.Client{Transport: NewTransport(o)}
}

// NewTransport returns the RoundTripper of New.
func NewTransport(o Options) *Transport {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxRetries < 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.Backoff == nil {
		o.Backoff = pace.NewBackoff(uint64(time.Now().UnixNano()))
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.TraceBodyLimit <= 0 {
		o.TraceBodyLimit = DefaultTraceBodyLimit
	}
	if o.Base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = o.MaxConns
		t.MaxIdleConns = max(100, o.MaxConns)
		o.Base = t
	}
	return &Transport{o: o}
}

// Transport is the RoundTripper behind New. Safe for concurrent use.
type Transport struct {
	o  Options
	mu sync.Mutex // serialises trace output
}

type ctxKey int

const (
	keyNoRetry ctxKey = iota
	keyIdempotent
	keyExchange
)

// WithoutRetry marks requests made with ctx as never retried by the
// transport (the caller has its own retry loop: run's and proxy's send
// cycle, diagnose's one probe). User-Agent, pool, trace and redaction
// still apply.
func WithoutRetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, keyNoRetry, true)
}

// NoRetry wraps rt so that every request it sends is marked WithoutRetry:
// for a caller that takes a RoundTripper rather than a context (a reverse
// proxy forwarding an app's requests, whose send cycle retries itself).
func NoRetry(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return rt.RoundTrip(r.WithContext(WithoutRetry(r.Context())))
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Idempotent marks a POST made with ctx as safe to repeat (cancelling a
// batch twice is the same as once), so it is retried like a GET.
func Idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, keyIdempotent, true)
}

// Exchange is the last error answer (status 400 or more) of a call made
// with a context from WithExchange: its status, headers and body (at most
// 1 MiB), and how many attempts the call made. Zero Status means no error
// answer was seen (success, or only transport errors).
type Exchange struct {
	mu       sync.Mutex
	status   int
	header   http.Header
	body     []byte
	attempts int
}

// WithExchange returns a context whose calls record their last error
// answer in the returned Exchange.
func WithExchange(ctx context.Context) (context.Context, *Exchange) {
	e := &Exchange{}
	return context.WithValue(ctx, keyExchange, e), e
}

// Response returns the recorded answer (status 0 when none).
func (e *Exchange) Response() (status int, h http.Header, body []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status, e.header, e.body
}

// Attempts returns how many attempts the call made (0 if none ran).
func (e *Exchange) Attempts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.attempts
}

func (e *Exchange) record(status int, h http.Header, body []byte) {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.status, e.header, e.body = status, h.Clone(), body
	e.mu.Unlock()
}

func (e *Exchange) attempt() {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.attempts++
	e.mu.Unlock()
}

type retryMode int

const (
	retryNone     retryMode = iota
	retryRejected           // only answers proving the server did nothing
	retryAll
)

func (t *Transport) mode(req *http.Request) retryMode {
	ctx := req.Context()
	if t.o.MaxRetries == 0 || ctx.Value(keyNoRetry) != nil {
		return retryNone
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return retryNone // the body cannot be sent twice
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return retryAll
	}
	if ctx.Value(keyIdempotent) != nil {
		return retryAll
	}
	return retryRejected
}

// RoundTrip sends req, retrying as the package documentation says.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	ex, _ := ctx.Value(keyExchange).(*Exchange)
	mode := t.mode(req)
	for attempt := 0; ; attempt++ {
		r := req.Clone(ctx)
		if t.o.UserAgent != "" && r.Header.Get("User-Agent") == "" {
			r.Header.Set("User-Agent", t.o.UserAgent)
		}
		if attempt > 0 && req.GetBody != nil {
			b, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = b
		}
		ex.attempt()
		t.traceRequest(r, attempt)
		start := time.Now()
		resp, err := t.o.Base.RoundTrip(r)
		elapsed := time.Since(start)
		if err != nil {
			t.tracef("! %s %s: %s (%s)", r.Method, redactURL(r.URL.String()), t.redact(err.Error()), elapsed.Round(time.Microsecond))
			f := diagnose.ClassifyTransportError(err)
			retry := f.Retryable && (mode == retryAll || mode == retryRejected && isDialError(err))
			if !retry || attempt >= t.o.MaxRetries || ctx.Err() != nil {
				return nil, err
			}
			if werr := t.wait(ctx, attempt, f); werr != nil {
				return nil, err
			}
			continue
		}
		if resp.StatusCode < 400 {
			t.traceResponse(resp, elapsed, nil)
			return resp, nil
		}
		// An error answer is small: read it whole, so the classifier sees
		// the body and the caller still gets it.
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		t.traceResponse(resp, elapsed, body)
		ex.record(resp.StatusCode, resp.Header, body)
		if rerr != nil {
			return resp, nil
		}
		f := diagnose.Classify(resp.StatusCode, resp.Header, body, t.o.Clock.Now())
		if !t.shouldRetry(mode, resp, f) || attempt >= t.o.MaxRetries {
			return resp, nil
		}
		if f.Wait > t.o.MaxWait {
			t.tracef("  not retried: the server asks to wait %s (over %s)", f.Wait, t.o.MaxWait)
			return resp, nil
		}
		if err := t.wait(ctx, attempt, f); err != nil {
			return nil, err
		}
		// Rewind for the caller: the next attempt replaces resp.
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
}

// shouldRetry decides on an error answer (status >= 400).
func (t *Transport) shouldRetry(mode retryMode, resp *http.Response, f diagnose.Finding) bool {
	if mode == retryNone {
		return false
	}
	switch f.Verdict {
	case diagnose.QuotaExhausted, diagnose.AuthFailed, diagnose.BatchQueueFull:
		return false // never: no wait makes these succeed (or the caller schedules them)
	}
	s := resp.StatusCode
	retryableStatus := s == 408 || s == 409 || s == 429 || s >= 500
	if mode == retryRejected && s >= 500 {
		return false // the server may have acted on the POST
	}
	// x-should-retry is the server's word either way (openai-go's
	// shouldRetry); "false" already made the finding non-retryable.
	if strings.EqualFold(strings.TrimSpace(resp.Header.Get("x-should-retry")), "true") {
		return true
	}
	return retryableStatus && f.Retryable
}

// wait sleeps the backoff's delay for retry number attempt on the clock.
func (t *Transport) wait(ctx context.Context, attempt int, f diagnose.Finding) error {
	d := t.o.Backoff.Delay(attempt, f.Wait, f.Wait > 0)
	src := f.WaitSource
	if f.Wait <= 0 {
		src = "backoff"
	}
	t.tracef("  retry %d/%d in %s (%s; wait from %s)", attempt+1, t.o.MaxRetries, d, f.Verdict, src)
	return t.o.Clock.Sleep(ctx, d)
}

// isDialError reports whether err happened before any byte of the request
// was sent: the server cannot have acted on it.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// --- trace ---

// sensitiveHeaders are shown masked whatever their value looks like.
var sensitiveHeaders = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Api-Key": true, "X-Api-Key": true,
	"Cookie": true, "Set-Cookie": true, "X-Oairl-Proxy-Token": true,
}

func (t *Transport) redact(s string) string {
	return redact.String(s, t.o.Secrets...)
}

func redactURL(u string) string { return redact.String(u) }

func (t *Transport) tracef(format string, args ...any) {
	if t.o.Trace == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.o.Trace, "oairl debug: "+format+"\n", args...)
}

func (t *Transport) traceHeaders(dir string, h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var lines []string
	for _, k := range keys {
		for _, v := range h[k] {
			if sensitiveHeaders[http.CanonicalHeaderKey(k)] {
				v = maskValue(v)
			} else {
				v = t.redact(v)
			}
			lines = append(lines, fmt.Sprintf("%s %s: %s", dir, k, v))
		}
	}
	return lines
}

// maskValue keeps a scheme word ("Bearer") and hides the rest.
func maskValue(v string) string {
	if i := strings.IndexByte(v, ' '); i > 0 && i < 16 {
		return v[:i] + " ***"
	}
	return "***"
}

func (t *Transport) traceBody(dir string, b []byte, total int64) string {
	shown := b[:min(len(b), t.o.TraceBodyLimit)]
	more := ""
	if rest := max(total, int64(len(b))) - int64(len(shown)); rest > 0 {
		more = fmt.Sprintf(" … (%d more bytes)", rest)
	}
	s := strings.TrimRight(string(shown), "\r\n")
	return fmt.Sprintf("%s body: %s%s", dir, t.redact(s), more)
}

func (t *Transport) traceRequest(r *http.Request, attempt int) {
	if t.o.Trace == nil {
		return
	}
	lines := []string{}
	a := ""
	if attempt > 0 {
		a = fmt.Sprintf(" (attempt %d)", attempt+1)
	}
	lines = append(lines, fmt.Sprintf("> %s %s%s", r.Method, redactURL(r.URL.String()), a))
	lines = append(lines, t.traceHeaders(">", r.Header)...)
	if r.GetBody != nil {
		if b, err := r.GetBody(); err == nil {
			head, _ := io.ReadAll(io.LimitReader(b, int64(t.o.TraceBodyLimit)+1))
			b.Close()
			lines = append(lines, t.traceBody(">", head, r.ContentLength))
		}
	}
	t.tracef("%s", strings.Join(lines, "\noairl debug: "))
}

func (t *Transport) traceResponse(resp *http.Response, elapsed time.Duration, body []byte) {
	if t.o.Trace == nil {
		return
	}
	lines := []string{fmt.Sprintf("< %s (%s)", resp.Status, elapsed.Round(time.Microsecond))}
	lines = append(lines, t.traceHeaders("<", resp.Header)...)
	if body != nil {
		lines = append(lines, t.traceBody("<", body, int64(len(body))))
	} else if resp.Body != nil && resp.Body != http.NoBody {
		// A success body may be large or a stream: show its head when the
		// caller has read it, without buffering or delaying it.
		resp.Body = &traceBody{rc: resp.Body, t: t, limit: t.o.TraceBodyLimit}
	}
	t.tracef("%s", strings.Join(lines, "\noairl debug: "))
}

// traceBody passes a response body through and traces its first bytes
// when it is closed.
type traceBody struct {
	rc    io.ReadCloser
	t     *Transport
	limit int
	head  []byte
	total int64
	once  sync.Once
}

func (b *traceBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if room := b.limit + 1 - len(b.head); room > 0 {
		b.head = append(b.head, p[:min(n, room)]...)
	}
	b.total += int64(n)
	return n, err
}

func (b *traceBody) Close() error {
	b.once.Do(func() {
		b.t.tracef("%s", b.t.traceBody("<", b.head, b.total))
	})
	return b.rc.Close()
}

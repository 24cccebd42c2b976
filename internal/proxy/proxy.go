// Package proxy is the engine of `oairl proxy`: an OpenAI-compatible HTTP
// gateway that an unchanged app reaches through OPENAI_BASE_URL and that
// turns the app's 429s into a paced queue.
//
// A model request (POST /v1/chat/completions, /v1/completions,
// /v1/embeddings, /v1/responses, /v1/moderations) goes through a chain of
// small stages:
//
//	accept  — loopback or --proxy-token, body read once (replayable)
//	count   — tokens.Counter: the same TPM charge as `oairl count`
//	admit   — admitter: a bounded queue per model, priorities high|normal|
//	          low (X-Oairl-Priority), round-robin among callers within a
//	          class, shed with an OpenAI-style 429 + Retry-After after the
//	          queue wait; then the pace.Limiter (local or a shared budget)
//	forward — forwarder: body byte for byte with the app's headers; a 2xx
//	          is streamed back as it arrives (SSE flushed per chunk)
//	classify, retry or return — internal/send, the cycle `oairl run` uses:
//	          diagnose.Classify, Observe/Pause, pace.Backoff; retried only
//	          while nothing reached the app; quota, billing, auth and other
//	          4xx go back unchanged at once
//
// Everything else (files, batches, models, unknown paths) is passed
// through unpaced and unchanged. /healthz answers "ok"; /metrics serves
// the Prometheus metrics of MetricsTable.
package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/provider"
	"github.com/oairl/oairl/internal/redact"
	"github.com/oairl/oairl/internal/send"
	"github.com/oairl/oairl/tokens"
)

// Config configures a Server.
type Config struct {
	// Upstream is the API base URL, e.g. https://api.openai.com/v1
	// (required). A request for /v1/X goes to Upstream + /X when Upstream
	// ends in /v1, else to Upstream + /v1/X.
	Upstream string
	// Limiter paces the model requests (required): pace.Local, or a
	// shared budget.
	Limiter pace.Limiter
	// Limits, when set, tells the limits in force of a model for the
	// oairl_limit metric and the Retry-After of a shed request.
	Limits func(model string) pace.Limits
	// Counter counts the requests (default: the built-in registry, 1024
	// assumed output tokens, as `oairl count`).
	Counter *tokens.Counter
	// Registry maps models to their limiter keys: models that share one
	// limit (gpt-4o and its snapshots) are paced as one pair of buckets,
	// as `oairl run` does (default models.Default()). Limits and the
	// oairl_limit metric are then asked about those keys.
	Registry *models.Registry
	// Provider is the upstream's kind (--provider; zero: OpenAI): its
	// answers are classified with its header semantics.
	Provider provider.Provider
	// Clock paces, waits and times the queue (default the wall clock;
	// clock.Scaled for --time-scale).
	Clock clock.Clock
	// Transport sends upstream (default a clone of
	// http.DefaultTransport with an idle pool sized for MaxConcurrent).
	Transport http.RoundTripper
	// MaxQueueWait is the longest a request waits for admission before it
	// is shed (default 30s, in the clock's time).
	MaxQueueWait time.Duration
	// MaxQueue bounds the requests waiting for admission (default 10000);
	// beyond it requests are shed at once.
	MaxQueue int
	// MaxQueueBytes bounds the bytes of request bodies held by the model
	// requests being read, waiting for admission or in flight (default
	// 256 MiB), so memory stays bounded under any flood. A body is only
	// read once the budget admits it (its Content-Length first; a chunked
	// body is counted while it is read); beyond the budget a request is
	// answered 429 (retry-after) at once, and a single body over
	// min(MaxQueueBytes, 64 MiB) 413.
	MaxQueueBytes int64
	// MaxAttempts, MaxWait, AttemptTimeout and Seed configure the send
	// cycle (defaults 8, 2m, 10m, random).
	MaxAttempts    int
	MaxWait        time.Duration
	AttemptTimeout time.Duration
	// FlexFallback, when > 0, resends a service_tier "flex" request as
	// "auto" after that many 429 resource_unavailable answers (the send
	// cycle's Config.FlexFallback, as `oairl run --flex-fallback`); 0 keeps
	// retrying flex, backing off without pausing the rate-limit buckets.
	FlexFallback int
	Seed         uint64
	// APIKey is sent as "Authorization: Bearer KEY" on requests that carry
	// no Authorization (--api-key-env); it is never logged.
	APIKey string
	// ProxyToken, when set, is required on every request except /healthz:
	// header X-Oairl-Token, or "Authorization: Bearer TOKEN" (then removed,
	// and APIKey is sent instead). Compared in constant time.
	ProxyToken string
	// PriorityByKey maps the last characters of a bearer key (as OpenAI's
	// dashboard shows them, e.g. "abcd") to a class, for requests without
	// X-Oairl-Priority.
	PriorityByKey map[string]Priority
	// Log receives one line per request (nil: none); LogJSON makes them
	// JSON objects; Redact masks the organization and project in them.
	Log     io.Writer
	LogJSON bool
	Redact  bool
}

// modelPaths are the endpoints that are counted and paced.
var modelPaths = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations"}

// Server is the proxy; an http.Handler. Safe for concurrent use.
type Server struct {
	cfg      Config
	upstream *url.URL
	admit    *admitter
	cycle    *send.Cycle
	fwd      *forwarder
	pass     *httputil.ReverseProxy
	met      *metrics
	logMu    sync.Mutex

	statsMu sync.Mutex
	stats   Stats

	// stopping ends when the grace of a stop is over: requests still
	// waiting for admission (or between attempts) are then answered 503
	// at once. active counts the handlers running, so that Serve returns
	// (and the summary is printed) only after the last one finished.
	bodies byteBudget

	stopping context.Context
	stop     context.CancelFunc
	active   atomic.Int64
}

// Stats are the proxy's totals since it started (the summary at exit).
type Stats struct {
	Requests      int            // model requests answered
	ByCode        map[int]int    // model requests by status returned
	PassedThrough int            // other requests
	Shed          int            // answered 429 by the proxy (queue wait/full, body budget)
	ShedBytes     int            // of Shed: the body budget (MaxQueueBytes) was spent
	TooLarge      int            // answered request_too_large by the proxy
	Attempts      int            // upstream attempts of model requests
	Retries       int            // upstream attempts retried
	Upstream429   map[string]int // by limit
	Charged       int64          // tokens reserved
	QueueWaitMax  time.Duration  // longest admission wait (proxy clock)
	QueueWaitSum  time.Duration
	Admitted      int
	ClientGone    int // apps that went away before their answer
	// ShutdownShed: answered 503 (retryable) because the grace of a stop
	// ended before their answer: never sent, or sent and abandoned
	// (ShutdownAbandoned of them).
	ShutdownShed      int
	ShutdownAbandoned int
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Limiter == nil {
		return nil, errors.New("proxy: no limiter")
	}
	u, err := url.Parse(strings.TrimRight(cfg.Upstream, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("proxy: upstream base URL %q is not an absolute URL", redact.URL(cfg.Upstream, cfg.APIKey))
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Registry == nil {
		cfg.Registry = models.Default()
	}
	if cfg.Counter == nil {
		cfg.Counter = tokens.NewCounter(tokens.Options{Registry: cfg.Registry, AssumeOutput: 1024})
	}
	if cfg.MaxQueueWait <= 0 {
		cfg.MaxQueueWait = 30 * time.Second
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 10000
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	if cfg.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 1000
		t.MaxIdleConnsPerHost = 1000
		cfg.Transport = t
	}
	s := &Server{cfg: cfg, upstream: u, fwd: &forwarder{rt: cfg.Transport}, met: newMetrics()}
	s.bodies.max = cfg.MaxQueueBytes
	s.stopping, s.stop = context.WithCancel(context.Background())
	s.stats.ByCode = map[int]int{}
	s.stats.Upstream429 = map[string]int{}
	s.admit = newAdmitter(cfg.Limiter, cfg.Clock, cfg.MaxQueueWait, cfg.MaxQueue)
	s.admit.onDepth = func(p Priority, d int) { s.met.queueDepth.WithLabelValues(p.String()).Add(float64(d)) }
	s.admit.onWait = func(d time.Duration) {
		s.met.queueWait.Observe(d.Seconds())
		s.statsMu.Lock()
		s.stats.QueueWaitSum += d
		s.stats.QueueWaitMax = max(s.stats.QueueWaitMax, d)
		s.statsMu.Unlock()
	}
	// The cycle `oairl run` uses, built by the same constructor: limiter
	// keys from the registry (shared-limit groups), the provider's header
	// semantics.
	s.cycle = send.NewFor(cfg.Registry, cfg.Provider, send.Config{Limiter: s.admit, Clock: cfg.Clock, Backoff: pace.NewBackoff(cfg.Seed),
		MaxAttempts: cfg.MaxAttempts, MaxWait: cfg.MaxWait, AttemptTimeout: cfg.AttemptTimeout,
		FlexFallback: cfg.FlexFallback, FollowCharge: true})
	s.pass = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = s.upstreamURL(pr.In.URL)
			pr.Out.Host = ""
			pr.Out.Header = s.outHeader(pr.In)
		},
		Transport:     cfg.Transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, http.StatusBadGateway, "upstream_error", "server_error",
				"oairl proxy could not reach the upstream API: "+redact.String(err.Error(), cfg.APIKey), nil)
		},
	}
	return s, nil
}

// Stats returns a copy of the totals.
func (s *Server) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	st := s.stats
	st.ByCode = maps(s.stats.ByCode)
	st.Upstream429 = maps(s.stats.Upstream429)
	return st
}

func maps[K comparable](m map[K]int) map[K]int {
	out := make(map[K]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// upstreamURL maps an incoming URL onto the upstream base.
func (s *Server) upstreamURL(in *url.URL) *url.URL {
	u := *s.upstream
	p := in.Path
	if strings.HasSuffix(u.Path, "/v1") && (p == "/v1" || strings.HasPrefix(p, "/v1/")) {
		p = strings.TrimPrefix(p, "/v1")
	}
	u.Path = u.Path + p
	u.RawPath = ""
	u.RawQuery = in.RawQuery
	return &u
}

// outHeader is the header sent upstream: the app's, less hop-by-hop and
// oairl's own headers and Accept-Encoding (the transport negotiates
// compression itself and hands back plain bodies, which the classifier
// reads); the proxy token is removed and the injected key added.
func (s *Server) outHeader(in *http.Request) http.Header {
	h := make(http.Header, len(in.Header))
	copyHeader(h, in.Header)
	h.Del("Accept-Encoding")
	h.Del("Content-Length")
	if s.cfg.ProxyToken != "" && bearer(in.Header) == s.cfg.ProxyToken {
		h.Del("Authorization")
	}
	if h.Get("Authorization") == "" && s.cfg.APIKey != "" {
		h.Set("Authorization", "Bearer "+s.cfg.APIKey)
	}
	return h
}

func bearer(h http.Header) string {
	a := h.Get("Authorization")
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// ServeHTTP implements http.Handler: the accept stage.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Add(-1)
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
		return
	}
	if s.cfg.ProxyToken != "" && !s.tokenOK(r) {
		writeError(w, http.StatusUnauthorized, "invalid_proxy_token", "invalid_request_error",
			"oairl proxy: missing or wrong proxy token (send X-Oairl-Token, or the token as the bearer key)", nil)
		return
	}
	if r.URL.Path == "/metrics" {
		s.refreshLimits()
		promhttp.HandlerFor(s.met.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
		return
	}
	if r.Method == http.MethodPost && slices.Contains(modelPaths, strings.TrimRight(r.URL.Path, "/")) {
		s.serveModel(w, r)
		return
	}
	s.statsMu.Lock()
	s.stats.PassedThrough++
	s.statsMu.Unlock()
	s.pass.ServeHTTP(w, r)
}

func (s *Server) tokenOK(r *http.Request) bool {
	want := []byte(s.cfg.ProxyToken)
	for _, got := range []string{r.Header.Get("X-Oairl-Token"), bearer(r.Header)} {
		if got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1 {
			return true
		}
	}
	return false
}

// caller identifies the app for fairness: a hash of its bearer key, else
// its address. Never the key itself.
func caller(r *http.Request) string {
	if k := bearer(r.Header); k != "" {
		sum := sha256.Sum256([]byte(k))
		return hex.EncodeToString(sum[:6])
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return host
}

func (s *Server) priority(r *http.Request) (Priority, error) {
	if v := r.Header.Get("X-Oairl-Priority"); v != "" {
		p, ok := ParsePriority(strings.TrimSpace(v))
		if !ok {
			return Normal, fmt.Errorf("X-Oairl-Priority must be high, normal or low, not %q", v)
		}
		return p, nil
	}
	if k := bearer(r.Header); k != "" {
		for suffix, p := range s.cfg.PriorityByKey {
			if strings.HasSuffix(k, suffix) {
				return p, nil
			}
		}
	}
	return Normal, nil
}

// maxBody bounds a model request body (OpenAI accepts up to tens of MB
// with images).
const maxBody = 64 << 20

// DefaultMaxQueueBytes is the default Config.MaxQueueBytes: 256 MiB.
const DefaultMaxQueueBytes = 256 << 20

// byteBudget counts the bytes of request bodies held in memory.
type byteBudget struct {
	mu        sync.Mutex
	max, held int64
}

// take reserves n bytes; false (nothing taken) when they do not fit.
func (b *byteBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held+n > b.max {
		return false
	}
	b.held += n
	return true
}

func (b *byteBudget) give(n int64) {
	b.mu.Lock()
	b.held -= n
	b.mu.Unlock()
}

// Held returns the bytes of request bodies held now (tests).
func (b *byteBudget) Held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

var (
	errBodyTooLarge = errors.New("request body too large")
	errBodyBudget   = errors.New("request body budget spent")
)

// readBody reads a model request's body into memory once the byte budget
// admits it: a declared Content-Length is checked (and reserved) before a
// byte is read; a body of unknown length (chunked) is reserved as its
// buffer grows. *held is what was reserved (the caller gives it back when
// the request is over, whatever the error).
func (s *Server) readBody(r *http.Request, held *int64) ([]byte, error) {
	limit := min(int64(maxBody), s.cfg.MaxQueueBytes)
	if n := r.ContentLength; n >= 0 {
		if n > limit {
			return nil, errBodyTooLarge
		}
		if !s.bodies.take(n) {
			return nil, errBodyBudget
		}
		*held = n
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return nil, errBodyTooLarge
			}
			newCap := min(int64(cap(buf))+max(int64(cap(buf)), 32<<10), limit+1)
			if !s.bodies.take(newCap - int64(cap(buf))) {
				return nil, errBodyBudget
			}
			*held += newCap - int64(cap(buf))
			nb := make([]byte, len(buf), newCap)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, errBodyTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// reqLog is what the log line of one request says.
type reqLog struct {
	start    time.Time
	model    string
	prio     Priority
	charge   int64
	status   int
	attempts int
	wait     time.Duration
	outcome  string
	org      string
	project  string
	// flexFallback: the request was resent as service_tier "auto"
	// (Config.FlexFallback).
	flexFallback bool
}

func (s *Server) serveModel(w http.ResponseWriter, r *http.Request) {
	lg := reqLog{start: time.Now()}
	lg.org, lg.project = r.Header.Get("OpenAI-Organization"), r.Header.Get("OpenAI-Project")
	var held int64
	defer func() { s.bodies.give(held) }()
	body, err := s.readBody(r, &held)
	switch {
	case errors.Is(err, errBodyTooLarge):
		// Not read (or not further): the connection closes after this.
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, "request_body_too_large", "invalid_request_error",
			fmt.Sprintf("oairl proxy: request body over %d bytes", min(int64(maxBody), s.cfg.MaxQueueBytes)),
			map[string]string{"x-should-retry": "false"})
		lg.status, lg.outcome = http.StatusRequestEntityTooLarge, "request_body_too_large"
		s.done(&lg)
		return
	case errors.Is(err, errBodyBudget):
		w.Header().Set("Connection", "close")
		s.writeBytesShed(w)
		lg.status, lg.outcome = http.StatusTooManyRequests, "queue_bytes"
		s.statsMu.Lock()
		s.stats.Shed++
		s.stats.ShedBytes++
		s.statsMu.Unlock()
		s.done(&lg)
		return
	case err != nil:
		s.clientGone(&lg)
		return
	}
	// count
	a := s.cfg.Counter.Analyze(r.URL.Path, body)
	lg.model, lg.charge = a.Count.Model, a.Count.TPMCharge
	prio, perr := s.priority(r)
	if perr != nil {
		writeError(w, http.StatusBadRequest, "invalid_priority", "invalid_request_error", "oairl proxy: "+perr.Error(), nil)
		lg.status, lg.outcome = 400, "invalid_priority"
		s.done(&lg)
		return
	}
	lg.prio = prio
	if lg.model == "" {
		// Not a countable body (no model, not JSON): the API answers it
		// (400); forward it unpaced.
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		rec := &statusRecorder{ResponseWriter: w}
		s.pass.ServeHTTP(rec, r)
		lg.status, lg.outcome = rec.code(), "unpaced"
		s.done(&lg)
		return
	}
	// admit → forward → classify → retry or return
	hdr := s.outHeader(r)
	target := s.upstreamURL(r.URL).String()
	ctx, cancelAdmit := context.WithCancel(withTicket(r.Context(), ticket{prio: prio, caller: caller(r)}))
	defer cancelAdmit()
	// The end of a stop's grace ends the admission wait (and waits
	// between attempts) of every request at once.
	defer context.AfterFunc(s.stopping, cancelAdmit)()
	model := lg.model
	var abort error
	res := s.cycle.Do(ctx, r.Context(), send.Request{
		Model: model, Charge: lg.charge, Secrets: []string{bearer(r.Header), s.cfg.APIKey},
		FlexFallback: func() {
			// Later attempts send the body with service_tier "auto".
			if b, ok := send.WithServiceTier(body, "auto"); ok {
				body = b
				lg.flexFallback = true
			}
		},
		Attempt: func(actx context.Context) (*send.Answer, error) {
			s.met.inflight.Inc()
			defer s.met.inflight.Dec()
			ans, err := s.fwd.attempt(actx, w, r, target, body, hdr)
			if ans != nil && ans.Delivered && err != nil {
				abort = err
			}
			return ans, err
		},
		Hooks: send.Hooks{
			Sending: func(int) {
				s.met.charged.WithLabelValues(s.met.modelLabel(model)).Add(float64(lg.charge))
				s.statsMu.Lock()
				s.stats.Charged += lg.charge
				s.stats.Admitted++
				s.statsMu.Unlock()
			},
			Attempted: func(int) {
				s.statsMu.Lock()
				s.stats.Attempts++
				s.statsMu.Unlock()
			},
			Failed: func(f diagnose.Finding) {
				if f.Status == http.StatusTooManyRequests {
					kind := send.LimitKind(f)
					s.met.rateLimited.WithLabelValues(s.met.modelLabel(model), kind).Inc()
					s.statsMu.Lock()
					s.stats.Upstream429[kind]++
					s.statsMu.Unlock()
				}
			},
			Retrying: func(diagnose.Finding, time.Duration) {
				s.statsMu.Lock()
				s.stats.Retries++
				s.statsMu.Unlock()
			},
		},
	})
	lg.attempts = res.Attempts
	switch res.Outcome {
	case send.Succeeded:
		lg.status, lg.outcome = res.Answer.StatusCode, "ok"
	case send.Failed, send.QuotaExhausted, send.AuthFailed, send.WaitTooLong:
		var tl *pace.TooLargeError
		switch {
		case res.Answer != nil && res.Answer.Delivered:
			lg.status = res.Answer.StatusCode
		case res.Answer != nil:
			writeAnswer(w, res.Answer)
			lg.status = res.Answer.StatusCode
		case errors.As(res.Err, &tl):
			s.writeTooLarge(w, tl)
			lg.status = http.StatusTooManyRequests
			s.statsMu.Lock()
			s.stats.TooLarge++
			s.statsMu.Unlock()
		default:
			s.writeUpstreamError(w, res)
			lg.status = http.StatusBadGateway
		}
		lg.outcome = outcomeName(res)
	case send.Unreachable:
		s.writeUpstreamError(w, res)
		lg.status, lg.outcome = http.StatusBadGateway, "unreachable"
	case send.NotAdmitted, send.Stopped, send.Abandoned:
		var shed *ShedError
		if s.stopping.Err() != nil {
			// The grace of a stop ended before this request's answer: a
			// retryable 503, never an empty 200 (the app was waiting; it
			// did not go away).
			s.writeShutdown(w, res.Outcome == send.Abandoned)
			lg.status, lg.outcome = http.StatusServiceUnavailable, "shed_at_shutdown"
			s.statsMu.Lock()
			s.stats.ShutdownShed++
			if res.Outcome == send.Abandoned {
				lg.outcome = "abandoned_at_shutdown"
				s.stats.ShutdownAbandoned++
			}
			s.statsMu.Unlock()
		} else if errors.As(res.Err, &shed) && r.Context().Err() == nil {
			s.writeShed(w, shed)
			lg.status, lg.outcome = http.StatusTooManyRequests, shed.Reason
			s.statsMu.Lock()
			s.stats.Shed++
			s.statsMu.Unlock()
		} else {
			s.clientGone(&lg)
			return
		}
	}
	s.done(&lg)
	if abort != nil {
		// The upstream stream broke after the app got its first bytes:
		// cut the app's connection so it sees a truncated answer, never a
		// clean end.
		panic(http.ErrAbortHandler)
	}
}

func outcomeName(res send.Result) string {
	switch res.Outcome {
	case send.QuotaExhausted:
		return "quota"
	case send.AuthFailed:
		return "auth"
	case send.WaitTooLong:
		return "wait_too_long"
	}
	if res.Code != "" {
		return res.Code
	}
	return "failed"
}

func (s *Server) clientGone(lg *reqLog) {
	lg.status, lg.outcome = 499, "client_gone"
	s.statsMu.Lock()
	s.stats.ClientGone++
	s.statsMu.Unlock()
	s.done(lg)
}

// done records the request's metrics and log line.
func (s *Server) done(lg *reqLog) {
	model := lg.model
	if model == "" {
		model = "unknown"
	}
	s.met.answered(model, lg.status)
	s.statsMu.Lock()
	s.stats.Requests++
	s.stats.ByCode[lg.status]++
	s.statsMu.Unlock()
	if s.cfg.Log == nil {
		return
	}
	org, project := lg.org, lg.project
	if s.cfg.Redact {
		org, project = mask(org), mask(project)
	}
	d := time.Since(lg.start)
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.cfg.LogJSON {
		m := map[string]any{
			"time": lg.start.UTC().Format(time.RFC3339Nano), "model": lg.model, "status": lg.status,
			"priority": lg.prio.String(), "charge": lg.charge, "attempts": lg.attempts,
			"duration_ms": float64(d.Microseconds()) / 1000, "outcome": lg.outcome,
			"organization": org, "project": project,
		}
		if lg.flexFallback {
			m["service_tier"] = "auto"
		}
		b, _ := json.Marshal(m)
		fmt.Fprintf(s.cfg.Log, "%s\n", b)
		return
	}
	line := fmt.Sprintf("%s %s %d %s charge=%d attempts=%d duration=%s priority=%s",
		lg.start.UTC().Format(time.RFC3339), firstNonEmpty(lg.model, "-"), lg.status, lg.outcome, lg.charge, lg.attempts,
		d.Round(time.Millisecond), lg.prio)
	if org != "" {
		line += " organization=" + org
	}
	if project != "" {
		line += " project=" + project
	}
	if lg.flexFallback {
		line += " service_tier=auto"
	}
	fmt.Fprintln(s.cfg.Log, line)
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	if len(s) <= 8 {
		return "***"
	}
	return s[:4] + "…" + s[len(s)-2:]
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// refreshLimits updates the oairl_limit gauges.
func (s *Server) refreshLimits() {
	if s.cfg.Limits == nil {
		return
	}
	s.admit.mu.Lock()
	names := make([]string, 0, len(s.admit.models))
	for n := range s.admit.models {
		names = append(names, n)
	}
	s.admit.mu.Unlock()
	for _, n := range names {
		l := s.cfg.Limits(n)
		if l.RPM > 0 {
			s.met.limit.WithLabelValues(s.met.modelLabel(n), "rpm").Set(float64(l.RPM))
		}
		if l.TPM > 0 {
			s.met.limit.WithLabelValues(s.met.modelLabel(n), "tpm").Set(float64(l.TPM))
		}
	}
}

// writeError writes an OpenAI error envelope.
func writeError(w http.ResponseWriter, status int, code, typ, msg string, hdr map[string]string) {
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
	w.Write(append(b, '\n'))
}

// writeShed answers a request that was not admitted: 429 in OpenAI's
// envelope with retry-after/retry-after-ms, so SDKs back off.
func (s *Server) writeShed(w http.ResponseWriter, e *ShedError) {
	wait := s.retryAfter(e.Model)
	why := fmt.Sprintf("it waited the --max-queue-wait of %s without being admitted under the rate limits", s.cfg.MaxQueueWait)
	if e.Reason == "queue_full" {
		why = fmt.Sprintf("its queue is full (%d requests waiting)", s.cfg.MaxQueue)
	}
	typ := "tokens"
	if e.Kind == pace.Requests {
		typ = "requests"
	}
	msg := fmt.Sprintf("Rate limit reached for %s: oairl proxy queued this request but %s. Please try again in %s.", e.Model, why, wait)
	writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", typ, msg, map[string]string{
		"retry-after":    strconv.Itoa(int(math.Ceil(wait.Seconds()))),
		"retry-after-ms": strconv.FormatInt(wait.Milliseconds(), 10),
	})
}

// writeBytesShed answers a request whose body does not fit the byte
// budget (MaxQueueBytes): 429 in OpenAI's envelope with retry-after, so
// SDKs back off; its body was not read.
func (s *Server) writeBytesShed(w http.ResponseWriter) {
	msg := fmt.Sprintf("Rate limit reached: oairl proxy already holds %d MiB of request bodies waiting or in flight (--max-queue-bytes). Please try again in 2s.",
		s.cfg.MaxQueueBytes>>20)
	writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "requests", msg, map[string]string{
		"retry-after": "2", "retry-after-ms": "2000",
	})
}

// writeShutdown answers a request the proxy gives up on at the end of a
// stop's grace: 503 in OpenAI's envelope with retry-after and
// x-should-retry: true, so SDKs retry it (against the proxy's successor,
// or the same address once it is back). sent tells that an attempt was in
// flight upstream (it may have been processed), else it was never sent.
func (s *Server) writeShutdown(w http.ResponseWriter, sent bool) {
	msg := "oairl proxy is shutting down and did not send this request upstream. Please try again."
	if sent {
		msg = "oairl proxy is shutting down and gave up waiting for the upstream answer to this request. Please try again."
	}
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusServiceUnavailable, "proxy_shutting_down", "server_error", msg, map[string]string{
		"retry-after": "1", "retry-after-ms": "1000", "x-should-retry": "true",
	})
}

// retryAfter estimates when a shed request may be admitted: the time the
// queue ahead needs at the model's limits (in the proxy clock, converted
// to wall time for the app), between 1 s and 60 s.
func (s *Server) retryAfter(model string) time.Duration {
	wait := time.Second
	if s.cfg.Limits != nil {
		l := s.cfg.Limits(model)
		reqs, toks := s.admit.queuedFor(model)
		if l.RPM > 0 {
			wait = max(wait, time.Duration(float64(reqs+1)/float64(l.RPM)*float64(time.Minute)))
		}
		if l.TPM > 0 {
			wait = max(wait, time.Duration(float64(toks)/float64(l.TPM)*float64(time.Minute)))
		}
	}
	wait = s.cfg.Clock.Wall(wait)
	return min(max(wait, time.Second), time.Minute)
}

// writeTooLarge answers a request that can never be admitted, as OpenAI
// does (429, type tokens, "Request too large ..."), with x-should-retry:
// false so SDKs do not retry it.
func (s *Server) writeTooLarge(w http.ResponseWriter, e *pace.TooLargeError) {
	msg := fmt.Sprintf("Request too large for %s on tokens per min (TPM): Limit %d, Requested %d. The input or output tokens must be reduced in order to run successfully (oairl proxy: never sent).",
		e.Model, e.Limit, e.Tokens)
	writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "tokens", msg, map[string]string{"x-should-retry": "false"})
}

func (s *Server) writeUpstreamError(w http.ResponseWriter, res send.Result) {
	msg := "oairl proxy could not get an answer from the upstream API"
	if res.Err != nil {
		msg += ": " + redact.String(res.Err.Error(), s.cfg.APIKey)
	}
	msg += fmt.Sprintf(" (%d attempts)", res.Attempts)
	writeError(w, http.StatusBadGateway, "upstream_error", "server_error", msg, nil)
}

// statusRecorder remembers the status written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

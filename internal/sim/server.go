package sim

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/tokens"
)

// Server is the simulator. It is an http.Handler; all its state is in
// memory and guarded by one mutex. Create it with New.
type Server struct {
	cfg     Config
	clk     clock.Clock
	reg     *models.Registry
	counter *tokens.Counter
	mux     *http.ServeMux

	mu       sync.Mutex
	rng      *rand.Rand // faults, jitter, shuffles (Config.Seed)
	idRng    *rand.Rand // ids (random per start unless Config.DeterministicIDs)
	limiters map[string]*limiter
	inflight int
	slow     slowState
	files    map[string]*file
	fileIDs  []string // creation order
	batches  map[string]*batch
	batchIDs []string // creation order
	stats    Stats
	requests []Request
	mode     mode // fault modes that tests may switch at run time

	logMu sync.Mutex
}

// Request is one recorded request (Config.RecordRequests).
type Request struct {
	Method string
	Path   string // URL path, e.g. "/v1/chat/completions"
	Query  string
	Header http.Header
	Body   []byte // exactly as received
}

// New returns a Server for cfg. It fails on an invalid Config (unknown tier,
// retry-after mode or quota code, negative limits, rates outside 0..1).
func New(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: c, clk: c.Clock, reg: c.Registry, counter: c.Counter,
		rng:      rand.New(rand.NewSource(c.Seed)),
		idRng:    rand.New(rand.NewSource(idSeed(c))),
		limiters: map[string]*limiter{},
		files:    map[string]*file{},
		batches:  map[string]*batch{},
	}
	s.mode = mode{quota: c.QuotaExhausted, invalidKey: c.InvalidKey, faultRate: c.FaultRate}
	s.stats.Start = s.clk.Now()
	s.stats.Tier = c.Tier
	s.stats.Limits = map[string]models.Limits{}
	s.stats.RateLimited = map[string]int64{}
	s.stats.Status = map[int]int64{}
	s.routes()
	return s, nil
}

// Config returns the effective configuration (defaults filled in).
func (s *Server) Config() Config { return s.cfg }

// Clock returns the simulator's clock.
func (s *Server) Clock() clock.Clock { return s.clk }

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/chat/completions", s.inference)
	m.HandleFunc("POST /v1/completions", s.inference)
	m.HandleFunc("POST /v1/embeddings", s.inference)
	m.HandleFunc("POST /v1/responses", s.inference)
	m.HandleFunc("GET /v1/models", s.listModels)
	m.HandleFunc("GET /v1/models/{id...}", s.getModel)
	m.HandleFunc("POST /v1/files", s.createFile)
	m.HandleFunc("GET /v1/files", s.listFiles)
	m.HandleFunc("GET /v1/files/{id}", s.getFile)
	m.HandleFunc("DELETE /v1/files/{id}", s.deleteFile)
	m.HandleFunc("GET /v1/files/{id}/content", s.fileContent)
	m.HandleFunc("POST /v1/batches", s.createBatch)
	m.HandleFunc("GET /v1/batches", s.listBatches)
	m.HandleFunc("GET /v1/batches/{id}", s.getBatch)
	m.HandleFunc("POST /v1/batches/{id}/cancel", s.cancelBatch)
	m.HandleFunc("GET /v1/organization/projects/{project_id}/rate_limits", s.projectRateLimits)
	if s.cfg.Like == LikeAzure {
		m.HandleFunc("POST /openai/deployments/{deployment}/{rest...}", s.azureInference)
	}
	s.mux = m
}

// exchange is one request being served.
type exchange struct {
	w         http.ResponseWriter
	r         *http.Request
	clk       interface{ Now() time.Time }
	start     time.Time
	requestID string
	model     string
	charged   int64
	limit     string
	status    int
	body      []byte
	// intercepted: Config.Intercept answered; the handler does nothing.
	intercepted bool
}

// ServeHTTP serves the OpenAI API under /v1.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		x := s.begin(w, r)
		if x.intercepted {
			s.finish(x)
			return
		}
		x.error(http.StatusNotFound, "invalid_request_error", "", "", fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path))
		s.finish(x)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// begin reads the body, records the request, sets the common headers and
// checks authentication (false: a 401 was written).
func (s *Server) begin(w http.ResponseWriter, r *http.Request) *exchange {
	x := &exchange{w: w, r: r, clk: s.clk, start: s.clk.Now()}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		x.body, _ = io.ReadAll(io.LimitReader(r.Body, 512<<20))
	}
	s.mu.Lock()
	x.requestID = "req_" + s.hex(32)
	if s.cfg.RecordRequests {
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: x.body})
	}
	s.mu.Unlock()
	if s.cfg.OnRequest != nil {
		s.cfg.OnRequest(r.Method, r.URL.Path, x.body)
	}
	if s.cfg.Intercept != nil {
		if status, hdr, body, ok := s.cfg.Intercept(r, x.body); ok {
			for k, v := range hdr {
				w.Header()[k] = v
			}
			x.intercepted = true
			x.status = status
			w.WriteHeader(status)
			_, _ = w.Write(body)
		}
	}
	h := w.Header()
	hset(h, "x-request-id", x.requestID)
	hset(h, "openai-organization", s.cfg.Organization)
	hset(h, "openai-version", "2020-10-01")
	if p := r.Header.Get("OpenAI-Project"); p != "" {
		hset(h, "openai-project", p)
	}
	switch s.cfg.Like {
	case LikeAzure:
		hset(h, "apim-request-id", x.requestID)
		hset(h, "x-ms-region", "Simulated Region")
	case LikeGroq:
		hset(h, "x-groq-region", "sim")
	}
	return x
}

// auth checks the Authorization header; false means a 401 was written.
func (s *Server) auth(x *exchange) bool {
	if x.intercepted {
		return false
	}
	a := x.r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(a, "Bearer ")
	if k := x.r.Header.Get("api-key"); s.cfg.Like == LikeAzure && k != "" {
		// Azure OpenAI takes the key in an api-key header.
		key, ok = k, true
	}
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		x.error(http.StatusUnauthorized, "invalid_request_error", "", "",
			"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username. You can obtain an API key from https://platform.openai.com/account/api-keys.")
		return false
	}
	s.mu.Lock()
	invalid := s.mode.invalidKey
	s.mu.Unlock()
	if invalid {
		x.error(http.StatusUnauthorized, "invalid_request_error", "", "invalid_api_key",
			fmt.Sprintf("Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", maskKey(key)))
		return false
	}
	return true
}

// gate is auth plus the quota fault mode for the endpoints without a model
// (Models, Files, Batches): false means a 401 or a 429 was written.
//
// Under --quota-exhausted every API endpoint answers the same 429
// insufficient_quota envelope (no retry-after). How the real Files and
// Batch endpoints behave for an organization out of quota is not captured
// (wire-formats.md §1.4 only shows inference answers); refusing them too
// is a choice, so that a client's quota handling (exit 5) can be exercised
// on every path.
func (s *Server) gate(x *exchange) bool {
	if !s.auth(x) {
		return false
	}
	s.mu.Lock()
	q := s.mode.quota
	s.mu.Unlock()
	if q != "" {
		x.limit = LimitQuota
		x.error(429, "insufficient_quota", "", q, quotaMessage(q))
		return false
	}
	return true
}

// maskKey masks a key as OpenAI does in 401 messages: first 3 and last 4
// characters kept.
func maskKey(k string) string {
	if len(k) <= 8 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

// errorBody is OpenAI's error envelope (wire-formats.md §1.3).
type errorBody struct {
	Error apiError `json:"error"`
}

type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func newError(typ, param, code, msg string) errorBody {
	return errorBody{apiError{Message: msg, Type: typ, Param: strOrNil(param), Code: strOrNil(code)}}
}

// error writes an error envelope with status.
func (x *exchange) error(status int, typ, param, code, msg string) {
	x.json(status, newError(typ, param, code, msg))
}

func (x *exchange) json(status int, v any) {
	b, _ := json.Marshal(v)
	x.setProcessingMS()
	x.w.Header().Set("Content-Type", "application/json")
	x.status = status
	x.w.WriteHeader(status)
	_, _ = x.w.Write(b)
	_, _ = x.w.Write([]byte("\n"))
}

// setProcessingMS sets openai-processing-ms: sim milliseconds since the
// request arrived.
func (x *exchange) setProcessingMS() {
	hset(x.w.Header(), "openai-processing-ms", strconv.FormatInt(x.clk.Now().Sub(x.start).Milliseconds(), 10))
}

// finish updates the stats and writes the log line.
func (s *Server) finish(x *exchange) {
	now := s.clk.Now()
	s.mu.Lock()
	st := &s.stats
	st.Requests++
	st.Status[x.status]++
	switch {
	case x.status >= 200 && x.status < 300:
		st.OK++
	case x.status == 429:
		st.RateLimited[x.limit]++
	case x.status >= 500 || x.status == 0:
		st.ServerErrors++
	}
	if now.After(st.End) {
		st.End = now
	}
	inflight := s.inflight
	s.mu.Unlock()
	if s.cfg.Log == nil {
		return
	}
	line, _ := json.Marshal(logLine{
		Time: now.UTC().Format(time.RFC3339Nano), Method: x.r.Method, Path: x.r.URL.Path, Model: x.model,
		Status: x.status, Tokens: x.charged, InFlight: inflight, Limit: x.limit, RequestID: x.requestID,
	})
	s.logMu.Lock()
	_, _ = s.cfg.Log.Write(append(line, '\n'))
	s.logMu.Unlock()
}

type logLine struct {
	Time      string `json:"time"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Model     string `json:"model,omitempty"`
	Status    int    `json:"status"` // 0: connection dropped
	Tokens    int64  `json:"tokens"` // TPM charge taken
	InFlight  int    `json:"in_flight"`
	Limit     string `json:"limit,omitempty"` // which limit rejected it
	RequestID string `json:"request_id"`
}

const hexDigits = "0123456789abcdef"
const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// idSeed seeds the id generator: Config.Seed when DeterministicIDs is set
// (tests), otherwise crypto randomness mixed with the start time, so ids
// (x-request-id, chatcmpl-…, file-…, batch_…) never repeat across restarts
// while --seed still fixes faults, jitter and shuffles.
func idSeed(c Config) int64 {
	if c.DeterministicIDs {
		return c.Seed
	}
	var b [8]byte
	_, _ = crand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:])) ^ time.Now().UnixNano()
}

// hex returns n random hex digits; s.mu must be held.
func (s *Server) hex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = hexDigits[s.idRng.Intn(16)]
	}
	return string(b)
}

// alnumID returns n random letters/digits; s.mu must be held.
func (s *Server) alnumID(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[s.idRng.Intn(len(alnum))]
	}
	return string(b)
}

// Requests returns the recorded requests (Config.RecordRequests), oldest
// first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Stats are the simulator's counters since start.
type Stats struct {
	Start, End   time.Time        // sim time of start and of the last response
	Requests     int64            // every request, any status
	OK           int64            // 2xx
	Status       map[int]int64    // by HTTP status (0 = dropped connection)
	RateLimited  map[string]int64 // 429s by limit type (LimitRPM, LimitTPM, ...)
	ServerErrors int64            // 5xx and dropped connections
	// Goodput: admitted-and-succeeded inference requests and the tokens they
	// were charged (prompt + budget × n) and actually used (usage totals).
	GoodRequests   int64
	GoodCharged    int64
	GoodUsedTokens int64
	// Limits are the limits applied, per model that was requested.
	Limits map[string]models.Limits
	// Tier is the configured tier ("free", "1".."5", "none", or "" for
	// custom limits only).
	Tier string
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Status = copyMap(s.stats.Status)
	st.RateLimited = copyMap(s.stats.RateLimited)
	st.Limits = copyMap(s.stats.Limits)
	if st.End.IsZero() || st.End.Before(st.Start) {
		st.End = st.Start
	}
	return st
}

func copyMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// WriteSummary prints the stats for people: requests, 2xx, 429 by limit
// type, 5xx, and goodput (requests and tokens per minute of sim time)
// against the limits. Goodput is not extrapolated from runs shorter than a
// minute of sim time (it would exceed the per-minute limits); limits of 0
// print as "unlimited", and a model with no published free-tier limits
// says so.
func (st Stats) WriteSummary(w io.Writer) {
	elapsed := st.End.Sub(st.Start)
	fmt.Fprintf(w, "sim summary (%s sim time): %d requests, %d 2xx, %d 429, %d 5xx/dropped\n",
		fmtDur(elapsed), st.Requests, st.OK, sumMap(st.RateLimited), st.ServerErrors)
	for _, k := range []string{LimitRPM, LimitTPM, LimitRPD, LimitTPD, LimitTooLarge, LimitConcurrency, LimitSlowDown, LimitQuota} {
		if n := st.RateLimited[k]; n > 0 {
			fmt.Fprintf(w, "  429 %-18s %d\n", k, n)
		}
	}
	if mins := elapsed.Minutes(); mins >= 1 {
		fmt.Fprintf(w, "  goodput: %.1f req/min, %.0f tokens/min charged, %.0f tokens/min used\n",
			float64(st.GoodRequests)/mins, float64(st.GoodCharged)/mins, float64(st.GoodUsedTokens)/mins)
	} else {
		fmt.Fprintf(w, "  goodput: n/a for runs under a minute of sim time (%d requests succeeded, %d tokens charged)\n",
			st.GoodRequests, st.GoodCharged)
	}
	names := slices.Sorted(maps.Keys(st.Limits))
	for _, m := range names {
		l := st.Limits[m]
		if l.RPM == 0 && l.TPM == 0 && l.RPD == 0 && l.TPD == 0 {
			switch st.Tier {
			case "free":
				fmt.Fprintf(w, "  limits %s: no free-tier limits published (unlimited here)\n", m)
			default:
				fmt.Fprintf(w, "  limits %s: unlimited\n", m)
			}
			continue
		}
		fmt.Fprintf(w, "  limits %s: %s RPM, %s TPM, %s RPD, %s TPD\n", m, limitStr(l.RPM), limitStr(l.TPM), limitStr(l.RPD), limitStr(l.TPD))
	}
}

// limitStr prints a limit, "unlimited" for 0.
func limitStr(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

func sumMap(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// Serve serves on ln until ctx is done, then shuts down gracefully (in-flight
// requests get 5 s of wall time).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := hs.Shutdown(sctx)
		if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
			return e
		}
		return err
	}
}

// hset sets an OpenAI header under its lowercase name, as api.openai.com
// sends them (HTTP/2 captures, wire-formats.md §1.1). Header.Get still
// finds it on the client side, which canonicalizes names when parsing.
func hset(h http.Header, k, v string) { h[k] = []string{v} }

type mode struct {
	quota      string
	invalidKey bool
	faultRate  float64
}

// SetQuotaExhausted switches the quota fault mode at run time: code "" ends
// it, otherwise every later inference request gets 429 with that code (one
// of QuotaCodes; others are an error). Lets a test exhaust the quota in the
// middle of a run.
func (s *Server) SetQuotaExhausted(code string) error {
	if code != "" {
		if _, err := (Config{QuotaExhausted: code}).withDefaults(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.mode.quota = code
	s.mu.Unlock()
	return nil
}

// SetInvalidKey switches the 401 invalid_api_key mode at run time.
func (s *Server) SetInvalidKey(on bool) {
	s.mu.Lock()
	s.mode.invalidKey = on
	s.mu.Unlock()
}

// SetFaultRate changes the fraction (0..1) of admitted requests that fail
// with 500, 503 or a dropped connection.
func (s *Server) SetFaultRate(f float64) {
	s.mu.Lock()
	s.mode.faultRate = min(1, max(0, f))
	s.mu.Unlock()
}

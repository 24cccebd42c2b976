package sim

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/oairl/oairl/internal/models"
)

// bucket is a continuously refilling token bucket of capacity limit that
// refills limit per period: golang.org/x/time/rate's semantics with
// rate = limit/period and burst = limit, computed on the simulator's clock.
type bucket struct {
	limit  float64
	period time.Duration
	tokens float64
	last   time.Time
}

func newBucket(limit int64, period time.Duration, now time.Time) *bucket {
	if limit <= 0 {
		return nil
	}
	return &bucket{limit: float64(limit), period: period, tokens: float64(limit), last: now}
}

// eps is the bucket's tolerance in tokens: a client pacing at exactly the
// limit must not be rejected for floating-point noise in the refill.
const eps = 1e-6

// has reports whether n tokens are available (within eps).
func (b *bucket) has(n float64) bool { return b.tokens+eps >= n }

// rate is tokens per second.
func (b *bucket) rate() float64 { return b.limit / b.period.Seconds() }

func (b *bucket) advance(now time.Time) {
	if now.After(b.last) {
		b.tokens = math.Min(b.limit, b.tokens+b.rate()*now.Sub(b.last).Seconds())
		b.last = now
	}
}

// wait is how long until n tokens are available (0 if they are).
func (b *bucket) wait(n float64) time.Duration {
	if b.has(n) {
		return 0
	}
	return secs((n - b.tokens) / b.rate())
}

// resetIn is how long until the bucket is full again.
func (b *bucket) resetIn() time.Duration {
	return secs((b.limit - b.tokens) / b.rate())
}

// remaining is the whole tokens left.
func (b *bucket) remaining() int64 { return int64(math.Floor(b.tokens + eps)) }

// used is limit minus remaining (remaining at least 0), as OpenAI's "Used
// U" figure.
func (b *bucket) used() int64 { return int64(b.limit) - max(0, b.remaining()) }

func secs(s float64) time.Duration { return time.Duration(math.Ceil(s * float64(time.Second))) }

// limiter holds one model's buckets. Any bucket may be nil (no limit).
type limiter struct {
	model              string
	rpm, tpm, rpd, tpd *bucket
	// ptpm is the project's token bucket (Config.ProjectTPM), nil when none.
	ptpm *bucket
	// retryAt is when the last 429 told the client to come back; a
	// rejected request arriving earlier goes into request debt.
	retryAt time.Time
}

// takeRequest charges a rejected (429) or invalid (400) request one
// request from the RPM and RPD buckets (cookbook: "Unsuccessful requests
// contribute to your per-minute limit", wire-formats.md §1.7). When a
// bucket is empty the request is taken as debt (down to -limit, so the
// reset moves further away) only if debt is true: a 429 that arrives
// before the retry time the previous 429 advertised.
func (l *limiter) takeRequest(debt bool) {
	for _, b := range []*bucket{l.rpm, l.rpd} {
		switch {
		case b == nil:
		case b.has(1):
			b.tokens--
		case debt:
			b.tokens = math.Max(b.tokens-1, -b.limit)
		}
	}
}

func (l *limiter) advance(now time.Time) {
	for _, b := range []*bucket{l.rpm, l.tpm, l.rpd, l.tpd, l.ptpm} {
		if b != nil {
			b.advance(now)
		}
	}
}

// limitsFor returns the limits that apply to model m under c.
func limitsFor(c Config, m *models.Model) models.Limits {
	var l models.Limits
	if c.Tier != "" && c.Tier != "none" && m != nil {
		l, _ = m.TierLimits(c.Tier)
	}
	l = overrideLimits(l, c)
	if c.EnqueuedLimit > 0 {
		l.BatchQueueTokens = c.EnqueuedLimit
	}
	return l
}

// groupLimitsFor returns the limits of shared-limit group id under c:
// the group's published tier limits (models.Registry.KeyLimits), then the
// flag overrides.
func groupLimitsFor(c Config, id string) models.Limits {
	var l models.Limits
	if c.Tier != "" && c.Tier != "none" {
		l, _ = c.Registry.KeyLimits(id, c.Tier)
	}
	l = overrideLimits(l, c)
	if c.EnqueuedLimit > 0 {
		l.BatchQueueTokens = c.EnqueuedLimit
	}
	return l
}

// overrideLimits applies the RPM/TPM/RPD/TPD flags (> 0) over l.
func overrideLimits(l models.Limits, c Config) models.Limits {
	if c.RPM > 0 {
		l.RPM = c.RPM
	}
	if c.TPM > 0 {
		l.TPM = c.TPM
	}
	if c.RPD > 0 {
		l.RPD = c.RPD
	}
	if c.TPD > 0 {
		l.TPD = c.TPD
	}
	return l
}

// Limit types a 429 is attributed to (Stats.RateLimited keys, log "limit").
const (
	LimitRPM         = "rpm"
	LimitTPM         = "tpm"
	LimitRPD         = "rpd"
	LimitTPD         = "tpd"
	LimitTooLarge    = "request_too_large"
	LimitConcurrency = "concurrency"
	LimitSlowDown    = "slow_down"
	LimitQuota       = "quota"
	LimitProjectTPM  = "project_tpm"
	LimitFlex        = "resource_unavailable"
)

// rejection is a 429 decided by the limiter.
type rejection struct {
	limit   string
	errType string
	code    string
	message string
	wait    time.Duration // 0: no retry-after
}

// admit decides whether a request of charge tokens for model is admitted,
// and takes its cost. Called with s.mu held.
func (s *Server) admit(l *limiter, model string, charge int64, now time.Time) *rejection {
	l.advance(now)
	org := s.cfg.Organization
	if s.cfg.Registry.Group(model) != nil {
		// A shared pool's 429 names the pool, not the model sent (the
		// gpt-realtime-mini capture says "for gpt-4o-mini-realtime").
		model = l.model
	}
	free := ""
	if s.cfg.Tier == "free" {
		free = " You can increase your rate limit by adding a payment method to your account at https://platform.openai.com/account/billing."
	}
	early := now.Before(l.retryAt)
	reject := func(limit, typ, dim, abbr string, b *bucket, req int64) *rejection {
		used := b.used()
		// Failed requests count (openai-cookbook How_to_handle_rate_limits):
		// a rejected request still takes a request from RPM and RPD, into
		// debt when it came before the advertised retry time.
		l.takeRequest(early)
		// The advertised wait is honest: after it, this request is
		// admitted (if nothing else arrives meanwhile).
		w := b.wait(float64(req))
		for _, rb := range []*bucket{l.rpm, l.rpd} {
			if rb != nil {
				w = max(w, rb.wait(1))
			}
		}
		l.retryAt = now.Add(w)
		where := "organization " + org
		if b == l.ptpm {
			where = "project " + s.cfg.Project + " organization " + org
		}
		msg := fmt.Sprintf(
			"Rate limit reached for %s in %s on %s (%s): Limit %d, Used %d, Requested %d. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.%s",
			model, where, dim, abbr, int64(b.limit), used, req, fmtDur(w), free)
		switch s.cfg.Like {
		case LikeGroq:
			// Groq's grammar: backticks, "service tier", "per minute", an
			// approximate "Requested ~N" (case B33b).
			msg = fmt.Sprintf("Rate limit reached for model `%s` in organization `%s` service tier `on_demand` on %s (%s): Limit %d, Used %d, Requested ~%d. Please try again in %s. Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing",
				model, org, strings.Replace(dim, "per min", "per minute", 1), abbr, int64(b.limit), used, req, fmtDur(w))
		case LikeAzure:
			what := "token rate limit"
			if typ == "requests" {
				what = "call rate limit"
			}
			msg = fmt.Sprintf("Requests to the ChatCompletions_Create Operation under Azure OpenAI API version %s have exceeded %s of your current OpenAI S0 pricing tier. Please retry after %d seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.",
				"2024-10-21", what, int64(math.Ceil(max(w, time.Second).Seconds())))
		}
		return &rejection{limit: limit, errType: typ, code: "rate_limit_exceeded", wait: w, message: msg}
	}
	for _, tb := range []*bucket{l.tpm, l.ptpm} {
		if tb == nil || float64(charge) <= tb.limit {
			continue
		}
		where := "organization " + org
		if tb == l.ptpm {
			where = "project " + s.cfg.Project + " organization " + org
		}
		msg := fmt.Sprintf(
			"Request too large for %s in %s on tokens per min (TPM): Limit %d, Requested %d. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more.",
			model, where, int64(tb.limit), charge)
		if s.cfg.Like == LikeGroq {
			// Groq answers this with HTTP 413 (case B33a).
			msg = fmt.Sprintf("Request too large for model `%s` in organization `%s` service tier `on_demand` on tokens per minute (TPM): Limit %d, Requested %d, please reduce your message size and try again. Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing",
				model, org, int64(tb.limit), charge)
		}
		r := &rejection{limit: LimitTooLarge, errType: "tokens", code: "rate_limit_exceeded", message: msg}
		l.takeRequest(early)
		return r
	}
	if l.rpd != nil && !l.rpd.has(1) {
		return reject(LimitRPD, "requests", "requests per day", "RPD", l.rpd, 1)
	}
	if l.tpd != nil && !l.tpd.has(float64(charge)) {
		return reject(LimitTPD, "tokens", "tokens per day", "TPD", l.tpd, charge)
	}
	if l.rpm != nil && !l.rpm.has(1) {
		return reject(LimitRPM, "requests", "requests per min", "RPM", l.rpm, 1)
	}
	if l.tpm != nil && !l.tpm.has(float64(charge)) {
		return reject(LimitTPM, "tokens", "tokens per min", "TPM", l.tpm, charge)
	}
	if l.ptpm != nil && !l.ptpm.has(float64(charge)) {
		return reject(LimitProjectTPM, "tokens", "tokens per min", "TPM", l.ptpm, charge)
	}
	if r := s.slowDownCheck(l, now); r != nil {
		l.takeRequest(early)
		return r
	}
	if s.cfg.MaxConcurrent > 0 && s.inflight >= s.cfg.MaxConcurrent {
		l.takeRequest(early)
		return &rejection{limit: LimitConcurrency, errType: "requests", code: "rate_limit_exceeded",
			message: "Too many concurrent requests for this model.", wait: time.Second}
	}
	for _, b := range []*bucket{l.rpm, l.rpd} {
		if b != nil {
			b.tokens--
		}
	}
	for _, b := range []*bucket{l.tpm, l.tpd, l.ptpm} {
		if b != nil {
			b.tokens -= float64(charge)
		}
	}
	return nil
}

// slowDownCheck implements the ramp-rate limit: requests in the current
// window may not exceed 1.5× the previous window's (floor max(1, RPM/10)).
// OpenAI's guide describes slow_down as "traffic increased too quickly"
// without numbers; the 50% growth follows the ramp guidance quoted in
// wire-formats.md §1.4.
func (s *Server) slowDownCheck(l *limiter, now time.Time) *rejection {
	if !s.cfg.SlowDown {
		return nil
	}
	st := &s.slow
	win := s.cfg.SlowDownWindow
	if st.start.IsZero() {
		st.start = now
	}
	for now.Sub(st.start) >= win {
		st.start = st.start.Add(win)
		st.prev, st.cur = st.cur, 0
	}
	floor := 1.0
	if l.rpm != nil {
		floor = math.Max(1, l.rpm.limit/10*win.Minutes())
	}
	allowed := math.Max(floor, 1.5*float64(st.prev))
	if float64(st.cur+1) > allowed {
		return &rejection{limit: LimitSlowDown, errType: "rate_limit_error", code: "slow_down",
			wait:    st.start.Add(win).Sub(now),
			message: "A sudden increase in your request rate is impacting service reliability. Please reduce your request rate to its original level, maintain a consistent rate for at least 15 minutes, and then gradually increase it."}
	}
	st.cur++
	return nil
}

type slowState struct {
	start     time.Time
	prev, cur int64
}

// fmtDur formats a duration as OpenAI does in reset headers and messages
// (wire-formats.md §1.2: "6m0s", "1.5s", "20ms", "0s"): Go's
// time.Duration.String at millisecond precision.
func fmtDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Round(time.Millisecond).String()
}

// setRateHeaders writes the six x-ratelimit-* headers for l. The request
// headers report the daily window when it has less room left than the
// per-minute one (as the free tier's RPD 200 capture shows, §1.1).
func setRateHeaders(h http.Header, l *limiter) { setRateHeadersLike(h, l, "") }

// setRateHeaders writes the rate-limit headers of l as the configured
// provider does (Config.Like).
func (s *Server) setRateHeaders(h http.Header, l *limiter) { setRateHeadersLike(h, l, s.cfg.Like) }

// setRateHeadersLike writes the x-ratelimit-* headers of l: OpenAI's,
// plus x-ratelimit-*-project-tokens when a project limit applies; like
// Groq, the request headers always report the daily window; like Azure,
// resets are bare seconds (wire-formats.md §1.1, §3, §5).
func setRateHeadersLike(h http.Header, l *limiter, like string) {
	if l == nil {
		return
	}
	reset := fmtDur
	if like == LikeAzure {
		reset = func(d time.Duration) string { return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10) }
	}
	if l.ptpm != nil {
		hset(h, "x-ratelimit-limit-project-tokens", strconv.FormatInt(int64(l.ptpm.limit), 10))
		hset(h, "x-ratelimit-remaining-project-tokens", strconv.FormatInt(max(0, l.ptpm.remaining()), 10))
		hset(h, "x-ratelimit-reset-project-tokens", reset(l.ptpm.resetIn()))
	}
	pick := func(min, day *bucket) *bucket {
		if min == nil || like == LikeGroq && day != nil && min == l.rpm {
			return day
		}
		if day != nil && day.tokens < min.tokens {
			return day
		}
		return min
	}
	if b := pick(l.rpm, l.rpd); b != nil {
		hset(h, "x-ratelimit-limit-requests", strconv.FormatInt(int64(b.limit), 10))
		hset(h, "x-ratelimit-remaining-requests", strconv.FormatInt(max(0, b.remaining()), 10))
		hset(h, "x-ratelimit-reset-requests", reset(b.resetIn()))
	}
	if b := pick(l.tpm, l.tpd); b != nil {
		hset(h, "x-ratelimit-limit-tokens", strconv.FormatInt(int64(b.limit), 10))
		hset(h, "x-ratelimit-remaining-tokens", strconv.FormatInt(max(0, b.remaining()), 10))
		hset(h, "x-ratelimit-reset-tokens", reset(b.resetIn()))
	}
}

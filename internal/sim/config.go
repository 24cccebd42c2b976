package sim

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/tokens"
)

// DefaultOrganization is the organization id the simulator reports.
const DefaultOrganization = "org-simulated0000"

// DefaultProject is the project id the simulator reports.
const DefaultProject = "proj_simulated0000"

// ChargeRuleChars is Config.ChargeRule "chars".
const ChargeRuleChars = "chars"

// Provider flavours (Config.Like).
const (
	LikeOpenAI = "openai"
	LikeAzure  = "azure"
	LikeGroq   = "groq"
)

// Retry-After modes (Config.RetryAfter).
const (
	RetryAfterSeconds = "seconds" // retry-after: integer seconds (default)
	RetryAfterNone    = "none"    // no retry-after header
	RetryAfterMS      = "ms"      // retry-after plus retry-after-ms (Azure style)
)

// QuotaCodes are the error codes --quota-exhausted accepts (wire-formats.md
// §1.4, help.openai.com/en/articles/6614457).
var QuotaCodes = []string{
	"insufficient_quota", "credit_balance_exhausted", "organization_spend_limit_exceeded",
	"project_spend_limit_exceeded", "organization_usage_limit_exceeded",
	"billing_hard_limit_reached", "billing_not_active",
}

// Config configures a Server. The zero value is a tier-1 simulator on the
// wall clock with no faults; see the package documentation for every field.
type Config struct {
	// Tier is the usage tier whose published limits apply: "free", "1".."5",
	// or "none" for no limits. "" means "1", unless one of RPM/TPM/RPD/TPD is
	// set, in which case only those apply.
	Tier string
	// RPM, TPM, RPD, TPD override the tier's limits for every model
	// (requests or tokens per minute / per day). 0 = keep the tier's value.
	RPM, TPM, RPD, TPD int64
	// MaxConcurrent is the number of requests allowed in flight at once
	// (0 = unlimited).
	MaxConcurrent int

	// Registry resolves models and their limits (default models.Default()).
	Registry *models.Registry
	// Counter counts prompt tokens (default tokens.NewCounter on Registry).
	Counter *tokens.Counter
	// AssumeOutput is the output budget in tokens charged when a request
	// sets none (default 0).
	AssumeOutput int64
	// OutputTokens is how many completion tokens a choice produces, capped
	// by the request's output budget (default 16).
	OutputTokens int64

	// TimeScale runs the simulator's clock K times faster (0 or 1 = wall).
	TimeScale float64
	// Clock overrides the clock (default clock.Scaled(TimeScale)).
	Clock clock.Clock

	// RetryAfter is "seconds" (default), "none" or "ms".
	RetryAfter string
	// QuotaExhausted, when set, is the code of a 429 insufficient_quota
	// answered to every inference request (one of QuotaCodes).
	QuotaExhausted string
	// FaultRate is the fraction of admitted requests that fail with 500,
	// 503 or a dropped connection (0..1).
	FaultRate float64
	// Seed seeds the RNG behind faults, jitter and batch shuffles. Ids are
	// random per start (crypto randomness) so they never repeat across
	// restarts, unless DeterministicIDs is set.
	Seed int64
	// DeterministicIDs derives ids from Seed too (tests that compare ids).
	DeterministicIDs bool
	// InvalidKey answers 401 invalid_api_key to every request.
	InvalidKey bool
	// SlowDown enables 429 slow_down when traffic ramps too fast.
	SlowDown bool
	// SlowDownWindow is the window of the ramp check (default 1m).
	SlowDownWindow time.Duration

	// Latency is the base response time; LatencyPerToken is added per
	// completion token; LatencyJitter is a ± fraction (default 0.1;
	// negative = none).
	Latency, LatencyPerToken time.Duration
	LatencyJitter            float64

	// BatchDuration is how long a batch takes from creation to completed
	// (default 2m, sim time).
	BatchDuration time.Duration
	// BatchCompletionWindow is when an unfinished batch expires (default 24h).
	BatchCompletionWindow time.Duration
	// BatchCancelDelay is how long a batch stays cancelling (default
	// BatchDuration/10).
	BatchCancelDelay time.Duration
	// BatchFailRate is the fraction of batch lines that fail (0..1).
	BatchFailRate float64
	// EnqueuedLimit overrides the per-model enqueued-token limit (tokens;
	// default the tier's BatchQueueTokens; 0 there = no limit).
	EnqueuedLimit int64

	// Organization is reported in headers and messages (default
	// DefaultOrganization).
	Organization string
	// Project is the project id of messages, project headers and the Admin
	// API (default DefaultProject); a request's OpenAI-Project header is
	// echoed as openai-project.
	Project string
	// ProjectTPM, when > 0, is a project token limit per model (tokens per
	// minute) enforced beside the organization's: answers carry
	// x-ratelimit-{limit,remaining,reset}-project-tokens and a 429 on it
	// says "in project PROJ organization ORG" (OpenAI rate-limits guide;
	// wire-formats.md §1.4).
	ProjectTPM int64
	// FlexUnavailable is the fraction (0..1) of service_tier "flex"
	// requests answered 429 resource_unavailable (OpenAI flex processing
	// guide: capacity is short; not charged to the rate limits, not billed).
	FlexUnavailable float64
	// Like makes the simulator answer like another provider: "" or
	// "openai"; "azure" (deployment paths /openai/deployments/D/...
	// with api-version, the api-key header, request window of 10 s,
	// bare-second resets, retry-after-ms, code "429" bodies); "groq"
	// (request headers per day, 413 for a request over the TPM limit,
	// Groq's message grammar). See internal/provider.
	Like string
	// ChargeRule is how admission charges the TPM bucket: "" (prompt
	// tokens + output budget × n, tokens.TPMCharge) or "chars" (the
	// maximum of the output budget × n and ceil(body bytes / 4), the
	// rate-limits guide's wording), to rehearse a server whose charge
	// differs from oairl's estimate.
	ChargeRule string
	// Log receives one JSON line per request (nil = no log).
	Log io.Writer
	// RecordRequests keeps every request (method, path, header, body) for
	// Server.Requests.
	RecordRequests bool
	// OnRequest, when set, is called with each request's path and raw body
	// before it is handled.
	OnRequest func(method, path string, body []byte)
	// Intercept, when set, sees every request (after it is recorded, before
	// anything else) and may answer it itself: when ok is true the
	// simulator writes status, header and body verbatim and does nothing
	// else (no limits charged, no common headers beyond x-request-id etc.).
	// For tests of answers the simulator does not model (a retry-after
	// HTTP-date, a CDN's text/plain 429, a garbage header).
	Intercept func(r *http.Request, body []byte) (status int, header http.Header, respBody []byte, ok bool)
}

// withDefaults validates c and fills the defaults.
func (c Config) withDefaults() (Config, error) {
	c.Tier = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(c.Tier)), "tier")
	if c.Tier == "" && c.RPM == 0 && c.TPM == 0 && c.RPD == 0 && c.TPD == 0 {
		c.Tier = "1"
	}
	switch c.Tier {
	case "", "none", "free", "1", "2", "3", "4", "5":
	default:
		return c, fmt.Errorf("unknown tier %q: want free, 1-5 or none", c.Tier)
	}
	if c.RPM < 0 || c.TPM < 0 || c.RPD < 0 || c.TPD < 0 || c.MaxConcurrent < 0 || c.EnqueuedLimit < 0 {
		return c, fmt.Errorf("limits must not be negative")
	}
	switch c.RetryAfter {
	case "":
		c.RetryAfter = RetryAfterSeconds
	case RetryAfterSeconds, RetryAfterNone, RetryAfterMS:
	default:
		return c, fmt.Errorf("unknown retry-after mode %q: want seconds, none or ms", c.RetryAfter)
	}
	if c.QuotaExhausted != "" {
		ok := false
		for _, q := range QuotaCodes {
			ok = ok || q == c.QuotaExhausted
		}
		if !ok {
			return c, fmt.Errorf("unknown quota code %q: want one of %s", c.QuotaExhausted, strings.Join(QuotaCodes, ", "))
		}
	}
	if c.FaultRate < 0 || c.FaultRate > 1 || c.BatchFailRate < 0 || c.BatchFailRate > 1 {
		return c, fmt.Errorf("fault rates must be between 0 and 1")
	}
	if c.Registry == nil {
		c.Registry = models.Default()
	}
	if c.Counter == nil {
		c.Counter = tokens.NewCounter(tokens.Options{Registry: c.Registry, AssumeOutput: c.AssumeOutput})
	}
	if c.OutputTokens <= 0 {
		c.OutputTokens = 16
	}
	if c.Clock == nil {
		c.Clock = clock.Scaled(c.TimeScale)
	}
	if c.SlowDownWindow <= 0 {
		c.SlowDownWindow = time.Minute
	}
	switch {
	case c.LatencyJitter == 0:
		c.LatencyJitter = 0.1
	case c.LatencyJitter < 0:
		c.LatencyJitter = 0 // explicitly none
	}
	if c.BatchDuration <= 0 {
		c.BatchDuration = 2 * time.Minute
	}
	if c.BatchCompletionWindow <= 0 {
		c.BatchCompletionWindow = 24 * time.Hour
	}
	if c.BatchCancelDelay <= 0 {
		c.BatchCancelDelay = c.BatchDuration / 10
	}
	if c.Organization == "" {
		c.Organization = DefaultOrganization
	}
	if c.Project == "" {
		c.Project = DefaultProject
	}
	if c.ProjectTPM < 0 {
		return c, fmt.Errorf("limits must not be negative")
	}
	if c.FlexUnavailable < 0 || c.FlexUnavailable > 1 {
		return c, fmt.Errorf("--flex-unavailable must be between 0 and 1")
	}
	if c.ChargeRule == "prompt+output" {
		c.ChargeRule = ""
	}
	if c.ChargeRule != "" && c.ChargeRule != ChargeRuleChars {
		return c, fmt.Errorf("unknown charge rule %q: want chars", c.ChargeRule)
	}
	switch c.Like {
	case "", LikeOpenAI, LikeAzure, LikeGroq:
	default:
		return c, fmt.Errorf("unknown --like %q: want openai, azure or groq", c.Like)
	}
	if c.Like == LikeAzure && c.RetryAfter == RetryAfterSeconds {
		c.RetryAfter = RetryAfterMS // Azure sends retry-after-ms (wire-formats.md §3)
	}
	return c, nil
}

package sim

import (
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Flags are the command-line flags of `oairl sim`, shared by the command
// and the testscript `sim` command so both parse the same way.
type Flags struct {
	Addr        string // listen address, default 127.0.0.1:0
	AllowRemote bool   // permit a non-loopback listen address
	LogFile     string // --log FILE ("" = none; the caller opens it)

	Tier                   string
	RPM, TPM, RPD, TPD     int64
	MaxConcurrent          int
	TimeScale              float64
	RetryAfter             string
	QuotaExhausted         string
	QuotaCode              string // --quota-code CODE (implies --quota-exhausted)
	FaultRate              float64
	InvalidKey, SlowDown   bool
	Latency, LatencyPerTok time.Duration
	OutputTokens           int64
	AssumeOutput           int64
	BatchDuration          time.Duration
	BatchWindow            time.Duration
	BatchFailRate          float64
	EnqueuedLimit          int64
	Seed                   int64
	Organization           string
	Project                string
	ProjectTPM             int64
	FlexUnavailable        float64
	Like                   string
	ChargeRule             string
}

// BindFlags defines the `oairl sim` flags on fs and returns the struct
// they fill.
func BindFlags(fs *pflag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Addr, "addr", "127.0.0.1:0", "listen address (loopback only unless --allow-remote; port 0 picks a free port)")
	fs.BoolVar(&f.AllowRemote, "allow-remote", false, "allow a non-loopback --addr (the simulator has no real authentication)")
	fs.StringVar(&f.LogFile, "log", "", "write one JSON line per request to `FILE` (time, path, model, status, tokens, in_flight, limit)")
	fs.StringVar(&f.Tier, "tier", "", "usage tier whose published per-model limits apply: free, 1-5, or none (default 1 unless --rpm/--tpm/--rpd/--tpd is given)")
	fs.Int64Var(&f.RPM, "rpm", 0, "requests per minute for every model (overrides the tier's)")
	fs.Int64Var(&f.TPM, "tpm", 0, "tokens per minute for every model (overrides the tier's)")
	fs.Int64Var(&f.RPD, "rpd", 0, "requests per day for every model (overrides the tier's)")
	fs.Int64Var(&f.TPD, "tpd", 0, "tokens per day for every model (overrides the tier's)")
	fs.IntVar(&f.MaxConcurrent, "max-concurrent", 0, "requests allowed in flight at once; more get 429 (0 = unlimited)")
	fs.Float64Var(&f.TimeScale, "time-scale", 1, "run the whole clock (refill, resets, latency, batch progress) `K` times faster")
	fs.StringVar(&f.RetryAfter, "retry-after", RetryAfterSeconds, "retry-after on 429s: seconds, none, or ms (adds retry-after-ms)")
	fs.StringVar(&f.QuotaExhausted, "quota-exhausted", "", "answer every request (all endpoints) 429 insufficient_quota, or with `CODE` (credit_balance_exhausted, billing_hard_limit_reached, ...); also --quota-exhausted CODE")
	fs.Lookup("quota-exhausted").NoOptDefVal = "insufficient_quota"
	fs.StringVar(&f.QuotaCode, "quota-code", "", "like --quota-exhausted=`CODE`: answer every request 429 with this quota code")
	fs.Float64Var(&f.FaultRate, "fault-rate", 0, "fraction (0-1) of admitted requests that fail with 500, 503 or a dropped connection")
	fs.BoolVar(&f.InvalidKey, "invalid-key", false, "answer every request 401 invalid_api_key")
	fs.BoolVar(&f.SlowDown, "slow-down", false, "answer 429 slow_down when a minute's requests exceed 1.5x the previous minute's")
	fs.DurationVar(&f.Latency, "latency", 0, "base response time (sim time), e.g. 200ms")
	fs.DurationVar(&f.LatencyPerTok, "latency-per-token", 0, "added response time per completion token (sim time), e.g. 10ms")
	fs.Int64Var(&f.OutputTokens, "output-tokens", 16, "completion tokens per answer, capped by the request's max_tokens")
	fs.Int64Var(&f.AssumeOutput, "assume-output", 0, "output budget in tokens charged to TPM when a request sets no max_tokens")
	fs.DurationVar(&f.BatchDuration, "batch-duration", 2*time.Minute, "how long a batch takes from creation to completed (sim time)")
	fs.DurationVar(&f.BatchWindow, "batch-completion-window", 24*time.Hour, "when an unfinished batch expires (sim time)")
	fs.Float64Var(&f.BatchFailRate, "batch-fail-rate", 0, "fraction (0-1) of batch requests that fail with a 500 in the error file")
	fs.Int64Var(&f.EnqueuedLimit, "enqueued-limit", 0, "Batch enqueued-token limit per model in tokens (default: the tier's batch queue limit)")
	fs.Int64Var(&f.Seed, "seed", 1, "seed of the random faults, jitter and batch shuffles (ids are random per start)")
	fs.StringVar(&f.Organization, "organization", DefaultOrganization, "organization id reported in headers and messages")
	fs.StringVar(&f.Project, "project", DefaultProject, "project id of project-limit messages and the Admin API rate_limits endpoint")
	fs.Int64Var(&f.ProjectTPM, "project-tpm", 0, "a project token limit per model in tokens per minute, enforced beside the organization's; answers carry x-ratelimit-*-project-tokens (0 = none)")
	fs.Float64Var(&f.FlexUnavailable, "flex-unavailable", 0, "fraction (0-1) of service_tier \"flex\" requests answered 429 resource_unavailable (not charged)")
	fs.StringVar(&f.Like, "like", "", "answer like another provider: openai (default), azure (deployment paths, api-key, 10 s request window, bare-second resets, retry-after-ms) or groq (daily request headers, 413 request too large)")
	fs.StringVar(&f.ChargeRule, "charge-rule", "", "how admission charges TPM: prompt+output (default) or chars (max of the output budget and body bytes/4, the rate-limits guide's wording)")
	return f
}

// Config converts the flags into a Config (without Registry, Clock or
// Log, which the caller supplies) and validates it.
func (f *Flags) Config() (Config, error) {
	c := Config{
		Tier: f.Tier, RPM: f.RPM, TPM: f.TPM, RPD: f.RPD, TPD: f.TPD, MaxConcurrent: f.MaxConcurrent,
		TimeScale: f.TimeScale, RetryAfter: f.RetryAfter, QuotaExhausted: f.QuotaExhausted,
		FaultRate: f.FaultRate, InvalidKey: f.InvalidKey, SlowDown: f.SlowDown,
		Latency: f.Latency, LatencyPerToken: f.LatencyPerTok, OutputTokens: f.OutputTokens, AssumeOutput: f.AssumeOutput,
		BatchDuration: f.BatchDuration, BatchCompletionWindow: f.BatchWindow, BatchFailRate: f.BatchFailRate,
		EnqueuedLimit: f.EnqueuedLimit, Seed: f.Seed, Organization: f.Organization,
		Project: f.Project, ProjectTPM: f.ProjectTPM, FlexUnavailable: f.FlexUnavailable, Like: f.Like, ChargeRule: f.ChargeRule,
	}
	if !(f.TimeScale > 0) || math.IsInf(f.TimeScale, 0) {
		return c, fmt.Errorf("--time-scale must be a positive number, got %g", f.TimeScale)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--latency", f.Latency}, {"--latency-per-token", f.LatencyPerTok}, {"--batch-duration", f.BatchDuration}, {"--batch-completion-window", f.BatchWindow}} {
		if d.v < 0 {
			return c, fmt.Errorf("%s must not be negative, got %s", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{{"--rpm", f.RPM}, {"--tpm", f.TPM}, {"--rpd", f.RPD}, {"--tpd", f.TPD}, {"--max-concurrent", int64(f.MaxConcurrent)},
		{"--output-tokens", f.OutputTokens}, {"--assume-output", f.AssumeOutput}, {"--enqueued-limit", f.EnqueuedLimit},
		{"--project-tpm", f.ProjectTPM}} {
		if n.v < 0 {
			return c, fmt.Errorf("%s must not be negative, got %d", n.name, n.v)
		}
	}
	if f.QuotaCode != "" {
		c.QuotaExhausted = f.QuotaCode
	}
	if _, err := c.withDefaults(); err != nil {
		return c, err
	}
	if err := CheckAddr(f.Addr, f.AllowRemote); err != nil {
		return c, err
	}
	return c, nil
}

// ParseArgs parses `oairl sim` arguments (the testscript `sim` command).
func ParseArgs(args []string) (*Flags, error) {
	fs := pflag.NewFlagSet("sim", pflag.ContinueOnError)
	fs.SetOutput(nopWriter{})
	f := BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := f.TakeArgs(fs.Args()); err != nil {
		return nil, err
	}
	return f, nil
}

// TakeArgs accepts the positional arguments left after flag parsing: only
// a quota code right after a bare --quota-exhausted (pflag needs
// "--quota-exhausted=CODE" for an optional value, so "--quota-exhausted
// credit_balance_exhausted" leaves the code as an argument). Anything else
// is an error.
func (f *Flags) TakeArgs(args []string) error {
	if len(args) == 0 {
		return nil
	}
	if len(args) == 1 && f.QuotaExhausted == "insufficient_quota" {
		for _, q := range QuotaCodes {
			if q == args[0] {
				f.QuotaExhausted = q
				return nil
			}
		}
		return fmt.Errorf("unexpected argument %q: --quota-exhausted takes one of %s", args[0], strings.Join(QuotaCodes, ", "))
	}
	return fmt.Errorf("unexpected argument %q", args[0])
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// CheckAddr refuses a listen address that is not on loopback unless
// allowRemote is set.
func CheckAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--addr %q is not a loopback address; pass --allow-remote to listen on other interfaces", addr)
	}
	return nil
}

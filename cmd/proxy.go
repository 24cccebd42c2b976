package cmd

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/httpx"
	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/proxy"
	"github.com/oairl/oairl/internal/redact"
	"github.com/oairl/oairl/internal/send"
	"github.com/oairl/oairl/tokens"
)

// ProxyOptions holds the dependencies and flag values of 'oairl proxy'.
type ProxyOptions struct {
	f *Factory
	// Ctx is cancelled on Ctrl-C/SIGTERM: the proxy then stops gracefully.
	Ctx context.Context
	// Ready, when set, is called with the base URL once the proxy listens
	// (tests).
	Ready func(baseURL string)

	Addr          string
	Tier          string
	RPM, TPM      int64
	MaxConcurrent int
	Headroom      float64
	MaxQueueWait  time.Duration
	MaxQueue      int
	MaxQueueBytes byteSize
	MaxAttempts   int
	FlexFallback  int
	MaxWait       time.Duration
	AssumeOutput  int64
	TimeScale     float64
	AllowRemote   bool
	ProxyToken    string
	APIKeyEnv     string
	LogFormat     string
	Redact        bool
	Grace         time.Duration
	PriorityByKey []string
	Seed          uint64
	Budget        BudgetOptions
}

const proxyLong = `Serve an OpenAI-compatible gateway in front of an unchanged app: point the
app's OPENAI_BASE_URL at it and its 429s become short waits.

  OPENAI_BASE_URL=http://127.0.0.1:8787/v1   (the app changes nothing else)

Upstream is --base-url / OPENAI_BASE_URL (default the OpenAI API). The proxy
prints its base URL on stdout and serves until SIGINT/SIGTERM; then it stops
accepting, lets queued requests and requests in flight finish within --grace,
answers what is left 503 (code proxy_shutting_down, retry-after,
x-should-retry: true: SDKs retry it), prints a summary on stderr once the last
answer is written, and exits 0.

Model endpoints (POST /v1/chat/completions, /v1/completions, /v1/embeddings,
/v1/responses, /v1/moderations) are counted with the same TPM charge as
'oairl count' (prompt tokens + output budget × n; --assume-output when a body
sets none), admitted under the model's RPM/TPM and the in-flight cap
(--max-concurrent), forwarded byte for byte with the app's headers
(Authorization, OpenAI-Organization, OpenAI-Project), and the answer is
streamed back as it arrives (server-sent events chunk by chunk).

Limits come from --rpm/--tpm, else --tier, else the x-ratelimit-limit-*
headers of the first answers; x-ratelimit-* keep the buckets calibrated and
still reach the app.

` + budgetHelp + `Upstream answers are classified as 'oairl run' does (one shared cycle): a
rate-limit 429 pauses that limit for every caller and the request is retried
after the server's wait (the app sees a slower 200); 5xx and dropped
connections are retried with backoff only before any byte reached the app;
insufficient_quota, billing, auth, request_too_large and other 4xx go back to
the app unchanged at once. A flex request ("service_tier": "flex") answered
429 resource_unavailable (flex capacity short: not a rate limit, not billed)
backs off without pausing the rate-limit buckets and is retried as flex;
--flex-fallback N resends it as "auto" (standard price) after N such answers.

Admission: a bounded queue (--max-queue) per model. Header
"X-Oairl-Priority: high|normal|low" (or --priority-by-key KEYSUFFIX=CLASS)
picks the class: high is admitted first, low never takes the budget while
higher work waits; within a class callers (one per API key) take turns. A
request not admitted within --max-queue-wait is answered 429 in OpenAI's
envelope (type tokens/requests, code rate_limit_exceeded) with retry-after and
retry-after-ms, so any SDK backs off; so is a request whose body does not fit
--max-queue-bytes (the bytes of bodies held by requests waiting or in flight,
default 256MiB; the body is not read: memory stays bounded under any flood),
and a single body over it (or over 64MiB) is answered 413; a request whose
charge exceeds the TPM limit is answered OpenAI's "Request too large" 429 at
once with x-should-retry: false. An app that goes away frees its place and its
reservation.

Everything else (files, batches, models, unknown paths) passes through
unpaced and unchanged. GET /healthz answers "ok"; GET /metrics serves
Prometheus metrics:

` + proxy.MetricsTable + `

Logs: one line per request on stderr (--log-format json for collectors):
time, model, status, outcome, TPM charge, upstream attempts, duration,
priority. Never a key; --redact masks the organization and project.

Security: the proxy listens on loopback only unless --allow-remote, which
requires --proxy-token (env OAIRL_PROXY_TOKEN): every request must then send
it as X-Oairl-Token or as its bearer key (then replaced by the key of
--api-key-env). Compared in constant time. --api-key-env NAME sends the key
in environment variable NAME on requests that carry no Authorization.

Exit codes: 0 after SIGINT/SIGTERM, 1 the address cannot be bound, 2 bad
flags.`

const proxyExample = `  # rehearse: a tier-1 simulator, the proxy in front of it, your app at the proxy
  oairl sim --tier 1 --addr 127.0.0.1:8080 &
  oairl proxy --tier 1 --base-url http://127.0.0.1:8080/v1 &
  OPENAI_BASE_URL=http://127.0.0.1:8787/v1 node app.js

  # in front of the real API, tier 2, bulk callers marked low
  oairl proxy --tier 2 --log-format json 2>proxy.log`

func newProxyCmd(f *Factory, runF func(*ProxyOptions) error) *cobra.Command {
	opts := &ProxyOptions{f: f}
	c := &cobra.Command{
		Use:     "proxy [flags]",
		Short:   "Serve an OpenAI-compatible gateway that paces an unchanged app's requests",
		Long:    proxyLong,
		Example: proxyExample,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if opts.RPM < 0 || opts.TPM < 0 || opts.MaxConcurrent < 1 || opts.MaxAttempts < 1 || opts.AssumeOutput < 0 || opts.MaxQueue < 1 {
				return FlagErrorf("--rpm/--tpm/--assume-output must not be negative; --max-concurrent, --max-attempts and --max-queue at least 1")
			}
			if opts.FlexFallback < 0 {
				return FlagErrorf("--flex-fallback must not be negative")
			}
			if opts.Headroom <= 0 || opts.Headroom > 1 {
				return FlagErrorf("--headroom must be in (0, 1], e.g. 0.9")
			}
			if opts.TimeScale <= 0 {
				return FlagErrorf("--time-scale must be positive")
			}
			if opts.MaxQueueWait <= 0 {
				return FlagErrorf("--max-queue-wait must be positive, e.g. 30s")
			}
			if opts.LogFormat != "text" && opts.LogFormat != "json" {
				return FlagErrorf("--log-format must be text or json, not %q", opts.LogFormat)
			}
			if opts.Tier == "" {
				opts.Tier = f.Getenv("OAIRL_TIER")
			}
			if opts.Tier != "" {
				t, ok := normalizeTier(opts.Tier)
				if !ok {
					return FlagErrorf("--tier must be free or 1-5 (or project: the limits 'oairl limits pull' saved), not %q", opts.Tier)
				}
				opts.Tier = t
			}
			if err := usePulledLimits(f, &opts.Tier, opts.RPM > 0 || opts.TPM > 0); err != nil {
				return err
			}
			if opts.ProxyToken == "" {
				opts.ProxyToken = f.Getenv("OAIRL_PROXY_TOKEN")
			}
			host, _, err := net.SplitHostPort(opts.Addr)
			if err != nil {
				return FlagErrorf("--addr must be HOST:PORT, e.g. 127.0.0.1:8787: %v", err)
			}
			if !opts.AllowRemote && !isLoopback(host) {
				return FlagErrorf("--addr %s is not a loopback address: add --allow-remote (with --proxy-token) to serve other hosts", opts.Addr)
			}
			if opts.AllowRemote && opts.ProxyToken == "" {
				return FlagErrorf("--allow-remote requires --proxy-token (or OAIRL_PROXY_TOKEN): anyone who reaches the port would spend your budget")
			}
			if _, err := parsePriorityRules(opts.PriorityByKey); err != nil {
				return FlagErrorf("%v", err)
			}
			if err := opts.Budget.resolve(f); err != nil {
				return err
			}
			if err := f.Config().ProviderErr; err != nil {
				return err
			}
			opts.Ctx = c.Context()
			if runF != nil {
				return runF(opts)
			}
			return proxyRun(opts)
		},
	}
	fl := c.Flags()
	fl.StringVar(&opts.Addr, "addr", "127.0.0.1:8787", "address to listen on (HOST:PORT; loopback unless --allow-remote)")
	fl.StringVar(&opts.Tier, "tier", "", "usage tier whose published limits apply: free, 1-5 (env OAIRL_TIER)")
	fl.Int64Var(&opts.RPM, "rpm", 0, "requests per minute limit, for every model (overrides --tier)")
	fl.Int64Var(&opts.TPM, "tpm", 0, "tokens per minute limit, for every model (overrides --tier)")
	fl.IntVar(&opts.MaxConcurrent, "max-concurrent", 50, "most requests in flight upstream at once")
	fl.Float64Var(&opts.Headroom, "headroom", 0.9, "fraction of each limit to use, in (0, 1]")
	fl.DurationVar(&opts.MaxQueueWait, "max-queue-wait", 30*time.Second, "longest a request waits for admission before it is answered 429 with Retry-After")
	fl.IntVar(&opts.MaxQueue, "max-queue", 10000, "most requests waiting for admission; beyond it requests are answered 429 at once")
	opts.MaxQueueBytes = proxy.DefaultMaxQueueBytes
	fl.Var(&opts.MaxQueueBytes, "max-queue-bytes", "most bytes of request bodies held by requests waiting or in flight (e.g. 256MiB, 1GiB); beyond it requests are answered 429 at once, unread; a single body over it (or over 64MiB) 413")
	fl.IntVar(&opts.MaxAttempts, "max-attempts", 8, "most upstream attempts per request, the first included")
	fl.IntVar(&opts.FlexFallback, "flex-fallback", 0, "resend a service_tier \"flex\" request as \"auto\" after `N` 429 resource_unavailable answers (0 = keep retrying flex)")
	fl.DurationVar(&opts.MaxWait, "max-wait", 2*time.Minute, "longest server-requested wait to retry after; a longer one (a daily limit) goes back to the app")
	fl.Int64Var(&opts.AssumeOutput, "assume-output", 1024, "output budget in tokens assumed for requests without max_tokens/max_completion_tokens (counts toward TPM)")
	fl.Float64Var(&opts.TimeScale, "time-scale", 1, "for rehearsal against 'oairl sim --time-scale K': the proxy's clock runs K times faster so both agree")
	fl.BoolVar(&opts.AllowRemote, "allow-remote", false, "listen on non-loopback addresses (requires --proxy-token)")
	fl.StringVar(&opts.ProxyToken, "proxy-token", "", "token every request must carry (X-Oairl-Token or bearer key); env OAIRL_PROXY_TOKEN")
	fl.StringVar(&opts.APIKeyEnv, "api-key-env", "", "name of an environment variable whose API key is sent on requests that carry none, e.g. OPENAI_API_KEY")
	fl.StringVar(&opts.LogFormat, "log-format", "text", "per-request log lines on stderr: text or json")
	fl.BoolVar(&opts.Redact, "redact", false, "mask organization and project ids in the logs")
	fl.DurationVar(&opts.Grace, "grace", 30*time.Second, "on SIGINT/SIGTERM, how long requests in flight may take to finish")
	fl.StringArrayVar(&opts.PriorityByKey, "priority-by-key", nil, "KEYSUFFIX=high|normal|low: class of requests whose bearer key ends in KEYSUFFIX (repeatable; X-Oairl-Priority wins)")
	fl.Uint64Var(&opts.Seed, "seed", 0, "seed for backoff jitter (tests)")
	_ = fl.MarkHidden("seed")
	addBudgetFlags(fl, &opts.Budget)
	return c
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parsePriorityRules(rules []string) (map[string]proxy.Priority, error) {
	out := map[string]proxy.Priority{}
	for _, r := range rules {
		suffix, class, ok := strings.Cut(r, "=")
		p, okp := proxy.ParsePriority(strings.TrimSpace(class))
		if !ok || suffix == "" || !okp || class == "" {
			return nil, fmt.Errorf("--priority-by-key wants KEYSUFFIX=high|normal|low, not %q", r)
		}
		if len(suffix) > 8 {
			return nil, fmt.Errorf("--priority-by-key: give at most the last 8 characters of a key, not %d (keys do not belong on command lines)", len(suffix))
		}
		out[suffix] = p
	}
	return out, nil
}

func proxyRun(opts *ProxyOptions) error {
	f := opts.f
	ios := f.IOStreams
	reg, err := f.Registry()
	if err != nil {
		return err
	}
	cfg := f.Config()
	clk := clock.Scaled(opts.TimeScale)
	prio, _ := parsePriorityRules(opts.PriorityByKey)
	var apiKey string
	if opts.APIKeyEnv != "" {
		apiKey = f.Getenv(opts.APIKeyEnv)
		if apiKey == "" {
			return FlagErrorf("--api-key-env %s: the variable is empty or unset", opts.APIKeyEnv)
		}
		if err := checkAPIKey(apiKey, opts.APIKeyEnv); err != nil {
			return err
		}
	}
	if cfg.ProviderErr == nil {
		if err := checkBaseURL(cfg.BaseURL, cfg.baseURLFrom); err != nil {
			return err
		}
	}
	var events func(pace.Event)
	if !ios.Quiet {
		events = func(e pace.Event) { fmt.Fprintf(ios.ErrOut, "oairl proxy: %s: %s\n", e.Model, e.Message) }
	}
	limits := send.TierLimits(reg, opts.Tier, opts.RPM, opts.TPM)
	// pace.Local, or the shared budget with --budget (the builder run uses).
	lim, err := newLimiter(opts.Ctx, f, opts.Budget, pace.Config{Clock: clk, Headroom: opts.Headroom, MaxConcurrent: opts.MaxConcurrent,
		Limits: limits, Events: events})
	if err != nil {
		return err
	}
	if c, ok := lim.(io.Closer); ok {
		defer c.Close()
	}
	limitsOf := limits
	if lk, ok := lim.(interface{ Limits(string) pace.Limits }); ok {
		limitsOf = lk.Limits
	}
	f.SetHTTPTuning(opts.MaxConcurrent, clk)
	hc, err := f.HTTPClient()
	if err != nil {
		return err
	}
	pcfg := proxy.Config{
		Upstream: cfg.BaseURL, Limiter: lim, Limits: limitsOf, Clock: clk, Registry: reg, Provider: cfg.Provider,
		Counter:      tokens.NewCounter(tokens.Options{Registry: reg, AssumeOutput: opts.AssumeOutput}),
		MaxQueueWait: opts.MaxQueueWait, MaxQueue: opts.MaxQueue, MaxQueueBytes: int64(opts.MaxQueueBytes), MaxAttempts: opts.MaxAttempts, MaxWait: opts.MaxWait,
		Seed: opts.Seed, APIKey: apiKey, ProxyToken: opts.ProxyToken, PriorityByKey: prio,
		Log: ios.ErrOut, LogJSON: opts.LogFormat == "json", Redact: opts.Redact,
		FlexFallback: opts.FlexFallback,
	}
	if hc.Transport != nil {
		// The one HTTP layer (User-Agent, pool, --debug trace), without
		// its retries: the proxy's send cycle retries, with the limiter
		// in view, and never after the first byte reached the app.
		pcfg.Transport = httpx.NoRetry(hc.Transport)
	}
	if ios.Quiet {
		pcfg.Log = nil
	}
	srv, err := proxy.New(pcfg)
	if err != nil {
		return FlagErrorf("%v", err)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("proxy: listen on %s: %w", opts.Addr, err)
	}
	base := "http://" + ln.Addr().String() + "/v1"
	fmt.Fprintln(ios.Out, base)
	if !ios.Quiet {
		lim := "limits learned from the first answers"
		// Name only the limits given: "tier 1", "--rpm 600, --tpm 100000",
		// never "--rpm 0" beside a tier.
		var given []string
		if opts.Tier != "" {
			given = append(given, "tier "+opts.Tier)
		}
		if opts.RPM > 0 {
			given = append(given, fmt.Sprintf("--rpm %d", opts.RPM))
		}
		if opts.TPM > 0 {
			given = append(given, fmt.Sprintf("--tpm %d", opts.TPM))
		}
		if len(given) > 0 {
			lim = strings.Join(given, ", ")
		}
		fmt.Fprintf(ios.ErrOut, "oairl proxy: serving %s -> %s (%s, time scale %gx); set OPENAI_BASE_URL=%s in your app\n",
			base, redact.URL(cfg.BaseURL, apiKey), lim, opts.TimeScale, base)
	}
	if opts.Ready != nil {
		opts.Ready(base)
	}
	ctx := opts.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	err = srv.Serve(ctx, ln, opts.Grace)
	writeProxySummary(ios.ErrOut, srv.Stats())
	return err
}

// writeProxySummary prints the totals at exit.
func writeProxySummary(w io.Writer, st proxy.Stats) {
	codes := make([]int, 0, len(st.ByCode))
	for c := range st.ByCode {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", st.ByCode[c], c))
	}
	fmt.Fprintf(w, "oairl proxy: %d model requests (%s), %d passed through\n", st.Requests, strings.Join(parts, ", "), st.PassedThrough)
	kinds := make([]string, 0, len(st.Upstream429))
	n429 := 0
	for k, n := range st.Upstream429 {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		n429 += n
	}
	sort.Strings(kinds)
	line := fmt.Sprintf("  upstream: %d attempts, %d retries, %d 429s", st.Attempts, st.Retries, n429)
	if len(kinds) > 0 {
		line += " (" + strings.Join(kinds, ", ") + ")"
	}
	fmt.Fprintln(w, line)
	avg := time.Duration(0)
	if st.Admitted > 0 {
		avg = st.QueueWaitSum / time.Duration(st.Admitted)
	}
	fmt.Fprintf(w, "  queue: %d shed (429 + Retry-After), %d request_too_large, %d apps went away; wait avg %s, max %s; %d tokens charged\n",
		st.Shed, st.TooLarge, st.ClientGone, avg.Round(time.Millisecond), st.QueueWaitMax.Round(time.Millisecond), st.Charged)
	if st.ShutdownShed > 0 {
		fmt.Fprintf(w, "  shutdown: %d shed at the end of --grace (503 + Retry-After, x-should-retry: true; %d of them were in flight upstream)\n",
			st.ShutdownShed, st.ShutdownAbandoned)
	}
}

// byteSize is a flag value in bytes, written as a number with an optional
// unit: B, KB/MB/GB (powers of 1000) or KiB/MiB/GiB (powers of 1024).
type byteSize int64

func (b *byteSize) String() string {
	switch n := int64(*b); {
	case n > 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprint(int64(*b))
}

func (b *byteSize) Type() string { return "size" }

func (b *byteSize) Set(v string) error {
	t := strings.TrimSpace(v)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 1 || n > math.MaxInt64/mult {
		return fmt.Errorf("want a positive size such as 256MiB, 1GiB or 500000000, not %q", v)
	}
	*b = byteSize(n * mult)
	return nil
}

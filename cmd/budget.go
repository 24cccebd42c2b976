package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter/tw"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/humanize"
	"github.com/oairl/oairl/internal/pace"
)

// BudgetOptions are the shared-budget flags of run, batch and proxy
// (batch shares only the enqueued-token queues: pace.BatchQueue).
type BudgetOptions struct {
	// URL is the Redis of the shared budget (--budget, env OAIRL_BUDGET):
	// redis://[user:password@]host:port/db, rediss:// (TLS) or
	// unix:///path. "" means no shared budget (pace.Local).
	URL string
	// Key names the budget when OPENAI_ORG_ID/OPENAI_PROJECT_ID are unset
	// (--budget-key, env OAIRL_BUDGET_KEY).
	Key string
	// Fallback "local" starts on this process's own limits when Redis is
	// unreachable at start (--budget-fallback); "" refuses to start.
	Fallback string
}

// addBudgetFlags binds the budget flags onto fl.
func addBudgetFlags(fl *pflag.FlagSet, b *BudgetOptions) {
	fl.StringVar(&b.URL, "budget", "", "share one organization's rate limits with every process using this Redis `URL` (redis://[user:pass@]host:port/db, rediss://, unix://; env OAIRL_BUDGET)")
	fl.StringVar(&b.Key, "budget-key", "", "budget `NAME` when OPENAI_ORG_ID/OPENAI_PROJECT_ID are unset (env OAIRL_BUDGET_KEY; default: learned from the openai-organization response header)")
	fl.StringVar(&b.Fallback, "budget-fallback", "", "local: start on this process's own limits if the budget's Redis is unreachable at start (it joins when Redis answers)")
}

// resolve fills what the flags left empty from the environment and checks
// the values (a flag error).
func (b *BudgetOptions) resolve(f *Factory) error {
	if b.URL == "" {
		b.URL = f.Getenv("OAIRL_BUDGET")
	}
	if b.Key == "" {
		b.Key = f.Getenv("OAIRL_BUDGET_KEY")
	}
	if b.Fallback != "" && b.Fallback != "local" {
		return FlagErrorf("--budget-fallback must be local, not %q", b.Fallback)
	}
	if b.URL != "" {
		if _, err := redisOptions(b.URL); err != nil {
			return FlagErrorf("%v", err)
		}
	}
	return nil
}

// maskURL returns u with its secrets masked, for messages: the userinfo
// password (url.URL.Redacted) and the values of query options that hold one
// (redis.ParseURL takes ?password=…). An unparseable URL is named, not shown.
func maskURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "the --budget URL"
	}
	if q := p.Query(); len(q) > 0 {
		changed := false
		for k := range q {
			if secretOption(k) {
				q.Set(k, "xxxxx")
				changed = true
			}
		}
		if changed {
			p.RawQuery = q.Encode()
		}
	}
	return p.Redacted()
}

func secretOption(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "pass") || strings.Contains(k, "secret") || strings.Contains(k, "token") || strings.Contains(k, "key")
}

// urlSecrets lists the secret parts of u (userinfo password, secret query
// values), found even when u does not parse, so that a parser's error
// quoting u can be masked.
var userinfoRE = regexp.MustCompile(`//[^/@]*?:([^/@]+)@`)

func urlSecrets(u string) []string {
	var out []string
	if m := userinfoRE.FindStringSubmatch(u); m != nil {
		out = append(out, m[1])
		if d, err := url.PathUnescape(m[1]); err == nil && d != m[1] {
			out = append(out, d)
		}
	}
	if i := strings.IndexByte(u, '?'); i >= 0 {
		for _, kv := range strings.Split(u[i+1:], "&") {
			k, v, ok := strings.Cut(kv, "=")
			if ok && v != "" && secretOption(k) {
				out = append(out, v)
				if d, err := url.QueryUnescape(v); err == nil && d != v {
					out = append(out, d)
				}
			}
		}
	}
	return out
}

// maskErr returns err's text with every secret of u masked.
func maskErr(err error, u string) string {
	s := err.Error()
	s = strings.ReplaceAll(s, u, maskURL(u))
	for _, sec := range urlSecrets(u) {
		s = strings.ReplaceAll(s, sec, "xxxxx")
	}
	return s
}

func redisOptions(u string) (*redis.Options, error) {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return nil, fmt.Errorf("invalid --budget URL %s: %s (want redis://[user:password@]host:port/db, rediss://… or unix:///path)", maskURL(u), maskErr(err, u))
	}
	// Short timeouts: a lost Redis must turn into the local fallback in
	// about a second, not stall every request.
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = time.Second, time.Second, time.Second
	// No automatic retries: a decision resent after a broken connection
	// could charge twice; the limiter falls back instead.
	opt.MaxRetries = -1
	opt.DisableIdentity = true
	return opt, nil
}

type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

func newRedisClient(u string) (*redis.Client, error) {
	opt, err := redisOptions(u)
	if err != nil {
		return nil, err
	}
	// go-redis logs reconnect attempts on stderr; the limiter reports an
	// outage once, in oairl's words.
	redis.SetLogger(quietRedisLog{})
	return redis.NewClient(opt), nil
}

// newLimiter is the one builder of the limiter of run and proxy: the
// in-process pace.Local without a budget URL, else a pace.Redis on it,
// named after OPENAI_ORG_ID/OPENAI_PROJECT_ID, else --budget-key, else
// learned from the first response. cfg carries the caller's clock,
// headroom, in-flight cap, limits and events. b must be resolved.
// Redis unreachable at start is an error (exit 1) naming the URL, its
// password masked, unless b.Fallback is "local".
func newLimiter(ctx context.Context, f *Factory, b BudgetOptions, cfg pace.Config) (pace.Limiter, error) {
	if b.URL == "" {
		return pace.New(cfg), nil
	}
	rdb, err := newRedisClient(b.URL)
	if err != nil {
		return nil, exitcode.New(exitcode.Usage, err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	scale := pace.ClockScale(cfg.Clock)
	if err := pingBudget(ctx, rdb, b); err != nil {
		var ec *exitcode.Error
		if errors.As(err, &ec) {
			rdb.Close()
			return nil, err
		} // --budget-fallback local: NewRedis below starts offline
	}
	name := budgetName(ctx, f, b, scale, false)
	rc := pace.RedisConfig{Config: cfg, Client: rdb, URL: maskURL(b.URL), Name: name}
	lim, err := pace.NewRedis(ctx, rc)
	if err != nil && b.Fallback == "local" {
		if cfg.Events != nil {
			cfg.Events(pace.Event{Time: cfg.Clock.Now(), Model: "budget",
				Message: fmt.Sprintf("%v; --budget-fallback local: starting on this process's own limits, joining the budget when Redis answers", err)})
		}
		rc.Offline = true
		lim, err = pace.NewRedis(ctx, rc)
	}
	if err != nil {
		rdb.Close()
		return nil, exitcode.Errorf(exitcode.Failure, "%v: start it (e.g. redis-server --port 6379), fix --budget/OAIRL_BUDGET, or pass --budget-fallback local to start on this process's own limits", err)
	}
	return lim, nil
}

// pingBudget checks that the budget's Redis answers: an error (exit 1)
// naming the URL, its password masked, with the remedy; nil also when
// b.Fallback is "local" (the caller starts without it).
func pingBudget(ctx context.Context, rdb *redis.Client, b BudgetOptions) error {
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := rdb.Ping(pctx).Err()
	cancel()
	if err != nil && b.Fallback != "local" {
		return exitcode.Errorf(exitcode.Failure, "cannot reach the budget's Redis at %s: %v: start it (e.g. redis-server --port 6379), fix --budget/OAIRL_BUDGET, or pass --budget-fallback local to start on this process's own limits", maskURL(b.URL), err)
	}
	return err
}

// budgetName names the budget: OPENAI_ORG_ID/OPENAI_PROJECT_ID, else
// --budget-key, else the organization the API reports for the key; else
// "" (learned from the first response), or "default" when orDefault.
func budgetName(ctx context.Context, f *Factory, b BudgetOptions, scale float64, orDefault bool) string {
	c := f.Config()
	if c.OrgID != "" || c.ProjectID != "" || b.Key != "" {
		return pace.BudgetName(c.OrgID, c.ProjectID, b.Key, scale)
	}
	if org, project := learnOrganization(ctx, f); org != "" || project != "" {
		return pace.BudgetName(org, project, "", scale)
	}
	if orDefault {
		return pace.BudgetName("", "", "default", scale)
	}
	return ""
}

// newBatchQueue returns the shared enqueued-token queues of the budget
// (batch submit/wait --budget), entries living ttl (wall; at least a
// minute) unless refreshed, and a func that closes its connection.
// With --budget-fallback local and Redis unreachable it warns on log and
// returns nil: the job counts only its own shards.
func newBatchQueue(ctx context.Context, f *Factory, b BudgetOptions, clk clock.Clock, log io.Writer, ttl time.Duration) (*pace.BatchQueue, func(), error) {
	rdb, err := newRedisClient(b.URL)
	if err != nil {
		return nil, nil, exitcode.New(exitcode.Usage, err)
	}
	if err := pingBudget(ctx, rdb, b); err != nil {
		rdb.Close()
		var ec *exitcode.Error
		if errors.As(err, &ec) {
			return nil, nil, err
		}
		if log != nil {
			fmt.Fprintf(log, "budget: Redis at %s unreachable (%v); --budget-fallback local: this job counts only its own batches\n", maskURL(b.URL), err)
		}
		return nil, nil, nil
	}
	name := budgetName(ctx, f, b, pace.ClockScale(clk), true)
	return pace.NewBatchQueue(rdb, name, max(ttl, time.Minute)), func() { rdb.Close() }, nil
}

// learnOrganization asks the API which organization (and project) the key
// belongs to, from the openai-organization/openai-project headers of a GET
// /v1/models (not a model request: it counts toward no RPM/TPM limit), so
// that every request, the first included, is charged in the shared budget.
// "" when there is no key or no answer (the limiter then learns the name
// from the first response).
func learnOrganization(ctx context.Context, f *Factory) (org, project string) {
	if f.Config().APIKey == "" {
		return "", ""
	}
	client, err := f.APIClient()
	if err != nil {
		return "", ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := client.Get(ctx, "/v1/models")
	if err != nil || resp == nil {
		return "", ""
	}
	return resp.Header.Get("openai-organization"), resp.Header.Get("openai-project")
}

// budgetHelp is the paragraph of run's and proxy's help on --budget.
const budgetHelp = `Shared budget: --budget URL (env OAIRL_BUDGET; redis://[user:pass@]host:port/db,
rediss://, unix://) paces every process and host that names the same Redis
under one organization's limits together ('oairl budget status' shows it).
The budget is named after OPENAI_ORG_ID/OPENAI_PROJECT_ID, else --budget-key,
else the openai-organization header of the first answer. Redis unreachable at
start is exit 1 (--budget-fallback local starts anyway); lost mid-run, each
process continues on its share (limits ÷ clients alive) and rejoins.

`

const budgetLong = `Inspect and clear shared budgets: the Redis state that 'oairl run --budget URL'
(and batch, proxy) share so that every process and host of one organization
stays under its limits together.

Key layout (inspect with redis-cli; NAME is ORG/PROJECT, ORG, project:PROJECT
or --budget-key, with "@xK" appended under --time-scale K):
  oairl:budgets                     SET of budget names
  oairl:{NAME}:clients              ZSET client -> last heartbeat (ms)
  oairl:{NAME}:inflight             ZSET in-flight lease -> expiry (ms)
  oairl:{NAME}:gate                 HASH cap (shared in-flight cap), epoch
  oairl:{NAME}:models               SET of models
  oairl:{NAME}:m:MODEL:limits       HASH learned RPM/TPM, lim:/cap:/period:KIND in force
  oairl:{NAME}:m:MODEL:tat:KIND     GCRA theoretical arrival time (budget ms)
  oairl:{NAME}:m:MODEL:pause        HASH KIND -> paused until (budget ms)
  oairl:{NAME}:m:MODEL:stats        HASH 429, ok, paused:KIND counters
  oairl:{NAME}:batchq:MODEL         HASH batch job -> enqueued tokens, expiry (ms)
No API key or secret is ever stored there.`

func newBudgetCmd(f *Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "budget",
		Short: "Inspect or reset the shared budgets in Redis (--budget)",
		Long:  budgetLong,
	}
	c.AddCommand(newBudgetStatusCmd(f, nil), newBudgetResetCmd(f, nil))
	return c
}

// BudgetStatusOptions holds the flags of 'oairl budget status'.
type BudgetStatusOptions struct {
	f      *Factory
	Budget BudgetOptions
	Format string
}

func newBudgetStatusCmd(f *Factory, runF func(*BudgetStatusOptions) error) *cobra.Command {
	opts := &BudgetStatusOptions{f: f}
	c := &cobra.Command{
		Use:   "status [--budget URL] [--budget-key NAME]",
		Short: "Show each shared budget: limits, available now, pauses, clients, 429s",
		Long: `Show the shared budgets in the Redis of --budget (env OAIRL_BUDGET): every
budget, or only --budget-key NAME. Per budget and model and kind (RPM, TPM):
the limit in force (per minute), what the bucket holds now (capacity is
headroom × limit; negative when reservations are queued), the pause in force
(seconds), clients alive (heartbeat within 5 s), requests in flight and the
429s all clients saw.

--format json prints an array of {budget, time_scale, clients_alive,
in_flight, in_flight_cap, models: [{model, limits, learned, available,
paused_seconds, rate_limited, succeeded}]}.

Exit codes: 1 Redis unreachable; 2 usage (no --budget/OAIRL_BUDGET).`,
		Example: `  oairl budget status --budget redis://127.0.0.1:6379/0
  OAIRL_BUDGET=redis://127.0.0.1:6379/0 oairl budget status --json | jq .`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.Budget.resolve(f); err != nil {
				return err
			}
			if opts.Budget.URL == "" {
				return FlagErrorf("no budget: pass --budget URL or set OAIRL_BUDGET")
			}
			if runF != nil {
				return runF(opts)
			}
			return budgetStatusRun(c.Context(), opts)
		},
	}
	fl := c.Flags()
	fl.StringVar(&opts.Budget.URL, "budget", "", "Redis `URL` of the budgets (env OAIRL_BUDGET)")
	fl.StringVar(&opts.Budget.Key, "budget-key", "", "show only the budget `NAME`")
	addFormatFlags(f, c, &opts.Format, "output format: table (text on a terminal, tab-separated rows when piped) or json", "table", "json")
	return c
}

func budgetRedis(ctx context.Context, u string) (*redis.Client, error) {
	rdb, err := newRedisClient(u)
	if err != nil {
		return nil, exitcode.New(exitcode.Usage, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, exitcode.Errorf(exitcode.Failure, "cannot reach the budget's Redis at %s: %v; start it or fix --budget/OAIRL_BUDGET", maskURL(u), err)
	}
	return rdb, nil
}

func budgetStatusRun(ctx context.Context, opts *BudgetStatusOptions) error {
	ios := opts.f.IOStreams
	rdb, err := budgetRedis(ctx, opts.Budget.URL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	st, err := pace.ReadBudgets(ctx, rdb, opts.Budget.Key)
	if err != nil {
		return exitcode.Errorf(exitcode.Failure, "reading the budgets at %s: %v", maskURL(opts.Budget.URL), err)
	}
	if st == nil {
		st = []pace.BudgetStatus{}
	}
	if opts.Format == "json" {
		enc := json.NewEncoder(ios.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return writeBudgetTable(ios.Out, st, ios.IsStdoutTTY())
}

func writeBudgetTable(w io.Writer, st []pace.BudgetStatus, tty bool) error {
	header := []string{"BUDGET", "MODEL", "KIND", "LIMIT", "AVAILABLE", "PAUSED", "CLIENTS", "IN FLIGHT", "429S"}
	var rows [][]string
	for _, b := range st {
		if len(b.Models) == 0 {
			rows = append(rows, []string{b.Name, "", "", "", "", "", strconv.Itoa(b.ClientsAlive), strconv.Itoa(b.InFlight), ""})
		}
		for _, m := range b.Models {
			kinds := make([]string, 0, len(m.Limits))
			for k := range m.Limits {
				kinds = append(kinds, k)
			}
			slices.Sort(kinds)
			for _, k := range kinds {
				paused := ""
				if p, ok := m.Paused[k]; ok {
					paused = strconv.FormatFloat(p, 'f', -1, 64)
					if tty {
						paused += "s"
					}
				}
				num := func(n int64) string { return strconv.FormatInt(n, 10) }
				if tty {
					num = humanize.Int // thousands separators for people
				}
				rows = append(rows, []string{b.Name, m.Model, k, num(m.Limits[k]),
					num(int64(math.Round(m.Available[k]))), paused,
					strconv.Itoa(b.ClientsAlive), strconv.Itoa(b.InFlight), strconv.FormatInt(m.RateLimited, 10)})
			}
		}
	}
	if !tty {
		for _, r := range rows {
			if _, err := fmt.Fprintln(w, strings.Join(r, "\t")); err != nil {
				return err
			}
		}
		return nil
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no shared budget in this Redis yet")
		return err
	}
	right := tw.AlignRight
	t := newTable(w, header, []tw.Align{tw.AlignLeft, tw.AlignLeft, tw.AlignLeft, right, right, right, right, right, right}, false)
	for _, r := range rows {
		if err := t.Append(r); err != nil {
			return err
		}
	}
	return t.Render()
}

// BudgetResetOptions holds the flags of 'oairl budget reset'.
type BudgetResetOptions struct {
	f      *Factory
	Budget BudgetOptions
	Name   string
	Yes    bool
}

func newBudgetResetCmd(f *Factory, runF func(*BudgetResetOptions) error) *cobra.Command {
	opts := &BudgetResetOptions{f: f}
	c := &cobra.Command{
		Use:   "reset NAME --budget URL [--yes]",
		Short: "Clear one shared budget (buckets, pauses, learned limits, counters)",
		Long: `Delete every key of the budget NAME (see 'oairl budget status' for names).
Clients still running start again from their own view of the buckets (what
they last saw or spent, never more) and the limits they have learned. Asks for confirmation on a terminal unless --yes; without a
terminal, --yes is required.

Exit codes: 1 Redis unreachable, not confirmed, or no budget NAME (the error
lists the budgets there are); 2 usage.`,
		Example: `  oairl budget reset org-abc123 --budget redis://127.0.0.1:6379/0 --yes`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Name = args[0]
			if err := opts.Budget.resolve(f); err != nil {
				return err
			}
			if opts.Budget.URL == "" {
				return FlagErrorf("no budget: pass --budget URL or set OAIRL_BUDGET")
			}
			if runF != nil {
				return runF(opts)
			}
			return budgetResetRun(c.Context(), opts)
		},
	}
	fl := c.Flags()
	fl.StringVar(&opts.Budget.URL, "budget", "", "Redis `URL` of the budgets (env OAIRL_BUDGET)")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	return c
}

func budgetResetRun(ctx context.Context, opts *BudgetResetOptions) error {
	ios := opts.f.IOStreams
	if !opts.Yes {
		if !ios.IsStdinTTY() {
			return exitcode.Errorf(exitcode.Failure, "not resetting budget %s: pass --yes to confirm (no terminal to ask on)", opts.Name)
		}
		fmt.Fprintf(ios.ErrOut, "Reset budget %s at %s? Running clients start again from what they last saw of the buckets. [y/N] ", opts.Name, maskURL(opts.Budget.URL))
		var answer string
		_, _ = fmt.Fscanln(ios.In, &answer)
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return exitcode.Errorf(exitcode.Failure, "not reset")
		}
	}
	rdb, err := budgetRedis(ctx, opts.Budget.URL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	n, err := pace.ResetBudget(ctx, rdb, opts.Name)
	var unknown *pace.UnknownBudgetError
	if errors.As(err, &unknown) {
		return exitcode.Errorf(exitcode.Failure, "not reset: %v (at %s)", err, maskURL(opts.Budget.URL))
	}
	if err != nil {
		return exitcode.Errorf(exitcode.Failure, "resetting budget %s: %v", opts.Name, err)
	}
	if !ios.Quiet {
		fmt.Fprintf(ios.ErrOut, "budget %s reset: %d keys deleted\n", opts.Name, n)
	}
	return nil
}

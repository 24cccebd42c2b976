package pace

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts of the shared budget, one atomic script per decision.
// Each starts with the clock prelude (clock.lua).
var (
	//go:embed lua/clock.lua
	luaClock string
	//go:embed lua/reserve.lua
	luaReserve string
	//go:embed lua/observe.lua
	luaObserve string
	//go:embed lua/pause.lua
	luaPause string
	//go:embed lua/release.lua
	luaRelease string
	//go:embed lua/heartbeat.lua
	luaHeartbeat string
	//go:embed lua/paused.lua
	luaPaused string
	//go:embed lua/now.lua
	luaNow string

	// redis.NewScript: EVALSHA, falling back to EVAL when the server does
	// not have the script (first use, or after a restart).
	scriptReserve   = redis.NewScript(luaClock + luaReserve)
	scriptObserve   = redis.NewScript(luaClock + luaObserve)
	scriptPause     = redis.NewScript(luaClock + luaPause)
	scriptRelease   = redis.NewScript(luaClock + luaRelease)
	scriptHeartbeat = redis.NewScript(luaClock + luaHeartbeat)
	scriptPaused    = redis.NewScript(luaClock + luaPaused)
	scriptNow       = redis.NewScript(luaClock + luaNow)
)

// BudgetsKey is the Redis SET of every budget name in use (for
// `oairl budget status` without a name).
const BudgetsKey = "oairl:budgets"

// BudgetName is the name of an organization's budget: "ORG/PROJECT",
// "ORG", or "project:PROJECT"; fallback (e.g. --budget-key) when both are
// empty. Characters that would break the key layout ({ } and spaces) are
// replaced by '_'. A time scale other than 1 is appended as "@xK", so
// rehearsals at different speeds never share buckets.
func BudgetName(org, project, fallback string, scale float64) string {
	var n string
	switch {
	case org != "" && project != "":
		n = org + "/" + project
	case org != "":
		n = org
	case project != "":
		n = "project:" + project
	default:
		n = fallback
	}
	n = strings.Map(func(r rune) rune {
		if r == '{' || r == '}' || r <= ' ' {
			return '_'
		}
		return r
	}, n)
	if scale != 1 && scale > 0 {
		n += "@x" + strconv.FormatFloat(scale, 'f', -1, 64)
	}
	return n
}

// budgetKeys is the key layout of one budget. Every key carries the budget
// name as a hash tag ({NAME}), so one budget lives in one cluster slot and
// a script may touch all its keys.
//
//	oairl:{NAME}:clients              ZSET client id -> last heartbeat (wall ms)
//	oairl:{NAME}:inflight             ZSET lease id -> lease expiry (wall ms)
//	oairl:{NAME}:gate                 HASH cap (in-flight cap, AIMD), epoch
//	oairl:{NAME}:slotq, :slotseen     ZSET/HASH of requests waiting for a slot (FIFO)
//	oairl:{NAME}:meta                 HASH scale (the budget clock's time scale)
//	oairl:{NAME}:models               SET of model names seen
//	oairl:{NAME}:m:MODEL:limits       HASH RPM, TPM (learned per-minute limits),
//	                                  lim:KIND, cap:KIND, period:KIND (in force), settled
//	oairl:{NAME}:m:MODEL:tat:KIND     STRING GCRA theoretical arrival time (budget ms)
//	oairl:{NAME}:m:MODEL:pause        HASH KIND -> paused until (budget ms)
//	oairl:{NAME}:m:MODEL:probe        STRING lease of the request probing unknown limits
//	oairl:{NAME}:m:MODEL:stats        HASH 429, ok, paused:KIND (counters)
//	oairl:{NAME}:batchq:MODEL         HASH batch job id -> "TOKENS EXPIRY" (BatchQueue)
//
// KIND is Kind.String() (RPM, TPM, ...). Budget ms count from 2024-01-01
// on Redis' clock (TIME), times the scale.
type budgetKeys struct{ prefix string }

func keysFor(name string) budgetKeys { return budgetKeys{prefix: "oairl:{" + name + "}"} }

func (k budgetKeys) k(s string) string { return k.prefix + ":" + s }
func (k budgetKeys) m(model, s string) string {
	return k.prefix + ":m:" + model + ":" + s
}
func (k budgetKeys) tat(model string, kind Kind) string { return k.m(model, "tat:"+kind.String()) }

// BudgetStatus is what `oairl budget status` reports for one budget.
type BudgetStatus struct {
	Name         string        `json:"budget"`
	Scale        float64       `json:"time_scale"`
	ClientsAlive int           `json:"clients_alive"`
	InFlight     int           `json:"in_flight"`
	InFlightCap  float64       `json:"in_flight_cap"`
	Models       []ModelStatus `json:"models"`
}

// ModelStatus is one model of a budget.
type ModelStatus struct {
	Model string `json:"model"`
	// Limits are the limits in force per kind (RPM, TPM, ...; per minute),
	// as the last decision used them; Learned the ones from headers.
	Limits  map[string]int64 `json:"limits"`
	Learned map[string]int64 `json:"learned"`
	// Available is what each bucket holds now (units; capacity is
	// headroom × limit); negative when reservations are queued ahead.
	Available map[string]float64 `json:"available"`
	// Paused is the remaining pause per kind in seconds of the budget
	// clock (kinds without a pause are absent).
	Paused      map[string]float64 `json:"paused_seconds"`
	RateLimited int64              `json:"rate_limited"` // 429s seen by all clients
	Succeeded   int64              `json:"succeeded"`
}

// aliveWindow is how recently a client must have sent a heartbeat to count
// as alive (wall time).
const aliveWindow = 5 * time.Second

// ReadBudgets returns the status of the named budget, or of every budget
// when name is "".
func ReadBudgets(ctx context.Context, rdb redis.UniversalClient, name string) ([]BudgetStatus, error) {
	names := []string{name}
	if name == "" {
		var err error
		if names, err = rdb.SMembers(ctx, BudgetsKey).Result(); err != nil {
			return nil, err
		}
		slices.Sort(names)
	}
	var out []BudgetStatus
	for _, n := range names {
		st, err := readBudget(ctx, rdb, n)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func readBudget(ctx context.Context, rdb redis.UniversalClient, name string) (BudgetStatus, error) {
	k := keysFor(name)
	st := BudgetStatus{Name: name, Scale: 1, Models: []ModelStatus{}}
	if s, err := rdb.HGet(ctx, k.k("meta"), "scale").Float64(); err == nil && s > 0 {
		st.Scale = s
	}
	t, err := scriptNow.Run(ctx, rdb, []string{k.k("meta")}, st.Scale).StringSlice()
	if err != nil {
		return st, err
	}
	now, _ := strconv.ParseFloat(t[0], 64)
	wall, _ := strconv.ParseFloat(t[1], 64)
	wallS := strconv.FormatFloat(wall, 'f', 3, 64)
	alive, err := rdb.ZCount(ctx, k.k("clients"), strconv.FormatFloat(wall-float64(aliveWindow.Milliseconds()), 'f', 3, 64), "+inf").Result()
	if err != nil {
		return st, err
	}
	st.ClientsAlive = int(alive)
	inflight, _ := rdb.ZCount(ctx, k.k("inflight"), "("+wallS, "+inf").Result()
	st.InFlight = int(inflight)
	st.InFlightCap, _ = rdb.HGet(ctx, k.k("gate"), "cap").Float64()
	ms, err := rdb.SMembers(ctx, k.k("models")).Result()
	if err != nil {
		return st, err
	}
	slices.Sort(ms)
	for _, m := range ms {
		lh, err := rdb.HGetAll(ctx, k.m(m, "limits")).Result()
		if err != nil {
			return st, err
		}
		ps, _ := rdb.HGetAll(ctx, k.m(m, "pause")).Result()
		stats, _ := rdb.HGetAll(ctx, k.m(m, "stats")).Result()
		mst := ModelStatus{Model: m, Limits: map[string]int64{}, Learned: map[string]int64{},
			Available: map[string]float64{}, Paused: map[string]float64{}}
		for f, v := range lh {
			kind, ok := strings.CutPrefix(f, "lim:")
			if !ok {
				if x, err := strconv.ParseInt(v, 10, 64); err == nil && f != "settled" && !strings.Contains(f, ":") {
					mst.Learned[f] = x
				}
				continue
			}
			lim, _ := strconv.ParseInt(v, 10, 64)
			c, _ := strconv.ParseFloat(lh["cap:"+kind], 64)
			period, _ := strconv.ParseFloat(lh["period:"+kind], 64)
			mst.Limits[kind] = lim
			if lim <= 0 || period <= 0 {
				continue
			}
			tat, err := rdb.Get(ctx, k.m(m, "tat:"+kind)).Float64()
			if err != nil {
				tat = now // absent: the bucket is full
			}
			avail := c - math.Max(tat-now, 0)/(period/float64(lim))
			mst.Available[kind] = math.Round(avail*10) / 10
		}
		for kind, v := range ps {
			until, _ := strconv.ParseFloat(v, 64)
			if until > now {
				mst.Paused[kind] = math.Round((until-now)/10) / 100
			}
		}
		mst.RateLimited, _ = strconv.ParseInt(stats["429"], 10, 64)
		mst.Succeeded, _ = strconv.ParseInt(stats["ok"], 10, 64)
		st.Models = append(st.Models, mst)
	}
	return st, nil
}

// ResetBudget deletes every key of the named budget and forgets its name;
// it returns how many keys were deleted. Clients still running start again
// from their own view of the buckets (pace.Redis seeds a missing bucket) and
// the limits they learned.
func ResetBudget(ctx context.Context, rdb redis.UniversalClient, name string) (int, error) {
	if name == "" {
		return 0, fmt.Errorf("no budget name")
	}
	pattern := globEscape(keysFor(name).prefix) + ":*"
	var n int
	iter := rdb.Scan(ctx, 0, pattern, 500).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		d, err := rdb.Del(ctx, batch...).Result()
		n += int(d)
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return n, err
	}
	if err := flush(); err != nil {
		return n, err
	}
	if n == 0 {
		// Nothing to delete: a known but empty budget is reset; an unknown
		// name (a typo, the org id without its @xK) is an error naming the
		// budgets there are, as status lists them.
		known, err := rdb.SMembers(ctx, BudgetsKey).Result()
		if err != nil {
			return 0, err
		}
		if !slices.Contains(known, name) {
			slices.Sort(known)
			return 0, &UnknownBudgetError{Name: name, Known: known}
		}
	}
	return n, rdb.SRem(ctx, BudgetsKey, name).Err()
}

// UnknownBudgetError is ResetBudget's answer for a name that has neither
// keys nor an entry among the budgets.
type UnknownBudgetError struct {
	Name  string
	Known []string // sorted; empty when the Redis holds no budget
}

func (e *UnknownBudgetError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("no budget %s (this Redis holds no budget)", e.Name)
	}
	return fmt.Sprintf("no budget %s; the budgets are: %s", e.Name, strings.Join(e.Known, ", "))
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

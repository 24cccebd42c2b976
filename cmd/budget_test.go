package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/redistest"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

const budgetTestKey = "sk-budget-test-0000000000000000"

// writeBudgetInput writes n gpt-4o-mini requests with custom_ids PREFIX-i.
func writeBudgetInput(t *testing.T, dir, prefix string, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"custom_id":"%s-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi %d"}],"max_tokens":5}}`+"\n", prefix, i, i)
	}
	p := filepath.Join(dir, prefix+".jsonl")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// customIDs counts the custom_ids of a results file with a 200.
func customIDs(t *testing.T, path string) map[string]int {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	got := map[string]int{}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r struct {
			CustomID string `json:"custom_id"`
			Response *struct {
				StatusCode int `json:"status_code"`
			} `json:"response"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if r.Response != nil && r.Response.StatusCode == 200 {
			got[r.CustomID]++
		}
	}
	return got
}

type runResult struct {
	code           int
	stdout, stderr string
	out            string
}

// runClients runs one `oairl run` per prefix concurrently, in-process.
func runClients(t *testing.T, srvURL string, rpm, n int, extra []string, during func()) []runResult {
	t.Helper()
	dir := t.TempDir()
	res := make([]runResult, 2)
	var wg sync.WaitGroup
	for i, prefix := range []string{"a", "b"} {
		in := writeBudgetInput(t, dir, prefix, n)
		res[i].out = filepath.Join(dir, prefix+".out.jsonl")
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, out, errOut := newTestFactory(map[string]string{"OPENAI_API_KEY": budgetTestKey, "OPENAI_BASE_URL": srvURL})
			args := append([]string{"run", in, "-o", res[i].out, "--rpm", fmt.Sprint(rpm), "--tpm", "1000000", "--time-scale", "60"}, extra...)
			res[i].code = run(f, context.Background(), args)
			res[i].stdout, res[i].stderr = out.String(), errOut.String()
		}()
	}
	if during != nil {
		during()
	}
	wg.Wait()
	return res
}

func checkEachOnce(t *testing.T, res []runResult, n int) {
	t.Helper()
	for i, r := range res {
		if r.code != exitcode.OK {
			t.Errorf("client %d: exit %d\n%s", i, r.code, r.stderr)
		}
		ids := customIDs(t, r.out)
		if len(ids) != n {
			t.Errorf("client %d: %d custom_ids succeeded, want %d", i, len(ids), n)
		}
		for id, c := range ids {
			if c != 1 {
				t.Errorf("client %d: %s has %d results", i, id, c)
			}
		}
	}
}

// Two processes with --budget stay under one organization's limit
// together; without it, each paces to the full limit and they overrun it.
func TestRunBudgetShared(t *testing.T) {
	rs := redistest.Start(t)
	const n = 400 // 2 × 400 requests against a 600 RPM limit
	limits := sim.Config{RPM: 300, TPM: 1_000_000, TimeScale: 60}

	alone := simtest.New(t, limits)
	runClients(t, alone.URL, 300, n, []string{"--max-attempts", "2"}, nil) // some fail: fine here
	without := alone.Sim.Stats().RateLimited[sim.LimitRPM]

	shared := simtest.New(t, limits)
	res := runClients(t, shared.URL, 300, n, []string{"--budget", rs.URL()}, nil)
	checkEachOnce(t, res, n)
	with := shared.Sim.Stats().RateLimited[sim.LimitRPM]
	t.Logf("429s without --budget %d, with %d (of %d requests)", without, with, 2*n)
	if with > 2*n/100 {
		t.Errorf("with --budget: %d 429s for %d requests, want at most 1%%", with, 2*n)
	}
	if without <= with {
		t.Errorf("control: without --budget %d 429s, with %d: the test cannot tell them apart", without, with)
	}

	// oairl budget status sees the budget, named after the organization
	// the sim reports, with the rehearsal's time scale.
	f, out, errOut := newTestFactory(map[string]string{"OAIRL_BUDGET": rs.URL()})
	if code := run(f, context.Background(), []string{"budget", "status", "--json"}); code != 0 {
		t.Fatalf("budget status: exit %d: %s", code, errOut)
	}
	var st []struct {
		Name   string  `json:"budget"`
		Scale  float64 `json:"time_scale"`
		Models []struct {
			Model  string           `json:"model"`
			Limits map[string]int64 `json:"limits"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(out.String()), &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(st) != 1 || st[0].Name != sim.DefaultOrganization+"@x60" || st[0].Scale != 60 ||
		len(st[0].Models) != 1 || st[0].Models[0].Limits["RPM"] != 300 {
		t.Errorf("status %s", out)
	}
	f, out, _ = newTestFactory(map[string]string{"OAIRL_BUDGET": rs.URL()})
	if code := run(f, context.Background(), []string{"budget", "status"}); code != 0 ||
		!strings.Contains(out.String(), sim.DefaultOrganization+"@x60\tgpt-4o-mini\tRPM\t300\t") {
		t.Errorf("piped status (exit %d): %q", code, out)
	}

	// The API key never reaches Redis.
	assertNoSecretInRedis(t, rs.URL(), budgetTestKey)

	// reset asks first: no terminal, no --yes: refused.
	f, _, errOut = newTestFactory(map[string]string{"OAIRL_BUDGET": rs.URL()})
	if code := run(f, context.Background(), []string{"budget", "reset", st[0].Name}); code != exitcode.Failure || !strings.Contains(errOut.String(), "--yes") {
		t.Errorf("reset without --yes: exit %d, %s", code, errOut)
	}
	f, _, errOut = newTestFactory(map[string]string{"OAIRL_BUDGET": rs.URL()})
	if code := run(f, context.Background(), []string{"budget", "reset", st[0].Name, "--yes"}); code != 0 {
		t.Errorf("reset --yes: exit %d, %s", code, errOut)
	}
	f, out, _ = newTestFactory(map[string]string{"OAIRL_BUDGET": rs.URL()})
	if code := run(f, context.Background(), []string{"budget", "status", "--json"}); code != 0 || strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("after reset: %s", out)
	}
}

func assertNoSecretInRedis(t *testing.T, url, secret string) {
	t.Helper()
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys: %v %v", keys, err)
	}
	for _, k := range keys {
		var vals []string
		switch rdb.Type(ctx, k).Val() {
		case "string":
			vals = []string{rdb.Get(ctx, k).Val()}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				vals = append(vals, f, v)
			}
		case "set":
			vals = rdb.SMembers(ctx, k).Val()
		case "zset":
			vals = rdb.ZRange(ctx, k, 0, -1).Val()
		}
		for _, v := range append(vals, k) {
			if strings.Contains(v, secret) || strings.Contains(v, "sk-") {
				t.Errorf("key %s holds a secret: %q", k, v)
			}
		}
	}
}

// Redis unreachable at start: exit 1 naming the URL with its password
// masked and the remedy; --budget-fallback local starts anyway.
func TestRunBudgetUnreachable(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	port := redistest.FreePort(t)
	url := fmt.Sprintf("redis://user:hunter2pass@127.0.0.1:%d/0", port)
	dir, in := writeRunInput(t, runLineA, runLineB)
	f, _, errOut := newTestFactory(map[string]string{"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": srv.URL, "OAIRL_BUDGET": url})
	code := run(f, context.Background(), []string{"run", in, "-o", filepath.Join(dir, "out.jsonl")})
	msg := errOut.String()
	if code != exitcode.Failure || !strings.Contains(msg, fmt.Sprintf("redis://user:xxxxx@127.0.0.1:%d/0", port)) ||
		!strings.Contains(msg, "--budget-fallback local") || strings.Contains(msg, "hunter2pass") {
		t.Errorf("exit %d, stderr %q", code, msg)
	}
	if len(srv.Sim.Requests()) != 0 {
		t.Error("requests sent although the budget was unreachable")
	}
	f, _, errOut = newTestFactory(map[string]string{"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": srv.URL})
	code = run(f, context.Background(), []string{"run", in, "-o", filepath.Join(dir, "out2.jsonl"), "--budget", url, "--budget-fallback", "local"})
	if code != exitcode.OK || strings.Contains(errOut.String(), "hunter2pass") {
		t.Errorf("--budget-fallback local: exit %d, %s", code, errOut)
	}
	// budget status names the URL the same way.
	f, _, errOut = newTestFactory(nil)
	if code := run(f, context.Background(), []string{"budget", "status", "--budget", url}); code != exitcode.Failure ||
		strings.Contains(errOut.String(), "hunter2pass") || !strings.Contains(errOut.String(), "xxxxx") {
		t.Errorf("status: exit %d, %s", code, errOut)
	}
	f, _, _ = newTestFactory(nil)
	if code := run(f, context.Background(), []string{"budget", "status"}); code != exitcode.Usage {
		t.Errorf("status without a URL: exit %d, want 2", code)
	}
}

// Redis killed mid-run and restarted empty: both runs finish, every
// custom_id exactly once, one warning each, sharing resumes.
func TestRunBudgetRedisKilled(t *testing.T) {
	rs := redistest.Start(t)
	srv := simtest.New(t, sim.Config{RPM: 600, TPM: 1_000_000, TimeScale: 60})
	const n = 600
	res := runClients(t, srv.URL, 600, n, []string{"--budget", rs.URL()}, func() {
		// Kill once both clients share the budget (started and answered).
		opt, _ := redis.ParseURL(rs.URL())
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		key := "oairl:{" + sim.DefaultOrganization + "@x60}:clients"
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if rdb.ZCard(context.Background(), key).Val() >= 2 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
		rs.Kill()
		time.Sleep(700 * time.Millisecond)
		rs.Restart()
	})
	checkEachOnce(t, res, n)
	for i, r := range res {
		if c := strings.Count(r.stderr, "lost Redis"); c > 1 {
			t.Errorf("client %d warned %d times:\n%s", i, c, r.stderr)
		}
	}
	st := srv.Sim.Stats()
	t.Logf("429s %v for %d requests; stderr a:\n%s", st.RateLimited, 2*n, res[0].stderr)
}

// oairl proxy --budget paces through the same builder: its requests land
// in the shared budget, named after the upstream's organization header.
func TestProxyBudget(t *testing.T) {
	rs := redistest.Start(t)
	up := simtest.New(t, sim.Config{RPM: 600, TPM: 1_000_000})
	f, _, errOut := newTestFactory(map[string]string{"OPENAI_BASE_URL": up.URL})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	c := newProxyCmd(f, func(o *ProxyOptions) error {
		o.Ready = func(u string) { ready <- u }
		return proxyRun(o)
	})
	c.SetArgs([]string{"--addr", "127.0.0.1:0", "--budget", rs.URL()})
	c.SetOut(&strings.Builder{})
	c.SetErr(&strings.Builder{})
	go func() { done <- c.ExecuteContext(ctx) }()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("proxy ended: %v\n%s", err, errOut)
	case <-time.After(10 * time.Second):
		t.Fatal("proxy not ready")
	}
	for i := range 3 {
		body := fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi %d"}],"max_tokens":5}`, i)
		req, _ := http.NewRequest("POST", base+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+budgetTestKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	opt, _ := redis.ParseURL(rs.URL())
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	key := "oairl:{" + sim.DefaultOrganization + "}:m:gpt-4o-mini:stats"
	if ok := rdb.HGet(context.Background(), key, "ok").Val(); ok != "2" && ok != "3" {
		// The first request learns the budget's name; the next ones are
		// charged in it.
		t.Errorf("%s ok = %q, want the requests after the first counted", key, ok)
	}
	assertNoSecretInRedis(t, rs.URL(), budgetTestKey)
	cancel()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		t.Fatal("proxy did not stop")
	}
}

func TestBudgetTable(t *testing.T) {
	st := []pace.BudgetStatus{{Name: "org-1", ClientsAlive: 3, InFlight: 2, Models: []pace.ModelStatus{{
		Model: "gpt-4o", Limits: map[string]int64{"TPM": 30000, "RPM": 500},
		Available: map[string]float64{"RPM": 449.6, "TPM": -1200}, Paused: map[string]float64{"TPM": 2.5}, RateLimited: 4,
	}}}}
	var tty, piped strings.Builder
	if err := writeBudgetTable(&tty, st, true); err != nil {
		t.Fatal(err)
	}
	if err := writeBudgetTable(&piped, st, false); err != nil {
		t.Fatal(err)
	}
	want := "org-1\tgpt-4o\tRPM\t500\t450\t\t3\t2\t4\norg-1\tgpt-4o\tTPM\t30000\t-1200\t2.5\t3\t2\t4\n"
	if piped.String() != want {
		t.Errorf("piped:\n%q\nwant\n%q", piped.String(), want)
	}
	for _, s := range []string{"BUDGET", "AVAILABLE", "2.5s", "-1,200", "30,000", "org-1"} {
		if !strings.Contains(tty.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, tty.String())
		}
	}
	var empty strings.Builder
	_ = writeBudgetTable(&empty, nil, true)
	if !strings.Contains(empty.String(), "no shared budget") {
		t.Errorf("empty: %q", empty.String())
	}
}

// budget reset of a name that does not exist (a typo, the org id without
// its @xK) exits 1 naming the budgets there are, and deletes nothing; the
// real name resets (breaker2 F6).
func TestBudgetResetUnknown(t *testing.T) {
	rs := redistest.Start(t)
	f, _, errOut := newTestFactory(map[string]string{"OAIRL_BUDGET": rs.URL()})
	if code := run(f, context.Background(), []string{"budget", "reset", "org-AAA", "--yes"}); code != exitcode.Failure ||
		!strings.Contains(errOut.String(), "no budget org-AAA (this Redis holds no budget)") {
		t.Errorf("empty Redis: exit %d, %s", code, errOut)
	}
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	for _, n := range []string{"org-AAA@x10", "org-BBB"} {
		if err := rdb.SAdd(ctx, pace.BudgetsKey, n).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, "oairl:{"+n+"}:gate", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	f, _, errOut = newTestFactory(map[string]string{"OAIRL_BUDGET": rs.URL()})
	if code := run(f, context.Background(), []string{"budget", "reset", "org-AAA", "--yes"}); code != exitcode.Failure ||
		!strings.Contains(errOut.String(), "the budgets are: org-AAA@x10, org-BBB") {
		t.Errorf("unknown name: exit %d, %s", code, errOut)
	}
	if n, _ := rdb.Exists(ctx, "oairl:{org-AAA@x10}:gate", "oairl:{org-BBB}:gate").Result(); n != 2 {
		t.Errorf("a failed reset deleted keys: %d of 2 left", n)
	}
	f, _, errOut = newTestFactory(map[string]string{"OAIRL_BUDGET": rs.URL()})
	if code := run(f, context.Background(), []string{"budget", "reset", "org-AAA@x10", "--yes"}); code != 0 ||
		!strings.Contains(errOut.String(), "1 keys deleted") {
		t.Errorf("real name: exit %d, %s", code, errOut)
	}
}

// Two `batch submit --wait --budget` of one organization at once: each
// counts the other's enqueued tokens, so neither creates a batch the
// server fails with token_limit_exceeded.
func TestBatchBudgetSharedQueue(t *testing.T) {
	rs := redistest.Start(t)
	e := newBatchEnv(t, sim.Config{EnqueuedLimit: 3000})
	var wg sync.WaitGroup
	errs := make([]string, 2)
	codes := make([]int, 2)
	for i, name := range []string{"a", "b"} {
		in := e.path(name + ".jsonl")
		writeRequests(t, in, 20, "gpt-4o", 100) // one shard of ~2,200 tokens
		// Distinct bodies: two jobs, not one.
		b, _ := os.ReadFile(in)
		_ = os.WriteFile(in, []byte(strings.ReplaceAll(string(b), `"content":"`, `"content":"`+name+` `)), 0o644)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i], codes[i] = e.run("batch", "submit", in, "--enqueued-limit", "3000", "--wait", "--time-scale", e.scale,
				"--poll-interval", "2s", "--budget", rs.URL(), "--budget-key", "org-batch")
		}()
	}
	wg.Wait()
	for i := range 2 {
		if codes[i] != 0 {
			t.Fatalf("job %d: exit %d\n%s", i, codes[i], errs[i])
		}
	}
	for _, b := range e.srv.Sim.Batches() {
		if b.Status == "failed" {
			t.Errorf("batch %s failed %v: the jobs overfilled the shared queue", b.ID, b.ErrorCodes)
		}
	}
	if !strings.Contains(errs[0]+errs[1], "waiting for room in the gpt-4o batch queue (2") {
		t.Errorf("neither job waited for the other:\n%s\n%s", errs[0], errs[1])
	}
}

// A password given as a query option, or inside a URL the parser rejects,
// never reaches a message (breaker2 F8).
func TestBudgetURLSecretsMasked(t *testing.T) {
	for _, u := range []string{
		"redis://127.0.0.1:16391/0?password=topsecret",
		"unix:///tmp/redis.sock?password=topsecret&db=0",
		"redis://u:topsecret@[::1",
		"redis://:top%73ecret@127.0.0.1:6379/0?bogus=1",
	} {
		_, err := redisOptions(u)
		if err == nil {
			// A valid URL: its mask must still hide the secret.
			if m := maskURL(u); strings.Contains(m, "topsecret") {
				t.Errorf("maskURL(%q) = %q", u, m)
			}
			continue
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("redisOptions(%q) error shows the password: %v", u, err)
		}
	}
	if m := maskURL("redis://127.0.0.1:6379/0?password=topsecret"); strings.Contains(m, "topsecret") || !strings.Contains(m, "127.0.0.1:6379") {
		t.Errorf("maskURL = %q", m)
	}
}

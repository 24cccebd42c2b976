package cmd

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/redistest"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// startProxy runs `oairl proxy ARGS` in-process until the test ends and
// returns its base URL.
func startProxy(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	f, _, errOut := newTestFactory(env)
	f.IOStreams.Quiet = true // no log line per request
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	c := newProxyCmd(f, func(o *ProxyOptions) error {
		o.Ctx, o.Ready = ctx, func(u string) { ready <- u }
		return proxyRun(o)
	})
	c.SetArgs(append([]string{"--addr", "127.0.0.1:0"}, args...))
	done := make(chan error, 1)
	go func() { done <- c.Execute() }()
	select {
	case u := <-ready:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("proxy: %v", err)
			}
		})
		return u
	case err := <-done:
		cancel()
		t.Fatalf("proxy did not start: %v\n%s", err, errOut)
	}
	return ""
}

// Two proxies, each told the organization's whole RPM, share it through
// --budget: the sim answers (almost) no 429 and every app request
// succeeds. Without --budget the same load provokes 429s (control).
func TestProxyBudgetShared(t *testing.T) {
	rs := redistest.Start(t)
	limits := sim.Config{RPM: 60, TPM: 10_000_000, TimeScale: 60}
	load := func(simURL string, extra ...string) map[int]int {
		env := map[string]string{"OPENAI_BASE_URL": simURL}
		args := append([]string{"--rpm", "60", "--tpm", "10000000", "--time-scale", "60", "--max-queue-wait", "1h"}, extra...)
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for p := 0; p < 2; p++ {
			base := startProxy(t, env, args...)
			for i := 0; i < 60; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest("POST", base+"/chat/completions", strings.NewReader(
						`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
					req.Header.Set("Authorization", "Bearer "+budgetTestKey)
					code := 0
					if resp, err := (&http.Client{Timeout: time.Minute}).Do(req); err == nil {
						code = resp.StatusCode
						resp.Body.Close()
					}
					mu.Lock()
					codes[code]++
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		return codes
	}
	alone := simtest.New(t, limits)
	load(alone.URL, "--max-attempts", "2") // some fail: fine here
	without := alone.Sim.Stats().RateLimited[sim.LimitRPM]

	shared := simtest.New(t, limits)
	codes := load(shared.URL, "--budget", rs.URL())
	with := shared.Sim.Stats().RateLimited[sim.LimitRPM]
	t.Logf("upstream 429s without --budget %d, with %d (of 120 requests)", without, with)
	if codes[200] != 120 {
		t.Errorf("with --budget the apps saw %v, want 120×200", codes)
	}
	if with > 1 {
		t.Errorf("with --budget: %d upstream 429s for 120 requests, want at most 1%%", with)
	}
	if without <= with {
		t.Errorf("control: without --budget %d 429s, with %d: the test cannot tell them apart", without, with)
	}
	assertNoSecretInRedis(t, rs.URL(), budgetTestKey)
}

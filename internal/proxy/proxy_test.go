package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
	"github.com/oairl/oairl/tokens"
)

const testKey = "sk-test-proxy-0000000000000000"

// rig is a proxy in front of an upstream (usually the in-process sim).
type rig struct {
	URL   string // the proxy's base URL (…/v1)
	Srv   *Server
	Local *pace.Local
	HTTP  *httptest.Server
}

type rigOpts struct {
	limits    pace.Limits
	scale     float64
	maxConc   int
	queueWait time.Duration
	cfg       func(*Config)
}

func newRig(t testing.TB, upstream string, o rigOpts) *rig {
	t.Helper()
	if o.scale == 0 {
		o.scale = 1
	}
	clk := clock.Scaled(o.scale)
	mc := 50
	if o.maxConc > 0 {
		mc = o.maxConc
	}
	local := pace.New(pace.Config{Clock: clk, MaxConcurrent: mc,
		Limits: func(string) pace.Limits { return o.limits }})
	cfg := Config{Upstream: upstream, Limiter: local, Limits: local.Limits, Clock: clk, MaxQueueWait: o.queueWait, Seed: 1,
		Counter: tokens.NewCounter(tokens.Options{Registry: models.Default(), AssumeOutput: 1024})}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.CloseClientConnections(); hs.Close() })
	return &rig{URL: hs.URL + "/v1", Srv: srv, Local: local, HTTP: hs}
}

func chatBody(maxTokens int, stream bool) string {
	return fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],"max_tokens":%d,"stream":%v}`, maxTokens, stream)
}

func post(t *testing.T, ctx context.Context, base, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// fire sends n requests with the given concurrency and returns the status
// codes seen by the app.
func fire(t *testing.T, base string, n, conc int, body string) map[int]int {
	t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, _ := post(t, context.Background(), base, body, nil)
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return codes
}

// Pacing: a burst over the sim's RPM (or TPM) limit, through the proxy,
// reaches the sim without one 429 and every app request gets a 200.
func TestPacingUnderEachLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sim   sim.Config
		limit pace.Limits
	}{
		{"RPM", sim.Config{RPM: 60, TPM: 10_000_000, TimeScale: 60}, pace.Limits{RPM: 60, TPM: 10_000_000}},
		// ~30 tokens per request: 3,000 TPM is ~100 requests a minute.
		{"TPM", sim.Config{RPM: 100_000, TPM: 3000, TimeScale: 60}, pace.Limits{RPM: 100_000, TPM: 3000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := simtest.New(t, tc.sim)
			r := newRig(t, up.URL, rigOpts{limits: tc.limit, scale: 60, queueWait: time.Hour})
			codes := fire(t, r.URL, 120, 30, chatBody(10, false))
			if codes[200] != 120 {
				t.Fatalf("app saw %v, want 120×200", codes)
			}
			simRequests(t, up, 120)
			st := up.Sim.Stats()
			if len(st.RateLimited) != 0 {
				t.Errorf("the sim answered 429s %v: the proxy did not pace", st.RateLimited)
			}
			if st.Requests != 120 {
				t.Errorf("sim saw %d requests, want 120", st.Requests)
			}
		})
	}
}

// Transparent retry: another client has used up the organization's RPM
// (the sim's limits are per organization), so the proxy's first requests
// meet 429s; the app sees only 200s, and the 429s show in the metrics by
// limit.
func TestRateLimitRetriedTransparently(t *testing.T) {
	// At 20 RPM and 10x, the sim regains one request every 0.3 s of wall
	// time: the proxy's burst of 6 meets 429s however slow this machine.
	up := simtest.New(t, sim.Config{RPM: 20, TPM: 10_000_000, TimeScale: 10, RetryAfter: sim.RetryAfterMS})
	r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 20, TPM: 10_000_000}, scale: 10, queueWait: time.Hour})
	if codes := fire(t, up.URL, 20, 20, chatBody(5, false)); codes[200] != 20 {
		t.Fatalf("direct: %v", codes)
	}
	codes := fire(t, r.URL, 6, 6, chatBody(5, false))
	if codes[200] != 6 {
		t.Fatalf("app saw %v, want 6×200", codes)
	}
	st := up.Sim.Stats()
	if st.RateLimited[sim.LimitRPM] == 0 {
		t.Fatalf("the sim answered no RPM 429 (%v): the test did not provoke any", st.RateLimited)
	}
	m := scrape(t, r)
	if got := m[`oairl_upstream_rate_limited_total{limit="RPM",model="gpt-4o-mini"}`]; int64(got) != st.RateLimited[sim.LimitRPM] {
		t.Errorf("metric says %v upstream RPM 429s, sim sent %d", got, st.RateLimited[sim.LimitRPM])
	}
	if got := m[`oairl_requests_total{code="200",model="gpt-4o-mini"}`]; got != 6 {
		t.Errorf("oairl_requests_total 200 = %v, want 6", got)
	}
	if got := r.Srv.Stats().Retries; got == 0 {
		t.Errorf("no retries counted")
	}
}

// Quota, billing and auth errors go back to the app unchanged, once.
func TestQuotaAndAuthPassedThrough(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    sim.Config
		status int
		code   string
	}{
		{"quota", sim.Config{QuotaExhausted: "insufficient_quota"}, 429, "insufficient_quota"},
		{"billing", sim.Config{QuotaExhausted: "billing_hard_limit_reached"}, 429, "billing_hard_limit_reached"},
		{"auth", sim.Config{InvalidKey: true}, 401, "invalid_api_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := simtest.New(t, tc.cfg)
			direct, dbody := post(t, context.Background(), up.URL, chatBody(5, false), nil)
			r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 1000, TPM: 1_000_000}})
			resp, body := post(t, context.Background(), r.URL, chatBody(5, false), nil)
			if resp == nil || resp.StatusCode != tc.status || direct.StatusCode != tc.status {
				t.Fatalf("status through proxy %v, direct %d; want %d", resp, direct.StatusCode, tc.status)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != tc.code {
				t.Fatalf("body %s: code %q, want %q", body, e.Error.Code, tc.code)
			}
			var d struct {
				Error struct{ Code, Message string }
			}
			_ = json.Unmarshal(dbody, &d)
			if d.Error != e.Error {
				t.Errorf("proxied error %+v differs from the direct one %+v", e.Error, d.Error)
			}
			if n := simRequests(t, up, 2); n != 2 {
				t.Errorf("sim saw %d requests, want 2 (one direct, one proxied: never retried)", n)
			}
		})
	}
}

// A request that can never fit the TPM limit is answered at once,
// OpenAI-style, and never sent.
func TestRequestTooLarge(t *testing.T) {
	up := simtest.New(t, sim.Config{})
	r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 1000, TPM: 500}})
	resp, body := post(t, context.Background(), r.URL, chatBody(1000, false), nil)
	if resp == nil || resp.StatusCode != 429 || resp.Header.Get("x-should-retry") != "false" || !strings.Contains(string(body), "Request too large") {
		t.Fatalf("got %v %s", resp, body)
	}
	if n := up.Sim.Stats().Requests; n != 0 {
		t.Errorf("sim saw %d requests", n)
	}
}

// Load shedding: a request not admitted within the queue wait gets a 429
// in OpenAI's envelope with retry-after and retry-after-ms.
func TestLoadSheddingWithRetryAfter(t *testing.T) {
	up := simtest.New(t, sim.Config{Tier: "none"})
	// 1 RPM with headroom: one request fits, the next waits a minute.
	r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 1, TPM: 1_000_000}, queueWait: 200 * time.Millisecond})
	first, _ := post(t, context.Background(), r.URL, chatBody(5, false), nil)
	if first == nil || first.StatusCode != 200 {
		t.Fatalf("first request: %v", first)
	}
	resp, body := post(t, context.Background(), r.URL, chatBody(5, false), nil)
	if resp == nil || resp.StatusCode != 429 {
		t.Fatalf("second request: %v %s", resp, body)
	}
	var e struct {
		Error struct{ Message, Type, Code string }
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != "rate_limit_exceeded" || e.Error.Type != "tokens" && e.Error.Type != "requests" || !strings.Contains(e.Error.Message, "oairl proxy queued") {
		t.Fatalf("envelope %s", body)
	}
	if resp.Header.Get("retry-after") == "" || resp.Header.Get("retry-after-ms") == "" {
		t.Fatalf("no retry-after headers: %v", resp.Header)
	}
	if ms := resp.Header.Get("retry-after-ms"); ms < "1000" && len(ms) < 4 {
		t.Errorf("retry-after-ms %s: under a second", ms)
	}
	if n := simRequests(t, up, 1); n != 1 {
		t.Errorf("sim saw %d requests, want 1", n)
	}
	if d := r.Srv.admit.Depth(); d != [numPriorities]int{} {
		t.Errorf("queue not empty after shedding: %v", d)
	}
}

// Server-sent events reach the app intact (same events as direct) and
// chunk by chunk: the app reads the first event while the upstream is
// still holding back the rest.
func TestSSEPassThrough(t *testing.T) {
	up := simtest.New(t, sim.Config{Tier: "none", DeterministicIDs: true, OutputTokens: 12})
	r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 1000, TPM: 1_000_000}})
	events := func(base string) []string {
		resp, body := post(t, context.Background(), base, chatBody(12, true), nil)
		if resp == nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("stream: %v", resp)
		}
		var out []string
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "data: ") {
				// ids and timestamps differ between two answers
				var m map[string]any
				if json.Unmarshal([]byte(l[6:]), &m) == nil {
					delete(m, "id")
					delete(m, "created")
					b, _ := json.Marshal(m)
					l = string(b)
				}
				out = append(out, l)
			}
		}
		return out
	}
	direct, proxied := events(up.URL), events(r.URL)
	if len(proxied) < 10 || proxied[len(proxied)-1] != "data: [DONE]" {
		t.Fatalf("proxied stream: %d events, last %q", len(proxied), proxied[len(proxied)-1])
	}
	if strings.Join(direct, "\n") != strings.Join(proxied, "\n") {
		t.Errorf("proxied events differ:\n%s\nvs direct\n%s", strings.Join(proxied, "\n"), strings.Join(direct, "\n"))
	}

	// Flushed chunk by chunk: an upstream that sends one event and then
	// waits for the app to have read it.
	release := make(chan struct{})
	gated := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "data: {\"first\":true}\n\n")
		w.(http.Flusher).Flush()
		// Held until the test has read the first event (or gave up).
		select {
		case <-release:
		case <-req.Context().Done():
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	defer gated.Close()
	defer close(release)
	g := newRig(t, gated.URL+"/v1", rigOpts{limits: pace.Limits{RPM: 1000, TPM: 1_000_000}})
	req, _ := http.NewRequest("POST", g.URL+"/chat/completions", strings.NewReader(chatBody(5, true)))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if !strings.Contains(line, "first") {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(30 * time.Second): // the rest is held until release: any bound works
		t.Fatal("the first event did not reach the app while the upstream held the rest: the proxy buffers")
	}
}

// faulty wraps the sim: the first n requests are cut, either before any
// answer (the proxy may retry) or after the first bytes of a 200 (it must
// not).
func faulty(t *testing.T, upstream string, n int32, afterFirstByte bool) (*httptest.Server, *atomic.Int32) {
	u, _ := url.Parse(upstream)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	var hits atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if hits.Add(1) > n {
			rp.ServeHTTP(w, req)
			return
		}
		if afterFirstByte {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			fmt.Fprint(w, "data: {\"partial\":")
			w.(http.Flusher).Flush()
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(hs.Close)
	return hs, &hits
}

func TestRetryOnlyBeforeFirstByte(t *testing.T) {
	up := simtest.New(t, sim.Config{Tier: "none"})
	lim := pace.Limits{RPM: 1000, TPM: 1_000_000}

	// Dropped before any answer: retried, the app gets its 200.
	before, hits := faulty(t, up.URL, 1, false)
	r := newRig(t, before.URL+"/v1", rigOpts{limits: lim, cfg: func(c *Config) { c.Seed = 7 }})
	resp, body := post(t, context.Background(), r.URL, chatBody(5, false), nil)
	if resp == nil || resp.StatusCode != 200 || hits.Load() != 2 {
		t.Fatalf("dropped before the answer: app got %v %s after %d upstream attempts, want 200 after 2", resp, body, hits.Load())
	}

	// Cut after the first bytes of a 200: never retried; the app's
	// answer is cut too (no clean end).
	after, hits2 := faulty(t, up.URL, 1, true)
	r2 := newRig(t, after.URL+"/v1", rigOpts{limits: lim})
	req, _ := http.NewRequest("POST", r2.URL+"/chat/completions", strings.NewReader(chatBody(5, true)))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("headers should have reached the app: %v", err)
	}
	b, rerr := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if rerr == nil {
		t.Errorf("the app read a clean end of a cut stream: %q", b)
	}
	if !strings.Contains(string(b), "partial") {
		t.Errorf("the app did not get the bytes sent before the cut: %q", b)
	}
	time.Sleep(50 * time.Millisecond)
	if n := hits2.Load(); n != 1 {
		t.Errorf("%d upstream attempts after the first byte reached the app, want 1", n)
	}
	if n := simRequests(t, up, 1); n != 1 {
		t.Errorf("sim saw %d requests", n)
	}
}

// An app that goes away frees its reservation: with one in-flight slot,
// the next request still gets through.
func TestClientDisconnectFreesReservation(t *testing.T) {
	up := simtest.New(t, sim.Config{Tier: "none"})
	u, _ := url.Parse(up.URL)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	held, end := make(chan struct{}), make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("X-Test-Hang") != "" {
			close(held)
			select {
			case <-req.Context().Done():
			case <-end:
			}
			return
		}
		rp.ServeHTTP(w, req)
	}))
	defer hang.Close()
	defer close(end)
	r := newRig(t, hang.URL+"/v1", rigOpts{limits: pace.Limits{RPM: 1000, TPM: 1_000_000}, maxConc: 1, queueWait: 3 * time.Second,
		cfg: func(c *Config) {}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		post(t, ctx, r.URL, chatBody(5, false), map[string]string{"X-Test-Hang": "1"})
	}()
	<-held
	// A second request queues behind the held slot; it goes away too.
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() {
		defer close(done2)
		post(t, ctx2, r.URL, chatBody(5, false), nil)
	}()
	waitFor(t, func() bool { d := r.Srv.admit.Depth(); return d[Normal] == 1 })
	if m := scrape(t, r); m[`oairl_queue_depth{priority="normal"}`] != 1 || m["oairl_inflight"] != 1 {
		t.Errorf("while one waits and one is in flight: depth %v, inflight %v", m[`oairl_queue_depth{priority="normal"}`], m["oairl_inflight"])
	}
	cancel2()
	<-done2
	cancel()
	<-done
	waitFor(t, func() bool { n, _ := r.Local.InFlight(); return n == 0 })
	resp, body := post(t, context.Background(), r.URL, chatBody(5, false), nil)
	if resp == nil || resp.StatusCode != 200 {
		t.Fatalf("after the app went away: %v %s (its reservation was not freed)", resp, body)
	}
	m := scrape(t, r)
	if m[`oairl_requests_total{code="499",model="gpt-4o-mini"}`] != 2 || m["oairl_inflight"] != 0 || m[`oairl_queue_depth{priority="normal"}`] != 0 {
		t.Errorf("metrics after disconnects: 499=%v inflight=%v depth=%v", m[`oairl_requests_total{code="499",model="gpt-4o-mini"}`], m["oairl_inflight"], m[`oairl_queue_depth{priority="normal"}`])
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 30s")
}

// Metrics: values match what happened; charges match `count`'s.
func TestMetricValues(t *testing.T) {
	up := simtest.New(t, sim.Config{Tier: "none"})
	r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 500, TPM: 30000}})
	body := chatBody(20, false)
	codes := fire(t, r.URL, 5, 5, body)
	if codes[200] != 5 {
		t.Fatalf("codes %v", codes)
	}
	// A pass-through request is not counted as a model request.
	req, _ := http.NewRequest("GET", r.URL+"/models", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/models through the proxy: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	charge := tokens.NewCounter(tokens.Options{Registry: models.Default(), AssumeOutput: 1024}).Analyze("/v1/chat/completions", []byte(body)).Count.TPMCharge
	want := map[string]float64{
		`oairl_requests_total{code="200",model="gpt-4o-mini"}`: 5,
		`oairl_tokens_charged_total{model="gpt-4o-mini"}`:      float64(5 * charge),
		`oairl_limit{kind="rpm",model="gpt-4o-mini"}`:          500,
		`oairl_limit{kind="tpm",model="gpt-4o-mini"}`:          30000,
		`oairl_queue_depth{priority="high"}`:                   0,
		`oairl_inflight`:                                       0,
		`oairl_queue_wait_seconds_count`:                       5,
	}
	// A handler records its request (requests_total, inflight) after the
	// client has its answer: scrape until the values settle (30 s at most),
	// then compare the last scrape.
	var m map[string]float64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		m = scrape(t, r)
		settled := true
		for k, v := range want {
			settled = settled && m[k] == v
		}
		if settled || time.Now().After(deadline) {
			break
		}
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if n := simRequests(t, up, 6); n != 6 {
		t.Errorf("sim saw %d requests, want 6", n)
	}
	// /healthz
	resp, err := http.Get(r.HTTP.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

// scrape reads /metrics into "name{labels}" → value.
func scrape(t *testing.T, r *rig) map[string]float64 {
	t.Helper()
	resp, err := http.Get(r.HTTP.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		var v float64
		fmt.Sscan(l[i+1:], &v)
		out[l[:i]] = v
	}
	return out
}

// A proxy token, when set, is required (constant-time compare), and a
// bearer token is swapped for the injected key.
func TestProxyToken(t *testing.T) {
	up := simtest.New(t, sim.Config{Tier: "none"})
	r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 1000, TPM: 1_000_000}, cfg: func(c *Config) {
		c.ProxyToken, c.APIKey = "tok-123", testKey
	}})
	resp, _ := post(t, context.Background(), r.URL, chatBody(5, false), nil)
	if resp == nil || resp.StatusCode != 401 {
		t.Fatalf("without the token: %v", resp)
	}
	req, _ := http.NewRequest("POST", r.URL+"/chat/completions", strings.NewReader(chatBody(5, false)))
	req.Header.Set("Authorization", "Bearer tok-123")
	resp2, err := http.DefaultClient.Do(req)
	if err != nil || resp2.StatusCode != 200 {
		t.Fatalf("with the token as bearer: %v %v", resp2, err)
	}
	resp2.Body.Close()
	reqs := up.Sim.Requests()
	if len(reqs) != 1 {
		t.Fatalf("sim saw %d requests", len(reqs))
	}
}

// The metrics table is the one in README and --help, and names exactly
// the metrics served.
func TestMetricsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), MetricsTable) {
		t.Error("README.md does not contain proxy.MetricsTable verbatim")
	}
	m := newMetrics()
	m.requests.WithLabelValues("m", "200").Inc()
	m.rateLimited.WithLabelValues("m", "TPM").Inc()
	m.charged.WithLabelValues("m").Inc()
	m.limit.WithLabelValues("m", "rpm").Set(1)
	m.queueWait.Observe(1)
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, f := range fams {
		served = append(served, f.GetName())
		if !strings.Contains(MetricsTable, "| "+f.GetName()+" |") {
			t.Errorf("%s is served but not in MetricsTable", f.GetName())
		}
	}
	if len(served) != 7 {
		t.Errorf("served %v, want the 7 of MetricsTable", served)
	}
}

// One JSON log line per request: model, status, charge, attempts; never
// the key; --redact masks organization and project.
func TestLogLines(t *testing.T) {
	up := simtest.New(t, sim.Config{Tier: "none"})
	var buf strings.Builder
	var mu sync.Mutex
	r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 1000, TPM: 1_000_000}, cfg: func(c *Config) {
		c.Log, c.LogJSON, c.Redact = lockedWriter{&mu, &buf}, true, true
	}})
	resp, _ := post(t, context.Background(), r.URL, chatBody(5, false), map[string]string{
		"OpenAI-Organization": "org-abcdefghijklmnop", "OpenAI-Project": "proj_abcdefghijklmnop", "X-Oairl-Priority": "low"})
	if resp == nil || resp.StatusCode != 200 {
		t.Fatalf("%v", resp)
	}
	mu.Lock()
	line := buf.String()
	mu.Unlock()
	var l struct {
		Model, Outcome, Priority, Organization, Project string
		Status, Attempts                                int
		Charge                                          int64
	}
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		t.Fatalf("log %q: %v", line, err)
	}
	if l.Model != "gpt-4o-mini" || l.Status != 200 || l.Attempts != 1 || l.Charge <= 5 || l.Priority != "low" || l.Outcome != "ok" {
		t.Errorf("log line %+v", l)
	}
	if strings.Contains(line, "abcdefghijklmnop") || strings.Contains(line, testKey) {
		t.Errorf("log leaks an id or the key: %s", line)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// --priority-by-key picks the class from the end of the bearer key; the
// header wins; a bad header is a 400.
func TestPriorityByKeyAndHeaders(t *testing.T) {
	s := &Server{cfg: Config{PriorityByKey: map[string]Priority{"0000": Low}}}
	req := func(key, prio string) *http.Request {
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		if prio != "" {
			r.Header.Set("X-Oairl-Priority", prio)
		}
		return r
	}
	for _, tc := range []struct {
		key, hdr string
		want     Priority
		bad      bool
	}{
		{testKey, "", Low, false},
		{testKey, "high", High, false},
		{"sk-other-1234", "", Normal, false},
		{testKey, "urgent", Normal, true},
	} {
		p, err := s.priority(req(tc.key, tc.hdr))
		if p != tc.want || (err != nil) != tc.bad {
			t.Errorf("key …%s header %q: %v %v, want %v (error %v)", tc.key[len(tc.key)-4:], tc.hdr, p, err, tc.want, tc.bad)
		}
	}
}

// The app receives the upstream's x-ratelimit-* headers and request id.
func TestRateLimitHeadersReachTheApp(t *testing.T) {
	up := simtest.New(t, sim.Config{RPM: 500, TPM: 200_000})
	r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 500, TPM: 200_000}})
	resp, _ := post(t, context.Background(), r.URL, chatBody(5, false), nil)
	if resp == nil || resp.StatusCode != 200 {
		t.Fatalf("%v", resp)
	}
	for _, h := range []string{"x-ratelimit-limit-requests", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", "x-request-id"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("header %s did not reach the app", h)
		}
	}
	if got := resp.Header.Get("x-ratelimit-limit-requests"); got != "500" {
		t.Errorf("x-ratelimit-limit-requests %q", got)
	}
}

// simRequests waits until the sim has counted at least want requests (it
// counts one after writing its answer, so a client can be faster) and
// returns its count; it gives up after a while and returns what it has.
func simRequests(t *testing.T, up *simtest.Server, want int64) int64 {
	t.Helper()
	// The sim counts a request after answering it: wait (generously, the
	// machine may be loaded) until it has counted want.
	for deadline := time.Now().Add(30 * time.Second); up.Sim.Stats().Requests < want && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	return up.Sim.Stats().Requests
}

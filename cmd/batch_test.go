package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/batch"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// batchScale is the time scale shared by the sim and the client: a
// 2-minute batch takes 0.1 s.
const batchScale = 1200

type batchEnv struct {
	t     *testing.T
	srv   *simtest.Server
	env   map[string]string
	dir   string
	scale string
}

func newBatchEnv(t *testing.T, cfg sim.Config) *batchEnv {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = clock.Scaled(batchScale)
	}
	if cfg.Tier == "" {
		cfg.Tier = "none"
	}
	srv := simtest.New(t, cfg)
	dir := t.TempDir()
	return &batchEnv{t: t, srv: srv, dir: dir, scale: fmt.Sprint(batchScale), env: map[string]string{
		"OPENAI_API_KEY": "sk-test-batch-0000", "OPENAI_BASE_URL": srv.URL, "OAIRL_STATE_DIR": filepath.Join(dir, "state"),
	}}
}

// run runs `oairl ARGS...` and returns stdout, stderr and the exit code.
func (e *batchEnv) run(args ...string) (string, string, int) {
	e.t.Helper()
	f, out, errOut := newTestFactory(e.env)
	code := run(f, context.Background(), args)
	return out.String(), errOut.String(), code
}

// submit runs `batch submit ARGS...` with options changed by mod (crash
// hooks, lower shard limits: things no flag sets).
func (e *batchEnv) submit(mod func(*BatchSubmitOptions), args ...string) (string, string, int) {
	e.t.Helper()
	f, out, errOut := newTestFactory(e.env)
	var c *cobra.Command
	c = newBatchSubmitCmd(f, func(o *BatchSubmitOptions) error {
		if mod != nil {
			mod(o)
		}
		return batchSubmitRun(c, o)
	})
	c.SetArgs(args)
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintf(errOut, "oairl: %v\n", err)
	}
	return out.String(), errOut.String(), exitcode.Of(err)
}

func (e *batchEnv) path(name string) string { return filepath.Join(e.dir, name) }

// perShard lowers the shard size to n requests.
func perShard(n int) func(*BatchSubmitOptions) {
	return func(o *BatchSubmitOptions) { o.MaxRequests = n }
}

// writeRequests writes n tiny chat requests; tokens is roughly the
// enqueued-token charge of each (prompt + max_tokens).
func writeRequests(t *testing.T, path string, n int, model string, maxTokens int) {
	t.Helper()
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"q %d"}],"max_tokens":%d}}`+"\n", i, model, i, maxTokens)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkResults asserts the results file has exactly the ids r0..r(n-1),
// once each, in input order, and returns the lines.
func checkResults(t *testing.T, path string, n int) []resultLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var lines []resultLine
	for sc.Scan() {
		var m resultLine
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s line %d: %v", path, len(lines)+1, err)
		}
		if want := fmt.Sprintf("r%d", len(lines)); m.CustomID != want {
			t.Fatalf("%s line %d: custom_id %v, want %s", path, len(lines)+1, m.CustomID, want)
		}
		lines = append(lines, m)
	}
	if len(lines) != n {
		t.Fatalf("%s: %d lines, want %d", path, len(lines), n)
	}
	return lines
}

// resultLine is the part of a Batch output line the tests check.
type resultLine struct {
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int `json:"status_code"`
	} `json:"response"`
	Error *struct {
		Code string `json:"code"`
	} `json:"error"`
}

// batchesOfJob returns the sim's batches for job, by shard.
func batchesOfJob(s *sim.Server, job string) map[string][]sim.BatchInfo {
	out := map[string][]sim.BatchInfo{}
	for _, b := range s.Batches() {
		if b.Metadata[batch.MetaJob] == job {
			out[b.Metadata[batch.MetaShard]] = append(out[b.Metadata[batch.MetaShard]], b)
		}
	}
	return out
}

// Done-when: a 120,000-line file becomes 3+ shards under the line limit,
// all complete, and the results have every custom_id once, in input order.
func TestBatchE2E_120kLines(t *testing.T) {
	if testing.Short() {
		t.Skip("120,000 lines")
	}
	e := newBatchEnv(t, sim.Config{})
	in := e.path("big.jsonl")
	writeRequests(t, in, 120_000, "gpt-4o-mini", 5)
	out, errOut, code := e.run("batch", "submit", in, "--wait", "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	if !strings.HasPrefix(job, "job_") {
		t.Fatalf("stdout %q is not a job id", out)
	}
	by := batchesOfJob(e.srv.Sim, job)
	if len(by) < 3 {
		t.Fatalf("%d shards, want ≥ 3", len(by))
	}
	for k, bs := range by {
		if len(bs) != 1 || bs[0].Total > batch.MaxRequestsPerBatch || bs[0].Status != "completed" {
			t.Errorf("shard %s: %+v", k, bs)
		}
	}
	res := e.path("results.jsonl")
	_, errOut, code = e.run("batch", "results", job, "-o", res, "--failed", e.path("retry.jsonl"))
	if code != 0 {
		t.Fatalf("results exit %d\n%s", code, errOut)
	}
	checkResults(t, res, 120_000)
	if !strings.Contains(errOut, "120,000 requests: 120,000 succeeded, 0 failed") {
		t.Errorf("summary: %s", errOut)
	}
}

// Done-when: a file over the enqueued-token limit is queued shard by shard
// and all complete, without ever tripping the server's limit.
func TestBatchE2E_EnqueuedLimitQueuesShards(t *testing.T) {
	e := newBatchEnv(t, sim.Config{EnqueuedLimit: 3000})
	in := e.path("in.jsonl")
	writeRequests(t, in, 60, "gpt-4o", 100) // ~110 tokens each, ~6,600 in all
	out, errOut, code := e.run("batch", "submit", in, "--enqueued-limit", "3000", "--wait", "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	by := batchesOfJob(e.srv.Sim, job)
	if len(by) < 3 {
		t.Fatalf("%d shards, want ≥ 3 for ~6,600 tokens under a 3,000 limit", len(by))
	}
	for k, bs := range by {
		if len(bs) != 1 || bs[0].Status != "completed" || bs[0].EnqueuedTokens > 3000 {
			t.Errorf("shard %s: %+v", k, bs)
		}
	}
	if !strings.Contains(errOut, "waiting for room in the gpt-4o batch queue") {
		t.Errorf("no shard waited:\n%s", errOut)
	}
	if !strings.Contains(errOut, "submitted OK: ") || strings.Contains(errOut, "batchs") || strings.Contains(errOut, " 1 shards") {
		t.Errorf("no 'submitted OK', or a bad plural:\n%s", errOut)
	}
}

// B10 end to end: the client does not know the limit; the server fails the
// later batches with token_limit_exceeded; they are resubmitted after a
// backoff and all complete. Exit 0, nothing lost.
func TestBatchE2E_B10_ResubmitAfterTokenLimit(t *testing.T) {
	e := newBatchEnv(t, sim.Config{EnqueuedLimit: 3000})
	in := e.path("in.jsonl")
	writeRequests(t, in, 60, "gpt-4o", 100)
	// Shards of 20 requests (~2,200 tokens): only one fits the server's
	// queue, and the client, given no limit, creates all three at once.
	out, errOut, code := e.submit(perShard(20), in, "--wait", "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	failedTL, completed := 0, 0
	for _, bs := range batchesOfJob(e.srv.Sim, job) {
		for _, b := range bs {
			if b.Status == "failed" && len(b.ErrorCodes) > 0 && b.ErrorCodes[0] == "token_limit_exceeded" {
				failedTL++
			}
			if b.Status == "completed" {
				completed++
			}
		}
	}
	if failedTL == 0 || !strings.Contains(errOut, "token_limit_exceeded: enqueued-token limit for gpt-4o reached") {
		t.Errorf("expected token_limit_exceeded failures, got %d:\n%s", failedTL, errOut)
	}
	if completed != len(batchesOfJob(e.srv.Sim, job)) {
		t.Errorf("%d completed batches for %d shards", completed, len(batchesOfJob(e.srv.Sim, job)))
	}
	res := e.path("res.jsonl")
	if _, errOut, code := e.run("batch", "results", job, "-o", res); code != 0 {
		t.Fatalf("results exit %d: %s", code, errOut)
	}
}

var errInjected = errors.New("injected crash")

// Done-when: a crash after upload and one after create, then a rerun of
// the same submit, yield no duplicate batch (and no duplicate upload).
func TestBatchE2E_CrashThenRerun(t *testing.T) {
	for _, where := range []string{"upload", "create"} {
		t.Run(where, func(t *testing.T) {
			e := newBatchEnv(t, sim.Config{})
			in := e.path("in.jsonl")
			writeRequests(t, in, 30, "gpt-4o-mini", 5)
			crash := func(s *batch.Shard) error {
				if s.Index == 1 {
					return errInjected
				}
				return nil
			}
			mod := func(o *BatchSubmitOptions) {
				o.MaxRequests = 10
				if where == "create" {
					o.Hooks.AfterCreate = crash
				} else {
					o.Hooks.AfterUpload = crash
				}
			}
			args := []string{in, "--time-scale", e.scale, "--poll-interval", "2s", "--metadata", "team=test"}
			if _, errOut, code := e.submit(mod, args...); code == 0 || !strings.Contains(errOut, "injected crash") {
				t.Fatalf("first run: exit %d\n%s", code, errOut)
			}
			// The rerun: a new process, same command, no hooks.
			out, errOut, code := e.submit(perShard(10), args...)
			if code != 0 {
				t.Fatalf("rerun exit %d\n%s", code, errOut)
			}
			job := strings.TrimSpace(out)
			by := batchesOfJob(e.srv.Sim, job)
			if len(by) < 3 {
				t.Fatalf("%d shards", len(by))
			}
			for k, bs := range by {
				if len(bs) != 1 {
					t.Errorf("shard %s has %d batches", k, len(bs))
				}
				if bs[0].Metadata["team"] != "test" || bs[0].Metadata[batch.MetaInputSHA256] == "" {
					t.Errorf("metadata %v", bs[0].Metadata)
				}
			}
			uploads := 0
			for _, r := range e.srv.Sim.Requests() {
				if r.Method == "POST" && r.Path == "/v1/files" {
					uploads++
				}
			}
			if uploads != len(by) {
				t.Errorf("%d uploads for %d shards", uploads, len(by))
			}
			if !strings.Contains(errOut, "resuming "+job) || !strings.Contains(errOut, "reusing it") {
				t.Errorf("rerun output:\n%s", errOut)
			}
		})
	}
}

// Done-when: an expired shard's missing lines land in --failed; wait and
// results exit 7; the results have every custom_id once, in order.
func TestBatchE2E_ExpiredShard(t *testing.T) {
	e := newBatchEnv(t, sim.Config{BatchDuration: time.Hour})
	in := e.path("in.jsonl")
	writeRequests(t, in, 40, "gpt-4o-mini", 5)
	out, errOut, code := e.submit(perShard(20), in, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	by := batchesOfJob(e.srv.Sim, job)
	if len(by) < 2 {
		t.Fatalf("%d shards, want ≥ 2", len(by))
	}
	expired := by["0"][0]
	if err := e.srv.Sim.ExpireBatch(expired.ID); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = e.run("batch", "wait", job, "--time-scale", e.scale, "--poll-interval", "10s")
	if code != exitcode.Partial {
		t.Fatalf("wait exit %d, want 7\n%s", code, errOut)
	}
	if !strings.Contains(errOut, expired.ID+" expired") {
		t.Errorf("no status line for the expired batch:\n%s", errOut)
	}
	res, retry := e.path("results.jsonl"), e.path("retry.jsonl")
	_, errOut, code = e.run("batch", "results", job, "-o", res, "--failed", retry)
	if code != exitcode.Partial {
		t.Fatalf("results exit %d, want 7\n%s", code, errOut)
	}
	lines := checkResults(t, res, 40)
	expiredN := 0
	for _, l := range lines {
		if l.Error != nil && l.Error.Code == "batch_expired" {
			expiredN++
		}
	}
	rb, _ := os.ReadFile(retry)
	retryLines := strings.Split(strings.TrimSpace(string(rb)), "\n")
	if expiredN == 0 || len(retryLines) != expiredN {
		t.Fatalf("%d batch_expired lines, %d retry lines", expiredN, len(retryLines))
	}
	var first map[string]any
	json.Unmarshal([]byte(retryLines[0]), &first)
	if first["method"] != "POST" || first["body"] == nil {
		t.Errorf("retry line is not an input line: %s", retryLines[0])
	}
	if !strings.Contains(errOut, "batch_expired: ") {
		t.Errorf("summary lacks the code: %s", errOut)
	}
	// The retry file is itself submittable.
	if _, errOut, code := e.run("batch", "submit", retry, "--dry-run"); code != 0 {
		t.Errorf("retry file does not validate: %d\n%s", code, errOut)
	}
}

// B01/B03/B08: invalid input is refused with exit 3 and nothing reaches
// the server.
func TestBatchE2E_InvalidInputUploadsNothing(t *testing.T) {
	for _, name := range []string{"B01.jsonl", "B03.jsonl", "B08.jsonl"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("/work/shared/cases/inputs", name)
			if _, err := os.Stat(path); err != nil {
				t.Skip("case input missing")
			}
			e := newBatchEnv(t, sim.Config{})
			_, errOut, code := e.run("batch", "submit", path)
			if code != exitcode.Input {
				t.Fatalf("exit %d, want 3\n%s", code, errOut)
			}
			if n := len(e.srv.Sim.Requests()); n != 0 {
				t.Errorf("%d requests reached the server", n)
			}
			if !strings.Contains(errOut, name+":") || !strings.Contains(errOut, "nothing was uploaded") {
				t.Errorf("stderr:\n%s", errOut)
			}
		})
	}
}

// Case B03 end to end: count, batch submit and batch submit --dry-run
// (without --endpoint, where line 1's url is the batch endpoint, and with
// it) report the same five errors, exit 3, and upload nothing; the
// /v1/responses line 5 is reported against the batch endpoint, never
// split off into a batch of its own.
func TestCaseB03_CountAndSubmitAgree(t *testing.T) {
	path := "/work/shared/cases/inputs/B03.jsonl"
	if _, err := os.Stat(path); err != nil {
		t.Skip("case input missing")
	}
	want := []string{
		path + `:2: custom_id "u2": url "/chat/completions" must be "/v1/chat/completions" (did you mean it?) [url_missing_v1]`,
		path + `:3: custom_id "u3": url must be a path such as "/v1/chat/completions", not an absolute URL [url_absolute]`,
		path + `:4: custom_id "u4": method must be "POST" (got "GET") [method_not_post]`,
		path + `:5: custom_id "u5": url "/v1/responses" differs from the batch endpoint "/v1/chat/completions" — one endpoint per batch [endpoint_mismatch]`,
		path + `:6: custom_id "u6": body has "input" but no "messages"; that is a /v1/responses body, not a /v1/chat/completions one [body_endpoint_mismatch]`,
	}
	e := newBatchEnv(t, sim.Config{})
	for _, args := range [][]string{
		{"count", path},
		{"batch", "submit", path, "--dry-run"},
		{"batch", "submit", path},
		{"batch", "submit", path, "--endpoint", "/v1/chat/completions"},
		{"batch", "submit", path, "--endpoint", "/v1/chat/completions", "--dry-run"},
	} {
		_, errOut, code := e.run(args...)
		if code != exitcode.Input {
			t.Errorf("%v: exit %d, want 3\n%s", args, code, errOut)
		}
		var errs []string
		for _, l := range strings.Split(errOut, "\n") {
			if strings.HasPrefix(l, path+":") && !strings.Contains(l, ": warning: ") && !strings.Contains(l, ": note: ") {
				errs = append(errs, l)
			}
		}
		if strings.Join(errs, "\n") != strings.Join(want, "\n") {
			t.Errorf("%v: errors\n%s\nwant\n%s", args, strings.Join(errs, "\n"), strings.Join(want, "\n"))
		}
		if args[0] == "batch" && !strings.Contains(errOut, "5 of 6 requests are invalid; nothing was uploaded") {
			t.Errorf("%v: stderr\n%s", args, errOut)
		}
	}
	if n := len(e.srv.Sim.Requests()); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}

// B06: submit --dry-run shows 3 requests; --strict refuses.
func TestBatchE2E_B06(t *testing.T) {
	path := "/work/shared/cases/inputs/B06.jsonl"
	if _, err := os.Stat(path); err != nil {
		t.Skip("case input missing")
	}
	e := newBatchEnv(t, sim.Config{})
	out, errOut, code := e.run("batch", "submit", path, "--dry-run")
	if code != 0 || !strings.HasPrefix(out, "0\t/v1/chat/completions\tgpt-4o-mini\t3\t") {
		t.Errorf("dry run: exit %d out %q\n%s", code, out, errOut)
	}
	if _, _, code := e.run("batch", "submit", path, "--strict", "--dry-run"); code != exitcode.Input {
		t.Errorf("--strict exit %d, want 3", code)
	}
}

// B13/B14 offline joins through the command.
func TestBatchE2E_ResultsFromFile(t *testing.T) {
	dir := "/work/shared/cases/inputs"
	if _, err := os.Stat(filepath.Join(dir, "B14.input.jsonl")); err != nil {
		t.Skip("case inputs missing")
	}
	e := newBatchEnv(t, sim.Config{})
	res := e.path("res.jsonl")
	out, errOut, code := e.run("batch", "results", "--from-file", filepath.Join(dir, "B14.output.jsonl"), "--errors", filepath.Join(dir, "B14.error.jsonl"),
		"--input", filepath.Join(dir, "B14.input.jsonl"), "--order", "input", "-o", res, "--failed", e.path("retry.jsonl"), "--json")
	if code != exitcode.Partial {
		t.Fatalf("exit %d, want 7\n%s", code, errOut)
	}
	if !strings.Contains(errOut, `output has custom_id "q9" that is not in the input`) {
		t.Errorf("stderr:\n%s", errOut)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	for _, k := range []string{"requests", "succeeded", "failed", "failed_by_code", "unmatched", "usage", "prompt_tokens", "completion_tokens", "cost_usd"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary JSON lacks %q", k)
		}
	}
	if sum["succeeded"].(float64) != 3 || sum["unmatched"].(float64) != 1 {
		t.Errorf("summary %v", sum)
	}
	if sum["cost_usd"].(float64) <= 0 {
		t.Errorf("no cost at the Batch price: %v", sum["cost_usd"])
	}
}

// status, list and cancel against the sim.
func TestBatchE2E_StatusListCancel(t *testing.T) {
	e := newBatchEnv(t, sim.Config{BatchDuration: time.Hour})
	in := e.path("in.jsonl")
	writeRequests(t, in, 20, "gpt-4o-mini", 5)
	out, errOut, code := e.submit(perShard(10), in, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	out, _, code = e.run("batch", "status", job, "--json")
	if code != 0 {
		t.Fatal(code)
	}
	var doc batchStatusJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.ID != job || len(doc.Shards) < 2 {
		t.Fatalf("status json: %v %s", err, out)
	}
	var raw map[string]any
	json.Unmarshal([]byte(out), &raw)
	shard0 := raw["shards"].([]any)[0].(map[string]any)
	for _, k := range []string{"index", "batch_id", "status", "request_counts", "created_at", "expires_at", "errors"} {
		if _, ok := shard0[k]; !ok {
			t.Errorf("status JSON shard lacks %q", k)
		}
	}
	// TSV: RFC 3339 times, no header.
	out, _, _ = e.run("batch", "status", job)
	first := strings.Split(strings.Split(out, "\n")[0], "\t")
	if len(first) != 10 || first[0] != "0" {
		t.Fatalf("status TSV row: %q", first)
	}
	if _, err := time.Parse(time.RFC3339, first[7]); err != nil {
		t.Errorf("created_at %q is not RFC 3339", first[7])
	}
	// The same job by one of its batch ids.
	if out2, _, _ := e.run("batch", "status", doc.Shards[0].BatchID, "--offline"); !strings.Contains(out2, doc.Shards[0].BatchID) {
		t.Errorf("status by batch id: %q", out2)
	}
	out, _, code = e.run("batch", "list", "--limit", "5")
	if code != 0 || !strings.Contains(out, "\t"+job+"\t") {
		t.Errorf("list exit %d:\n%s", code, out)
	}
	out, errOut, code = e.run("batch", "cancel", job)
	if code != 0 || strings.Count(out, "batch_") == 0 {
		t.Fatalf("cancel exit %d out %q\n%s", code, out, errOut)
	}
	_, errOut, code = e.run("batch", "wait", job, "--time-scale", e.scale, "--poll-interval", "10s")
	if code != exitcode.Partial || !strings.Contains(errOut, "cancelled") {
		t.Errorf("wait after cancel: %d\n%s", code, errOut)
	}
	res := e.path("r.jsonl")
	if _, errOut, code := e.run("batch", "results", job, "-o", res, "--failed", e.path("f.jsonl")); code != exitcode.Partial || !strings.Contains(errOut, "batch_cancelled") {
		t.Errorf("results after cancel: %d\n%s", code, errOut)
	}
	checkResults(t, res, 20)
}

// --timeout: exit 8 while running.
func TestBatchE2E_WaitTimeout(t *testing.T) {
	e := newBatchEnv(t, sim.Config{BatchDuration: 10 * time.Hour})
	in := e.path("in.jsonl")
	writeRequests(t, in, 5, "gpt-4o-mini", 5)
	out, errOut, code := e.run("batch", "submit", in, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	_, errOut, code = e.run("batch", "wait", strings.TrimSpace(out), "--timeout", "1m", "--time-scale", e.scale, "--poll-interval", "10s")
	if code != exitcode.Pending {
		t.Errorf("exit %d, want 8\n%s", code, errOut)
	}
	// Defect: "0/1 batches terminal ()".
	if strings.Contains(errOut, "()") || !strings.Contains(errOut, "0/1 batch terminal;") {
		t.Errorf("timeout summary:\n%s", errOut)
	}
}

// Auth errors map to exit 4.
func TestBatchE2E_InvalidKey(t *testing.T) {
	e := newBatchEnv(t, sim.Config{InvalidKey: true})
	in := e.path("in.jsonl")
	writeRequests(t, in, 5, "gpt-4o-mini", 5)
	_, errOut, code := e.run("batch", "submit", in, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != exitcode.Auth {
		t.Errorf("exit %d, want 4\n%s", code, errOut)
	}
	if strings.Contains(errOut, "sk-test-batch-0000") {
		t.Errorf("key printed: %s", errOut)
	}
}

func TestBatchCmdFlags(t *testing.T) {
	cases := []struct {
		args []string
		ok   bool
	}{
		{[]string{"submit", "f.jsonl"}, true},
		{[]string{"submit", "f.jsonl", "--tier", "3", "--metadata", "a=b"}, true},
		{[]string{"submit", "f.jsonl", "--tier", "7"}, false},
		{[]string{"submit", "f.jsonl", "--tier", "1", "--enqueued-limit", "5"}, false},
		{[]string{"submit", "f.jsonl", "--metadata", "oairl_job=x"}, false},
		{[]string{"submit", "f.jsonl", "--metadata", "novalue"}, false},
		{[]string{"submit", "f.jsonl", "--timeout", "1m"}, false},
		{[]string{"results", "job_x"}, false},
		{[]string{"results", "--from-file", "o.jsonl", "-o", "r.jsonl"}, false},
		{[]string{"results", "--errors", "e.jsonl", "-o", "r.jsonl"}, false},
		{[]string{"results", "job_x", "-o", "r.jsonl", "--failed", "r.jsonl"}, false},
		{[]string{"status", "--format", "xml"}, false},
		{[]string{"list", "--limit", "0"}, false},
		{[]string{"cancel"}, false},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			f, _, _ := newTestFactory(map[string]string{})
			reached := false
			var sub *cobra.Command
			switch c.args[0] {
			case "submit":
				sub = newBatchSubmitCmd(f, func(*BatchSubmitOptions) error { reached = true; return nil })
			case "results":
				sub = newBatchResultsCmd(f, func(*BatchResultsOptions) error { reached = true; return nil })
			case "status":
				sub = newBatchStatusCmd(f, func(*BatchStatusOptions) error { reached = true; return nil })
			case "list":
				sub = newBatchListCmd(f, func(*BatchListOptions) error { reached = true; return nil })
			case "cancel":
				sub = newBatchCancelCmd(f, func(*BatchCancelOptions) error { reached = true; return nil })
			}
			sub.SetArgs(c.args[1:])
			sub.SilenceErrors, sub.SilenceUsage = true, true
			sub.SetOut(&bytes.Buffer{})
			sub.SetErr(&bytes.Buffer{})
			err := sub.Execute()
			if (err == nil) != c.ok || reached != c.ok {
				t.Errorf("err %v reached %v, want ok=%v", err, reached, c.ok)
			}
		})
	}
}

func TestBatchStateDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got := batchStateDir(env(map[string]string{"OAIRL_STATE_DIR": "/a", "XDG_STATE_HOME": "/b", "HOME": "/h"})); got != "/a" {
		t.Errorf("got %s", got)
	}
	if got := batchStateDir(env(map[string]string{"XDG_STATE_HOME": "/b", "HOME": "/h"})); got != "/b/oairl" {
		t.Errorf("got %s", got)
	}
	if got := batchStateDir(env(map[string]string{"HOME": "/h"})); got != "/h/.local/state/oairl" {
		t.Errorf("got %s", got)
	}
}

// On a terminal: wait draws a bar instead of status lines; status prints a
// table with a header.
func TestBatchE2E_TTY(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	in := e.path("in.jsonl")
	writeRequests(t, in, 10, "gpt-4o-mini", 5)
	out, errOut, code := e.submit(perShard(5), in, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	job := strings.TrimSpace(out)
	f, o, eo := newTestFactory(e.env)
	f.IOStreams.SetStderrTTY(true)
	f.IOStreams.SetStdoutTTY(true)
	if code := run(f, context.Background(), []string{"batch", "wait", job, "--time-scale", e.scale, "--poll-interval", "2s"}); code != 0 {
		t.Fatalf("wait %d: %s", code, eo)
	}
	// The bar replaces the status lines ("batch_x in_progress 1/5"); it
	// names the phase itself ("2 in_progress").
	if regexp.MustCompile(`batch_\w+ in_progress \d+/\d+`).MatchString(eo.String()) || !strings.Contains(eo.String(), "2/2 batches terminal (2 completed)") {
		t.Errorf("tty stderr:\n%s", eo)
	}
	if code := run(f, context.Background(), []string{"batch", "status", job, "--offline"}); code != 0 {
		t.Fatal(code)
	}
	if !strings.Contains(o.String(), "SHARD") || !strings.Contains(o.String(), "STATUS") || !strings.Contains(o.String(), "completed") {
		t.Errorf("tty status:\n%s", o)
	}
}

// B06 for real: the file that reaches the server is the normalised copy
// (no BOM, no CR, no blank lines) with exactly the 3 requests.
func TestBatchE2E_B06_UploadsNormalisedCopy(t *testing.T) {
	path := "/work/shared/cases/inputs/B06.jsonl"
	if _, err := os.Stat(path); err != nil {
		t.Skip("case input missing")
	}
	e := newBatchEnv(t, sim.Config{})
	out, errOut, code := e.run("batch", "submit", path, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	out, _, _ = e.run("batch", "status", strings.TrimSpace(out), "--json", "--offline")
	var doc batchStatusJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Shards) != 1 {
		t.Fatalf("%v %s", err, out)
	}
	b, ok := e.srv.Sim.FileContent(doc.Shards[0].FileID)
	if !ok {
		t.Fatalf("file %s not on the server", doc.Shards[0].FileID)
	}
	if bytes.HasPrefix(b, []byte("\xEF\xBB\xBF")) || bytes.ContainsAny(b, "\r") || bytes.Contains(b, []byte("\n\n")) || bytes.Count(b, []byte("\n")) != 3 {
		t.Errorf("uploaded file is not the normalised copy: %q", b)
	}
}

// --skip-invalid: the invalid lines go to the file, the rest is submitted.
func TestBatchE2E_SkipInvalid(t *testing.T) {
	path := "/work/shared/cases/inputs/B01.jsonl"
	if _, err := os.Stat(path); err != nil {
		t.Skip("case input missing")
	}
	e := newBatchEnv(t, sim.Config{})
	rej := e.path("rejected.jsonl")
	out, errOut, code := e.run("batch", "submit", path, "--skip-invalid", rej, "--wait", "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	b, _ := os.ReadFile(rej)
	if bytes.Count(b, []byte("\n")) != 3 || !strings.Contains(errOut, "skipped 3 invalid lines") {
		t.Errorf("rejected %q\n%s", b, errOut)
	}
	by := batchesOfJob(e.srv.Sim, strings.TrimSpace(out))
	if len(by) != 1 || by["0"][0].Total != 2 {
		t.Errorf("batches %+v", by)
	}
}

// runIn runs `oairl ARGS...` with stdin.
func (e *batchEnv) runIn(stdin string, args ...string) (string, string, int) {
	e.t.Helper()
	f, out, errOut := newTestFactory(e.env)
	f.IOStreams.In = io.NopCloser(strings.NewReader(stdin))
	code := run(f, context.Background(), args)
	return out.String(), errOut.String(), code
}

func countBatches(s *sim.Server, job string) int {
	n := 0
	for _, bs := range batchesOfJob(s, job) {
		n += len(bs)
	}
	return n
}

// Defect 1: after token_limit_exceeded the advice "resubmit with
// --enqueued-limit 1000" led to a rerun that resumed the old one-shard job
// and created another doomed batch, forever. A shard over the limit is
// never created again, and the advised rerun re-splits the job.
func TestBatchE2E_EnqueuedLimitTrap(t *testing.T) {
	e := newBatchEnv(t, sim.Config{EnqueuedLimit: 1000})
	in := e.path("q.jsonl")
	writeRequests(t, in, 30, "gpt-4o-mini", 90) // ~2,900 tokens
	args := []string{"batch", "submit", in, "--time-scale", e.scale, "--poll-interval", "2s"}
	out, errOut, code := e.run(append(args, "--tier", "1")...)
	if code != exitcode.RateLimited || !strings.Contains(errOut, "--enqueued-limit 1000") || !strings.Contains(errOut, "re-split") {
		t.Fatalf("first submit: exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	if job == "" {
		jobs, _ := batch.ListJobs(e.env["OAIRL_STATE_DIR"])
		job = jobs[0].ID
	}
	if n := countBatches(e.srv.Sim, job); n != 1 {
		t.Fatalf("%d batches after the first submit, want 1", n)
	}
	// The same flags again: refused locally, no second doomed batch.
	_, errOut, code = e.run(append(args, "--tier", "1")...)
	if code != exitcode.RateLimited || countBatches(e.srv.Sim, job) != 1 {
		t.Fatalf("rerun --tier 1: exit %d, %d batches\n%s", code, countBatches(e.srv.Sim, job), errOut)
	}
	// The advice: re-split under 1,000 and run to completion.
	out, errOut, code = e.run(append(args, "--enqueued-limit", "1000", "--wait")...)
	if code != 0 || !strings.Contains(errOut, "re-split") {
		t.Fatalf("rerun --enqueued-limit 1000: exit %d\n%s", code, errOut)
	}
	if strings.TrimSpace(out) != job {
		t.Errorf("job %q, want %s", out, job)
	}
	for k, bs := range batchesOfJob(e.srv.Sim, job) {
		for _, b := range bs {
			if b.Status == "completed" && b.EnqueuedTokens > 1000 {
				t.Errorf("shard %s: %d tokens over 1,000", k, b.EnqueuedTokens)
			}
		}
	}
	res := e.path("r.jsonl")
	if _, errOut, code := e.run("batch", "results", job, "-o", res); code != 0 {
		t.Fatalf("results %d\n%s", code, errOut)
	}
	checkResults(t, res, 30)
}

// Defect 2: the same input against a new server (a restarted sim) silently
// "resumed" the finished job of the old one; its batch ids then resolved to
// nothing (404) or to unrelated batches. A finished job on rerun is said
// so; a 404 on a known file is explained.
func TestBatchE2E_OtherServerAndFinishedJob(t *testing.T) {
	a := newBatchEnv(t, sim.Config{})
	in := a.path("in.jsonl")
	writeRequests(t, in, 4, "gpt-4o-mini", 5)
	out, errOut, code := a.run("batch", "submit", in, "--wait", "--time-scale", a.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit: %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	// Rerun on the same server: finished, nothing submitted.
	out, errOut, code = a.run("batch", "submit", in, "--time-scale", a.scale, "--poll-interval", "2s")
	if code != 0 || strings.TrimSpace(out) != job || !strings.Contains(errOut, "job "+job+" already completed at") || !strings.Contains(errOut, "pass --new") {
		t.Errorf("rerun of a finished job: exit %d out %q\n%s", code, out, errOut)
	}
	if n := countBatches(a.srv.Sim, job); n != 1 {
		t.Errorf("%d batches after the rerun, want 1", n)
	}
	// --new submits again.
	out, errOut, code = a.run("batch", "submit", in, "--new", "--wait", "--time-scale", a.scale, "--poll-interval", "2s")
	if code != 0 || strings.TrimSpace(out) != job+"-2" {
		t.Errorf("--new: exit %d out %q\n%s", code, out, errOut)
	}

	// A new server, the same state dir: a new job, not a resume.
	b := newBatchEnv(t, sim.Config{})
	b.env["OAIRL_STATE_DIR"] = a.env["OAIRL_STATE_DIR"]
	out, errOut, code = b.run("batch", "submit", in, "--wait", "--time-scale", b.scale, "--poll-interval", "2s")
	if code != 0 || strings.TrimSpace(out) != job+"-3" || !strings.Contains(errOut, "not resuming "+job+"-2 (it was submitted to "+a.srv.URL) {
		t.Fatalf("other server: exit %d out %q\n%s", code, out, errOut)
	}
	if n := countBatches(b.srv.Sim, job+"-3"); n != 1 {
		t.Errorf("%d batches on the new server, want 1", n)
	}
	// The old job's ids mean nothing on the new server: refused.
	_, errOut, code = b.run("batch", "results", job, "-o", b.path("r.jsonl"))
	if code != exitcode.Failure || !strings.Contains(errOut, "was submitted to "+a.srv.URL) {
		t.Errorf("results of the old server's job: exit %d\n%s", code, errOut)
	}
	// A known file the server no longer has.
	j, err := batch.FindJob(b.env["OAIRL_STATE_DIR"], "", job+"-3")
	if err != nil {
		t.Fatal(err)
	}
	j.Shards[0].OutputFileID = "file-gone"
	if err := j.Save(time.Now()); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = b.run("batch", "results", job+"-3", "-o", b.path("r.jsonl"))
	if code != exitcode.Failure || !strings.Contains(errOut, "the server no longer has file file-gone") {
		t.Errorf("results with a missing file: exit %d\n%s", code, errOut)
	}
}

// Defect 3: submit without a key wrote a job state, printed "created job"
// and then failed with exit 1. Now: exit 4, nothing written.
func TestBatchE2E_NoKeyCreatesNothing(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	delete(e.env, "OPENAI_API_KEY")
	in := e.path("in.jsonl")
	writeRequests(t, in, 3, "gpt-4o-mini", 5)
	_, errOut, code := e.run("batch", "submit", in)
	if code != exitcode.Auth || strings.Contains(errOut, "created") || !strings.Contains(errOut, "no API key") {
		t.Errorf("exit %d, want 4\n%s", code, errOut)
	}
	if _, err := os.Stat(e.env["OAIRL_STATE_DIR"]); !os.IsNotExist(err) {
		t.Errorf("state written without a key: %v", err)
	}
	for _, args := range [][]string{{"batch", "list"}, {"batch", "wait", "batch_x"}, {"batch", "status", "batch_x"}} {
		if _, errOut, code := e.run(args...); code != exitcode.Auth {
			t.Errorf("%v: exit %d, want 4\n%s", args, code, errOut)
		}
	}
	// --dry-run needs no key.
	if _, errOut, code := e.run("batch", "submit", in, "--dry-run"); code != 0 {
		t.Errorf("--dry-run without a key: %d\n%s", code, errOut)
	}
}

// Defect 5: a cancelled job resubmitted reported "submitted OK: 3 batches
// (batch_x  )" with blank ids; wait counted 10 failed where results
// counted 30.
func TestBatchE2E_CancelledJob(t *testing.T) {
	e := newBatchEnv(t, sim.Config{BatchDuration: time.Hour})
	in := e.path("in.jsonl")
	writeRequests(t, in, 30, "gpt-4o-mini", 5)
	args := []string{in, "--time-scale", e.scale, "--poll-interval", "2s"}
	_, errOut, code := e.submit(func(o *BatchSubmitOptions) {
		o.MaxRequests = 10
		o.Hooks.AfterUpload = func(s *batch.Shard) error {
			if s.Index == 1 {
				return errInjected // like Ctrl-C after shard 0 was created
			}
			return nil
		}
	}, args...)
	if code == 0 {
		t.Fatalf("injected crash: exit 0\n%s", errOut)
	}
	jobs, _ := batch.ListJobs(e.env["OAIRL_STATE_DIR"])
	job := jobs[0].ID
	out, errOut, code := e.run("batch", "cancel", job)
	if code != 0 || !strings.Contains(errOut, "asked to cancel 1 batch (") || !strings.Contains(errOut, "2 never submitted") || strings.Count(out, "batch_") != 1 {
		t.Fatalf("cancel: exit %d out %q\n%s", code, out, errOut)
	}
	_, errOut, code = e.run("batch", "wait", job, "--time-scale", e.scale, "--poll-interval", "10s")
	if code != exitcode.Partial || !strings.Contains(errOut, "30 requests: 0 completed, 30 failed") {
		t.Errorf("wait: exit %d\n%s", code, errOut)
	}
	out, _, _ = e.run("batch", "status", job)
	failed := 0
	for _, row := range strings.Split(strings.TrimSpace(out), "\n") {
		var n int
		fmt.Sscan(strings.Split(row, "\t")[5], &n)
		failed += n
	}
	if failed != 30 {
		t.Errorf("status failed column sums to %d, want 30:\n%s", failed, out)
	}
	if _, errOut, code := e.run("batch", "results", job, "-o", e.path("r.jsonl")); code != exitcode.Partial || !strings.Contains(errOut, "30 requests: 0 succeeded, 30 failed") {
		t.Errorf("results: exit %d\n%s", code, errOut)
	}
	before := countBatches(e.srv.Sim, job)
	out, errOut, code = e.run(append([]string{"batch", "submit"}, args...)...)
	if code != exitcode.Failure || !strings.Contains(errOut, "was cancelled") || strings.Contains(errOut, "submitted OK") || countBatches(e.srv.Sim, job) != before {
		t.Errorf("submit of a cancelled job: exit %d out %q\n%s", code, out, errOut)
	}
}

// Defect 7: `cat f | oairl batch submit -` failed "no standard input".
// Defect 8 / issue 14 §4 / case B03: a file mixing chat and embeddings
// lines is refused (exit 3, nothing uploaded), never split by endpoint.
func TestBatchE2E_StdinAndMixedEndpoints(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	var chat, mixed strings.Builder
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&chat, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":5}}`+"\n", i)
		if i%2 == 0 {
			fmt.Fprintf(&mixed, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":5}}`+"\n", i)
		} else {
			fmt.Fprintf(&mixed, `{"custom_id":"r%d","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":"x"}}`+"\n", i)
		}
	}
	for _, args := range [][]string{{"batch", "submit", "-"}, {"batch", "submit", "-", "--endpoint", "/v1/chat/completions"}} {
		out, errOut, code := e.runIn(mixed.String(), args...)
		if code != exitcode.Input || strings.TrimSpace(out) != "" || strings.Count(errOut, "[endpoint_mismatch]") != 3 ||
			!strings.Contains(errOut, `-:6: custom_id "r5": url "/v1/embeddings" differs from the batch endpoint "/v1/chat/completions" — one endpoint per batch [endpoint_mismatch]`) {
			t.Errorf("%v (mixed): exit %d out %q\n%s", args, code, out, errOut)
		}
	}
	if n := len(e.srv.Sim.Requests()); n != 0 {
		t.Fatalf("a mixed file sent %d requests to the server", n)
	}
	out, errOut, code := e.runIn(chat.String(), "batch", "submit", "-", "--wait", "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit -: exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	if n := countBatches(e.srv.Sim, job); n != 1 {
		t.Errorf("%d batches, want 1", n)
	}
	res := e.path("r.jsonl")
	out, errOut, code = e.run("batch", "results", job, "-o", res, "--json")
	if code != 0 {
		t.Fatalf("results: %d\n%s", code, errOut)
	}
	checkResults(t, res, 6)
	// Defect 9: cost printed as 0.0000042000000000000004.
	if strings.Contains(out, "00000000") {
		t.Errorf("results --json cost has float noise:\n%s", out)
	}
}

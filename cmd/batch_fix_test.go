package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/batch"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/sim"
)

// Issue 14 §1: the base URL a batch subcommand uses comes from --base-url,
// else OPENAI_BASE_URL, else the default, for every subcommand: it used to
// be read when the command was built, before the flags were parsed, so
// --base-url was ignored (the job recorded the default URL).
func TestBatchBaseURLPrecedence(t *testing.T) {
	subs := map[string][]string{
		"submit": {"f.jsonl"}, "status": nil, "wait": nil, "results": {"job_x", "-o", "r.jsonl"}, "cancel": {"job_x"}, "list": nil,
	}
	cases := []struct {
		name, flag, env, want string
	}{
		{"flag", "http://flag/v1/", "http://env/v1", "http://flag/v1"},
		{"env", "", "http://env/v1", "http://env/v1"},
		{"default", "", "", DefaultBaseURL},
	}
	for sub, args := range subs {
		for _, c := range cases {
			t.Run(sub+"/"+c.name, func(t *testing.T) {
				env := map[string]string{}
				if c.env != "" {
					env["OPENAI_BASE_URL"] = c.env
				}
				f, _, _ := newTestFactory(env)
				got := "(not reached)"
				capture := func(d *batchDeps) error { got = d.baseURL(); return nil }
				root := NewRootCmd(f)
				// Replace the batch command by one whose subcommands
				// capture their options.
				for _, cc := range root.Commands() {
					if cc.Name() == "batch" {
						root.RemoveCommand(cc)
					}
				}
				b := &cobra.Command{Use: "batch"}
				b.AddCommand(
					newBatchSubmitCmd(f, func(o *BatchSubmitOptions) error { return capture(&o.batchDeps) }),
					newBatchStatusCmd(f, func(o *BatchStatusOptions) error { return capture(&o.batchDeps) }),
					newBatchWaitCmd(f, func(o *BatchWaitOptions) error { return capture(&o.batchDeps) }),
					newBatchResultsCmd(f, func(o *BatchResultsOptions) error { return capture(&o.batchDeps) }),
					newBatchCancelCmd(f, func(o *BatchCancelOptions) error { return capture(&o.batchDeps) }),
					newBatchListCmd(f, func(o *BatchListOptions) error { return capture(&o.batchDeps) }),
				)
				root.AddCommand(b)
				argv := []string{"batch", sub}
				argv = append(argv, args...)
				if c.flag != "" {
					argv = append(argv, "--base-url", c.flag)
				}
				root.SetArgs(argv)
				root.SetOut(&bytes.Buffer{})
				root.SetErr(&bytes.Buffer{})
				if err := root.Execute(); err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Errorf("base URL %q, want %q", got, c.want)
				}
			})
		}
	}
}

// Issue 14 §1 end to end: a job submitted with --base-url (no
// OPENAI_BASE_URL) records that URL, and a later submit of the same file to
// another --base-url starts a new job there instead of calling the first
// one "already completed".
func TestBatchE2E_BaseURLFlagRecorded(t *testing.T) {
	a := newBatchEnv(t, sim.Config{})
	delete(a.env, "OPENAI_BASE_URL")
	in := a.path("in.jsonl")
	writeRequests(t, in, 3, "gpt-4o-mini", 5)
	out, errOut, code := a.run("batch", "submit", in, "--base-url", a.srv.URL, "--wait", "--time-scale", a.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit: exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	j, err := batch.FindJob(a.env["OAIRL_STATE_DIR"], "", job)
	if err != nil {
		t.Fatal(err)
	}
	if j.BaseURL != a.srv.URL {
		t.Fatalf("job recorded base URL %q, want the --base-url %q", j.BaseURL, a.srv.URL)
	}
	b := newBatchEnv(t, sim.Config{})
	delete(b.env, "OPENAI_BASE_URL")
	b.env["OAIRL_STATE_DIR"] = a.env["OAIRL_STATE_DIR"]
	out, errOut, code = b.run("batch", "submit", in, "--base-url", b.srv.URL, "--wait", "--time-scale", b.scale, "--poll-interval", "2s")
	if code != 0 || strings.Contains(errOut, "already completed") || strings.TrimSpace(out) != job+"-2" {
		t.Fatalf("submit to another --base-url: exit %d out %q\n%s", code, out, errOut)
	}
	if n := countBatches(b.srv.Sim, job+"-2"); n != 1 {
		t.Errorf("%d batches on the second server, want 1", n)
	}
	// The first job, asked about with the second URL, is refused.
	_, errOut, code = b.run("batch", "status", job, "--base-url", b.srv.URL)
	if code == 0 || !strings.Contains(errOut, "was submitted to "+a.srv.URL) {
		t.Errorf("status of the first job on the second server: exit %d\n%s", code, errOut)
	}
}

// onePerShard asserts the sim holds exactly one batch for each of the
// job's shards 0..shards-1.
func onePerShard(t *testing.T, s *sim.Server, job string, shards int) {
	t.Helper()
	by := batchesOfJob(s, job)
	if len(by) != shards {
		t.Errorf("batches for %d shards, want %d: %v", len(by), shards, by)
	}
	for k, bs := range by {
		if len(bs) != 1 {
			t.Errorf("shard %s: %d batches, want exactly 1 (duplicates are billed twice)", k, len(bs))
		}
	}
}

// Issue 14 §0: two `batch submit` of the same file at once created
// duplicate batches (8-11 batches for 3 shards). Both submits are held
// right after their first upload until the other arrives (or 500 ms pass),
// so without a lock both create shard 0's batch; with it, one waits and
// then resumes the job the other created.
func TestBatchE2E_ConcurrentSubmitsCreateOneBatchPerShard(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	in := e.path("in.jsonl")
	writeRequests(t, in, 30, "gpt-4o-mini", 5)
	var arrived atomic.Int32
	barrier := make(chan struct{})
	var once sync.Once
	hold := func(o *BatchSubmitOptions) {
		o.MaxRequests = 10
		o.Hooks.AfterUpload = func(*batch.Shard) error {
			if arrived.Add(1) == 2 {
				once.Do(func() { close(barrier) })
			}
			select {
			case <-barrier:
			case <-time.After(500 * time.Millisecond):
			}
			return nil
		}
	}
	type result struct {
		out, errOut string
		code        int
	}
	res := make([]result, 2)
	var wg sync.WaitGroup
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, errOut, code := e.submit(hold, in, "--time-scale", e.scale, "--poll-interval", "2s")
			res[i] = result{out, errOut, code}
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r.code != 0 {
			t.Fatalf("submit %d: exit %d\n%s", i, r.code, r.errOut)
		}
	}
	job := strings.TrimSpace(res[0].out)
	if strings.TrimSpace(res[1].out) != job {
		t.Fatalf("two jobs for one input: %q and %q", res[0].out, res[1].out)
	}
	onePerShard(t, e.srv.Sim, job, 3)
}

// Issue 14 §0: `batch submit` beside the documented `batch wait JOB`
// duplicated batches too: both saw the same pending shards.
func TestBatchE2E_SubmitBesideWaitCreatesOneBatchPerShard(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	in := e.path("in.jsonl")
	writeRequests(t, in, 60, "gpt-4o-mini", 5)
	args := []string{in, "--time-scale", e.scale, "--poll-interval", "2s"}
	// A first submit stops after creating shard 0's batch (like Ctrl-C).
	_, errOut, code := e.submit(func(o *BatchSubmitOptions) {
		o.MaxRequests = 10
		o.Hooks.AfterUpload = func(s *batch.Shard) error {
			if s.Index == 1 {
				return errInjected
			}
			return nil
		}
	}, args...)
	if code == 0 {
		t.Fatalf("injected crash: exit 0\n%s", errOut)
	}
	jobs, _ := batch.ListJobs(e.env["OAIRL_STATE_DIR"])
	job := jobs[0].ID
	var wg sync.WaitGroup
	var waitCode, submitCode int
	var waitErr, submitErr string
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, waitErr, waitCode = e.run("batch", "wait", job, "--time-scale", e.scale, "--poll-interval", "2s")
	}()
	go func() {
		defer wg.Done()
		_, submitErr, submitCode = e.submit(perShard(10), args...)
	}()
	wg.Wait()
	if waitCode != 0 || submitCode != 0 {
		t.Fatalf("wait exit %d, submit exit %d\nwait: %s\nsubmit: %s", waitCode, submitCode, waitErr, submitErr)
	}
	onePerShard(t, e.srv.Sim, job, 6)
}

// Issue 14 §4 / case B03: count called a two-endpoint file an error while
// batch submit --dry-run split it silently with exit 0. Both now refuse it
// with the same endpoint_mismatch error on the same line (the batch
// endpoint is the first line's url), batch submit uploads nothing, and
// run, which sends each line to its own url, accepts the file without a
// word about endpoints.
func TestCountAndBatchSubmitAgreeOnTwoEndpoints(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	in := e.path("mixed.jsonl")
	content := `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":5}}
{"custom_id":"b","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":"x"}}
`
	if err := os.WriteFile(in, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	want := in + `:2: custom_id "b": url "/v1/embeddings" differs from the batch endpoint "/v1/chat/completions" — one endpoint per batch [endpoint_mismatch]`
	for _, args := range [][]string{
		{"count", in},
		{"batch", "submit", in, "--dry-run"},
		{"batch", "submit", in},
		{"batch", "submit", in, "--endpoint", "/v1/chat/completions"},
	} {
		out, errOut, code := e.run(args...)
		if code != exitcode.Input {
			t.Errorf("%v: exit %d, want 3\n%s", args, code, errOut)
		}
		if !strings.Contains(errOut, want+"\n") {
			t.Errorf("%v: stderr lacks %q:\n%s", args, want, errOut)
		}
		if strings.Contains(errOut, ":1: custom_id \"a\": url") || strings.Contains(errOut, "several_endpoints") {
			t.Errorf("%v: line 1 or the file blamed:\n%s", args, errOut)
		}
		if args[0] == "batch" && (strings.TrimSpace(out) != "" || !strings.Contains(errOut, "nothing was uploaded")) {
			t.Errorf("%v: stdout %q\n%s", args, out, errOut)
		}
	}
	if n := len(e.srv.Sim.Requests()); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
	// --endpoint /v1/embeddings holds line 1 to it instead.
	_, errOut, code := e.run("batch", "submit", in, "--dry-run", "--endpoint", "/v1/embeddings")
	if code != exitcode.Input || !strings.Contains(errOut, in+`:1: custom_id "a": url "/v1/chat/completions" differs from the batch endpoint "/v1/embeddings" — one endpoint per batch [endpoint_mismatch]`) ||
		strings.Contains(errOut, ":2: custom_id \"b\": url") {
		t.Errorf("--endpoint /v1/embeddings: exit %d\n%s", code, errOut)
	}
	// run sends each line to its own url: both succeed, nothing is said
	// about endpoints.
	outPath := e.path("out.jsonl")
	out, errOut, code := e.run("run", in, "-o", outPath)
	if code != exitcode.OK || strings.Contains(errOut, "endpoint") {
		t.Errorf("run: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	paths := map[string]int{}
	for _, r := range e.srv.Sim.Requests() {
		paths[r.Path]++
	}
	if paths["/v1/chat/completions"] != 1 || paths["/v1/embeddings"] != 1 {
		t.Errorf("run sent %v, want one request to each endpoint", paths)
	}
	if data, err := os.ReadFile(outPath); err != nil || strings.Count(string(data), "\n") != 2 {
		t.Errorf("run results (%v):\n%s", err, data)
	}
}

// Issue 14 §4: for batch submit an unknown model is an error (exit 3, did
// you mean, nothing uploaded) unless --allow-unknown-model; count keeps it
// a warning. A model with surrounding whitespace is an error everywhere.
func TestBatchSubmitUnknownModel(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	in := e.path("typo.jsonl")
	writeRequests(t, in, 2, "gpt-4o-mnii", 5)
	_, errOut, code := e.run("batch", "submit", in)
	if code != 3 || !strings.Contains(errOut, "did you mean gpt-4o-mini?") || !strings.Contains(errOut, "--allow-unknown-model") || !strings.Contains(errOut, "[unknown_model]") {
		t.Errorf("submit: exit %d, want 3\n%s", code, errOut)
	}
	if n := len(e.srv.Sim.Batches()); n != 0 {
		t.Errorf("%d batches created for a refused file", n)
	}
	if _, errOut, code := e.run("batch", "submit", in, "--allow-unknown-model", "--dry-run"); code != 0 || !strings.Contains(errOut, "warning:") {
		t.Errorf("--allow-unknown-model: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := e.run("count", in); code != 0 || !strings.Contains(errOut, "warning:") || !strings.Contains(errOut, "did you mean gpt-4o-mini?") {
		t.Errorf("count: exit %d, want 0 (a warning)\n%s", code, errOut)
	}
	ws := e.path("space.jsonl")
	writeRequests(t, ws, 1, "gpt-4o-mini ", 5)
	for _, args := range [][]string{{"count", ws}, {"batch", "submit", ws, "--dry-run", "--allow-unknown-model"}} {
		if _, errOut, code := e.run(args...); code != 3 || !strings.Contains(errOut, "[model_whitespace]") || !strings.Contains(errOut, `custom_id "r0"`) {
			t.Errorf("%v: exit %d, want 3\n%s", args, code, errOut)
		}
	}
}

// Issue 14 §4: a lone UTF-16 surrogate escape is an error with the line and
// custom_id, in count and batch submit.
func TestLoneSurrogateRejected(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	in := e.path("in.jsonl")
	content := `{"custom_id":"ok","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\ud83d\ude00"}],"max_tokens":5}}
{"custom_id":"cut-emoji","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi \ud83d"}],"max_tokens":5}}
`
	if err := os.WriteFile(in, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"count", in}, {"batch", "submit", in}} {
		_, errOut, code := e.run(args...)
		if code != 3 || !strings.Contains(errOut, in+`:2: custom_id "cut-emoji": `) || !strings.Contains(errOut, "[lone_surrogate]") {
			t.Errorf("%v: exit %d, want 3\n%s", args, code, errOut)
		}
	}
	if n := len(e.srv.Sim.Batches()); n != 0 {
		t.Errorf("%d batches created", n)
	}
}

// Issue 14 §5: the upload's multipart filename was the full local path of
// a temporary hard link; the API stores the name as sent, so crash
// recovery by name could never match on the real API. The sim now keeps
// the name as sent, and every upload is named oairl-JOB-shard-NNN.jsonl.
func TestBatchUploadSendsBaseName(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	in := e.path("in.jsonl")
	writeRequests(t, in, 20, "gpt-4o-mini", 5)
	out, errOut, code := e.submit(perShard(10), in, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit: exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	req, _ := http.NewRequest("GET", e.srv.URL+"/files", nil)
	req.Header.Set("Authorization", "Bearer "+e.env["OPENAI_API_KEY"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			Filename string `json:"filename"`
			Purpose  string `json:"purpose"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"oairl-" + job + "-shard-000.jsonl": true, "oairl-" + job + "-shard-001.jsonl": true}
	for _, f := range list.Data {
		if f.Purpose != "batch" {
			continue
		}
		if !want[f.Filename] {
			t.Errorf("uploaded as %q, want one of %v", f.Filename, want)
		}
		delete(want, f.Filename)
	}
	if len(want) > 0 {
		t.Errorf("no upload named %v", want)
	}
}

// Issue 14 §5: batch status shows how long a batch has been in its status
// and how long it has before it expires, and hints at a batch stuck in
// validating or finalizing for over an hour.
func TestBatchStatusTimeInStateAndStuckHints(t *testing.T) {
	// Validating lasts a tenth of the batch (6 min of sim time, 0.3 s of
	// wall time), running 48 min (2.4 s): status sees it in_progress.
	e := newBatchEnv(t, sim.Config{BatchDuration: time.Hour})
	in := e.path("in.jsonl")
	writeRequests(t, in, 20, "gpt-4o-mini", 5)
	out, errOut, code := e.submit(perShard(10), in, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit: exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	// From the API: status_since is the batch's in_progress_at.
	out, errOut, code = e.run("batch", "status", job, "--json")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, errOut)
	}
	var doc struct {
		Shards []struct {
			Status      string  `json:"status"`
			StatusSince *string `json:"status_since"`
		} `json:"shards"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	for i, s := range doc.Shards {
		if s.Status != "in_progress" || s.StatusSince == nil {
			t.Errorf("shard %d: %s since %v, want in_progress with a status_since", i, s.Status, s.StatusSince)
		}
	}
	// Offline, on a terminal, with a clock 2 h after shard 0 started
	// validating and shard 1 finalizing.
	j, err := batch.FindJob(e.env["OAIRL_STATE_DIR"], "", job)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	j.Shards[0].Status, j.Shards[0].StatusSince, j.Shards[0].ExpiresAt = batch.StatusValidating, start, start.Add(24*time.Hour)
	j.Shards[1].Status, j.Shards[1].StatusSince, j.Shards[1].ExpiresAt = batch.StatusFinalizing, start.Add(30*time.Minute), start.Add(24*time.Hour)
	if err := j.Save(start); err != nil {
		t.Fatal(err)
	}
	f, o, eo := newTestFactory(e.env)
	f.IOStreams.SetStdoutTTY(true)
	now := start.Add(2*time.Hour + 5*time.Minute)
	var c *cobra.Command
	c = newBatchStatusCmd(f, func(opts *BatchStatusOptions) error {
		opts.Clock = clock.NewFake(now)
		return batchStatusRun(c, opts)
	})
	c.SetArgs([]string{job, "--offline"})
	if err := c.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"validating 2h05m", "finalizing 1h35m", "(in 21h55m)"} {
		if !strings.Contains(o.String(), want) {
			t.Errorf("status table lacks %q:\n%s", want, o)
		}
	}
	for _, want := range []string{"has been validating for 2h05m", "oairl batch cancel " + job, "has been finalizing for 1h35m", "keep waiting"} {
		if !strings.Contains(eo.String(), want) {
			t.Errorf("hints lack %q:\n%s", want, eo)
		}
	}
	// Under an hour: no hint.
	f, _, eo = newTestFactory(e.env)
	c = newBatchStatusCmd(f, func(opts *BatchStatusOptions) error {
		opts.Clock = clock.NewFake(start.Add(50 * time.Minute))
		return batchStatusRun(c, opts)
	})
	c.SetArgs([]string{job, "--offline"})
	if err := c.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(eo.String(), "hint:") {
		t.Errorf("hint before an hour:\n%s", eo)
	}
}

// Issue 14 §5: the --timeout message gives the command that resumes
// waiting, with the --state and --base-url the job needs; submit --wait
// --timeout says the same.
func TestBatchTimeoutGivesResumeCommand(t *testing.T) {
	e := newBatchEnv(t, sim.Config{BatchDuration: time.Hour})
	delete(e.env, "OPENAI_BASE_URL")
	in := e.path("in.jsonl")
	writeRequests(t, in, 3, "gpt-4o-mini", 5)
	state := e.path("my job.json")
	out, errOut, code := e.run("batch", "submit", in, "--state", state, "--base-url", e.srv.URL, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit: exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	want := "resume waiting with 'oairl batch wait " + job + " --state '" + state + "' --base-url " + e.srv.URL + "'"
	_, errOut, code = e.run("batch", "wait", job, "--state", state, "--base-url", e.srv.URL, "--timeout", "1m", "--time-scale", e.scale, "--poll-interval", "10s")
	if code != 8 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "keep running") {
		t.Errorf("wait --timeout: exit %d, want 8 and %q\n%s", code, want, errOut)
	}
	_, errOut, code = e.run("batch", "submit", in, "--state", state, "--base-url", e.srv.URL, "--wait", "--timeout", "1m", "--time-scale", e.scale, "--poll-interval", "10s")
	if code != 8 || !strings.Contains(errOut, want) {
		t.Errorf("submit --wait --timeout: exit %d, want 8 and %q\n%s", code, want, errOut)
	}
}

// Issue 14 §5: `batch results -o DIR/` failed after the whole download with
// "rename … file exists" and left a temporary file behind. A directory is
// refused up front (exit 2), and no error leaves a temporary file.
func TestBatchResultsRefusesDirectoryAndLeavesNoTemp(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	in := e.path("in.jsonl")
	writeRequests(t, in, 3, "gpt-4o-mini", 5)
	out, errOut, code := e.run("batch", "submit", in, "--wait", "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit: exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	dir := e.path("out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	listDir := func() []string {
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, x := range ents {
			names = append(names, x.Name())
		}
		return names
	}
	for _, args := range [][]string{{"-o", dir + "/"}, {"-o", dir}, {"-o", e.path("new") + "/"}, {"-o", e.path("r.jsonl"), "--failed", dir}} {
		_, errOut, code := e.run(append([]string{"batch", "results", job}, args...)...)
		if code != 2 || !strings.Contains(errOut, "is a directory") {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errOut)
		}
		if names := listDir(); len(names) != 0 {
			t.Errorf("%v: left %v in the directory", args, names)
		}
	}
	// An error after the download started (an output file the server no
	// longer has) leaves no temporary file either.
	j, err := batch.FindJob(e.env["OAIRL_STATE_DIR"], "", job)
	if err != nil {
		t.Fatal(err)
	}
	j.Shards[0].OutputFileID = "file-gone"
	if err := j.Save(time.Now()); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = e.run("batch", "results", job, "-o", filepath.Join(dir, "r.jsonl"), "--failed", filepath.Join(dir, "f.jsonl"))
	if code == 0 {
		t.Fatalf("results with a missing file: exit 0\n%s", errOut)
	}
	if names := listDir(); len(names) != 0 {
		t.Errorf("an error left %v behind", names)
	}
	// A file path works.
	if _, errOut, code := e.run("batch", "results", job, "-o", filepath.Join(dir, "r.jsonl")); code == 2 {
		t.Errorf("a file path refused:\n%s", errOut)
	}
}

// Issue 14 §7: a missing input file exited 1 in count and run but 3 in
// batch submit. 'oairl help exit-codes' says 1 ("a file cannot be read"):
// the same code everywhere, for a missing file and a directory.
func TestMissingInputSameExitCode(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	out, _, _ := e.run("help", "exit-codes")
	if !strings.Contains(out, "a file cannot be read") {
		t.Fatalf("help exit-codes no longer promises 1 for an unreadable file:\n%s", out)
	}
	for _, in := range []string{e.path("nope.jsonl"), e.dir} {
		for _, args := range [][]string{
			{"count", in},
			{"run", in, "-o", e.path("r.jsonl"), "--dry-run"},
			{"run", in, "-o", e.path("r.jsonl")},
			{"batch", "submit", in},
			{"batch", "submit", in, "--dry-run"},
		} {
			if _, errOut, code := e.run(args...); code != 1 {
				t.Errorf("%v: exit %d, want 1\n%s", args, code, errOut)
			}
		}
	}
}

// Issue 14 §7: on a terminal, `batch submit --wait` left its bar half-drawn
// with the next message glued to it, showed a rate like "1925814 it/s",
// and nothing while the batch validated. Now every message starts on a
// clean line, there is no rate, and the bar names the phase from the start.
func TestBatchSubmitWaitBarOnTTY(t *testing.T) {
	e := newBatchEnv(t, sim.Config{BatchDuration: 20 * time.Minute})
	in := e.path("in.jsonl")
	writeRequests(t, in, 3, "gpt-4o-mini", 5)
	f, o, eo := newTestFactory(e.env)
	f.IOStreams.SetStderrTTY(true)
	f.IOStreams.SetStdoutTTY(true)
	if code := run(f, context.Background(), []string{"batch", "submit", in, "--wait", "--time-scale", e.scale, "--poll-interval", "2s"}); code != 0 {
		t.Fatalf("exit %d\n%s", code, eo)
	}
	errOut := eo.String()
	if strings.Contains(errOut, "it/s") {
		t.Errorf("the bar shows a rate:\n%q", errOut)
	}
	if !strings.Contains(errOut, "validating") || !strings.Contains(errOut, "(0/3") {
		t.Errorf("nothing shown while validating:\n%q", errOut)
	}
	for _, msg := range []string{"submitted OK", strings.TrimSpace(o.String()) + ": 1/1 batch terminal", "next: oairl batch results"} {
		i := strings.Index(errOut, msg)
		if i < 0 {
			t.Errorf("no %q in stderr:\n%q", msg, errOut)
			continue
		}
		line := errOut[strings.LastIndex(errOut[:i], "\n")+1 : i]
		if j := strings.LastIndex(line, "\r"); j >= 0 {
			line = line[j+1:]
		}
		if line != "" {
			t.Errorf("%q is glued to %q:\n%q", msg, line, errOut)
		}
	}
}

// Issue 14 §7: `oairl run -` failed with "cannot read -: no standard input"
// (exit 3) while `count -` and `batch submit -` worked: the same input
// handling for every command.
func TestStdinForEveryCommand(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	var b strings.Builder
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&b, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q"}],"max_tokens":5}}`+"\n", i)
	}
	res := e.path("r.jsonl")
	for _, args := range [][]string{
		{"count", "-"},
		{"run", "-", "-o", res, "--time-scale", e.scale},
		{"batch", "submit", "-", "--dry-run"},
	} {
		if _, errOut, code := e.runIn(b.String(), args...); code != 0 {
			t.Errorf("%v: exit %d\n%s", args, code, errOut)
		}
	}
	if data, err := os.ReadFile(res); err != nil || strings.Count(string(data), "\n") != 3 {
		t.Errorf("run - wrote %q (%v), want 3 results", data, err)
	}
}

// Issue 14 §7: wording. A one-request job says "1 request", "1 shard",
// "1 batch" (never "1 requests"), and a pending job's ids are listed
// without Go's slice brackets ("[batch_x (cancelling)]").
func TestBatchWordingOneRequestAndNoBrackets(t *testing.T) {
	e := newBatchEnv(t, sim.Config{BatchDuration: time.Hour})
	in := e.path("one.jsonl")
	writeRequests(t, in, 1, "gpt-4o-mini", 5)
	out, dryErr, code := e.run("batch", "submit", in, "--dry-run")
	if code != 0 {
		t.Fatalf("dry-run: exit %d\n%s", code, dryErr)
	}
	dry := out
	out, errOut, code := e.run("batch", "submit", in, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit: exit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	_, resErr, code := e.run("batch", "results", job, "-o", e.path("r.jsonl"))
	if code != 8 {
		t.Errorf("results of a running job: exit %d, want 8\n%s", code, resErr)
	}
	all := dry + dryErr + errOut + resErr
	for _, bad := range []string{"1 requests", "1 shards", "1 batches", "[batch_", ")]"} {
		if strings.Contains(all, bad) {
			t.Errorf("output has %q:\n%s", bad, all)
		}
	}
	if !strings.Contains(errOut, ": 1 request in 1 shard") || !strings.Contains(resErr, "still pending: batch_") {
		t.Errorf("wording:\n%s\n%s", errOut, resErr)
	}
}

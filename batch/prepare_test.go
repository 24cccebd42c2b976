package batch

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/tokens"
)

const casesDir = "/work/shared/cases/inputs"

// caseFile returns a case input, copied into testdata when present there,
// else from the shared cases folder; the test is skipped when neither has it.
func caseFile(t testing.TB, name string) string {
	t.Helper()
	for _, p := range []string{filepath.Join("testdata", "cases", name), filepath.Join(casesDir, name)} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("case input %s not available", name)
	return ""
}

func scanOpts() input.Options {
	reg := models.Default()
	return input.Options{Registry: reg, Counter: tokens.NewCounter(tokens.Options{Registry: reg, AssumeOutput: 16})}
}

type prepared struct {
	res      *PrepareResult
	err      error
	problems []input.Problem
	dir      string
}

func prepare(t *testing.T, path string, mod func(*PrepareOptions)) prepared {
	t.Helper()
	dir := t.TempDir()
	var pr prepared
	pr.dir = dir
	o := PrepareOptions{
		Sources: []input.Source{{Name: path}}, Scan: scanOpts(), StateDir: dir,
		Problem: func(p input.Problem) { pr.problems = append(pr.problems, p) },
		Now:     time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC),
	}
	if mod != nil {
		mod(&o)
	}
	pr.res, pr.err = Prepare(context.Background(), o)
	return pr
}

// nothingLeft asserts no job state and no shard files were kept.
func nothingLeft(t *testing.T, dir string) {
	t.Helper()
	var left []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("files left behind after a refused submit: %v", left)
	}
}

func problemAt(ps []input.Problem, line int, code string) bool {
	for _, p := range ps {
		if p.Line == line && (code == "" || p.Code == code) && p.Severity == tokens.Error {
			return true
		}
	}
	return false
}

// B01: duplicate and empty custom_id are refused before anything is
// uploaded, every problem reported with its line.
func TestPrepare_B01_DuplicateCustomID(t *testing.T) {
	pr := prepare(t, caseFile(t, "B01.jsonl"), nil)
	if exitcode.Of(pr.err) != exitcode.Input {
		t.Fatalf("exit code = %d (%v), want 3", exitcode.Of(pr.err), pr.err)
	}
	for _, line := range []int{3, 4, 5} {
		if !problemAt(pr.problems, line, "") {
			t.Errorf("no error reported on line %d: %+v", line, pr.problems)
		}
	}
	if pr.res.Invalid != 3 {
		t.Errorf("invalid = %d, want 3", pr.res.Invalid)
	}
	nothingLeft(t, pr.dir)
}

// B03: wrong url/method, endpoint mismatch: refused, nothing kept.
func TestPrepare_B03_WrongURL(t *testing.T) {
	for _, ep := range []string{"", "/v1/chat/completions"} {
		pr := prepare(t, caseFile(t, "B03.jsonl"), func(o *PrepareOptions) { o.Scan.Endpoint = ep })
		if exitcode.Of(pr.err) != exitcode.Input {
			t.Fatalf("endpoint %q: exit code = %d (%v), want 3", ep, exitcode.Of(pr.err), pr.err)
		}
		// With or without --endpoint (then line 1's url is the batch
		// endpoint), the /v1/responses line 5 is an error: one endpoint
		// per batch, never split (issue 14 §4).
		if !problemAt(pr.problems, 5, "endpoint_mismatch") {
			t.Errorf("endpoint %q: no endpoint_mismatch on line 5: %+v", ep, pr.problems)
		}
		for _, line := range []int{2, 3, 4, 5, 6} {
			if !problemAt(pr.problems, line, "") {
				t.Errorf("endpoint %q: no error on line %d", ep, line)
			}
		}
		if problemAt(pr.problems, 1, "") {
			t.Errorf("endpoint %q: line 1 is valid but got an error", ep)
		}
		nothingLeft(t, pr.dir)
	}
}

// Issue 14 §4 / B03: a file mixing chat and embeddings lines is refused
// (exit 3, nothing kept), never split by endpoint: without --endpoint the
// first line's url is the batch endpoint and every other line is reported
// against it; with --endpoint E, against E.
func TestPrepare_MixedEndpointsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mixed.jsonl")
	var b strings.Builder
	for i := 0; i < 6; i++ {
		if i%2 == 0 {
			fmt.Fprintf(&b, `{"custom_id":"c%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":5}}`+"\n", i)
		} else {
			fmt.Fprintf(&b, `{"custom_id":"e%d","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":"x"}}`+"\n", i)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ endpoint, want, got string }{
		{"", "/v1/chat/completions", "/v1/embeddings"},
		{"/v1/chat/completions", "/v1/chat/completions", "/v1/embeddings"},
		{"/v1/embeddings", "/v1/embeddings", "/v1/chat/completions"},
	} {
		pr := prepare(t, path, func(o *PrepareOptions) { o.Scan.Endpoint = tc.endpoint })
		if exitcode.Of(pr.err) != exitcode.Input || pr.res != nil && pr.res.Job != nil {
			t.Errorf("endpoint %q: exit %d (%v), want 3 and no job", tc.endpoint, exitcode.Of(pr.err), pr.err)
		}
		var bad []int
		for _, p := range pr.problems {
			if p.Code != "endpoint_mismatch" {
				continue
			}
			bad = append(bad, p.Line)
			if want := fmt.Sprintf("url %q differs from the batch endpoint %q — one endpoint per batch", tc.got, tc.want); p.Message != want || p.Severity != tokens.Error {
				t.Errorf("endpoint %q: line %d: %s %q, want %q", tc.endpoint, p.Line, p.Severity, p.Message, want)
			}
		}
		wantLines := []int{2, 4, 6}
		if tc.endpoint == "/v1/embeddings" {
			wantLines = []int{1, 3, 5}
		}
		if fmt.Sprint(bad) != fmt.Sprint(wantLines) {
			t.Errorf("endpoint %q: endpoint_mismatch on lines %v, want %v", tc.endpoint, bad, wantLines)
		}
		nothingLeft(t, pr.dir)
	}
}

// B08: arrays, scalars and a pretty-printed object: refused, no panic.
func TestPrepare_B08_NotObjects(t *testing.T) {
	pr := prepare(t, caseFile(t, "B08.jsonl"), nil)
	if exitcode.Of(pr.err) != exitcode.Input {
		t.Fatalf("exit code = %d (%v), want 3", exitcode.Of(pr.err), pr.err)
	}
	for _, line := range []int{2, 3, 4, 5} {
		if !problemAt(pr.problems, line, "") {
			t.Errorf("no error on line %d", line)
		}
	}
	nothingLeft(t, pr.dir)
}

// --skip-invalid writes the rejected lines and goes on with the rest.
func TestPrepare_SkipInvalid(t *testing.T) {
	var rejected bytes.Buffer
	pr := prepare(t, caseFile(t, "B01.jsonl"), func(o *PrepareOptions) { o.Rejected = &rejected })
	if pr.err != nil {
		t.Fatal(pr.err)
	}
	if got := strings.Count(rejected.String(), "\n"); got != 3 {
		t.Errorf("rejected lines = %d, want 3:\n%s", got, rejected.String())
	}
	j := pr.res.Job
	if j.Requests != 2 || j.Rejected != 3 {
		t.Errorf("requests/rejected = %d/%d, want 2/3", j.Requests, j.Rejected)
	}
	shard, _ := os.ReadFile(j.ShardPath(j.Shards[0]))
	if !bytes.Contains(shard, []byte(`"req-1"`)) || bytes.Contains(shard, []byte(`"custom_id": ""`)) {
		t.Errorf("shard holds the wrong lines:\n%s", shard)
	}
}

// B06: BOM, CRLF, trailing whitespace and blank lines: 3 requests, and the
// uploaded copy is normalised (no BOM, LF only, no blank lines), with the
// JSON strings untouched.
func TestPrepare_B06_NormalisedCopy(t *testing.T) {
	path := caseFile(t, "B06.jsonl")
	pr := prepare(t, path, nil)
	if pr.err != nil {
		t.Fatal(pr.err)
	}
	j := pr.res.Job
	if j.Requests != 3 || len(j.Shards) != 1 || j.Shards[0].Requests != 3 {
		t.Fatalf("requests = %d in %d shards, want 3 in 1", j.Requests, len(j.Shards))
	}
	b, err := os.ReadFile(j.ShardPath(j.Shards[0]))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(b, bom) || bytes.Contains(b, []byte("\r")) || bytes.Contains(b, []byte("\n\n")) {
		t.Errorf("shard is not normalised: %q", b)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("shard has %d lines, want 3", len(lines))
	}
	for i, want := range []string{"w1", "w2", "w3"} {
		if !strings.Contains(lines[i], `"`+want+`"`) || strings.HasSuffix(lines[i], " ") || strings.HasSuffix(lines[i], "\t") {
			t.Errorf("line %d = %q", i+1, lines[i])
		}
	}
	orig, _ := os.ReadFile(path)
	for _, l := range lines { // every uploaded line occurs verbatim in the original
		if !bytes.Contains(orig, []byte(l)) {
			t.Errorf("line altered: %q", l)
		}
	}
	// --strict refuses the same file (warnings are errors).
	pr = prepare(t, path, func(o *PrepareOptions) { o.Strict = true })
	if exitcode.Of(pr.err) != exitcode.Input {
		t.Errorf("--strict: exit code %d (%v), want 3", exitcode.Of(pr.err), pr.err)
	}
}

// writeLines writes n tiny chat requests (model per line from modelOf).
func writeLines(t testing.TB, path string, n int, modelOf func(i int) string) {
	t.Helper()
	var b bytes.Buffer
	b.Grow(n * 150)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"hi %d"}],"max_tokens":5}}`+"\n", i, modelOf(i), i)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A 120,000-line input becomes 3 shards under the 50,000-request limit,
// and the job input iterates every request once, in input order. (The
// end-to-end version through input.Scan and the sim is in cmd.)
func TestSplit_120kLines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "job.shards")
	sp, err := NewSplitter(SplitOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 120_000; i++ {
		id := fmt.Sprintf("r%d", i)
		raw := `{"custom_id":"` + id + `","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}}`
		if err := sp.Add(Line{CustomID: id, URL: "/v1/chat/completions", Model: "gpt-4o-mini", Tokens: 10, Raw: []byte(raw)}); err != nil {
			t.Fatal(err)
		}
	}
	shards, n, _, err := sp.Close()
	if err != nil || n != 120_000 {
		t.Fatalf("%d requests, %v", n, err)
	}
	j := &Job{Shards: shards, path: strings.TrimSuffix(dir, ".shards") + ".json"}
	if len(j.Shards) != 3 {
		t.Fatalf("%d shards, want 3", len(j.Shards))
	}
	total := 0
	for _, s := range j.Shards {
		if s.Requests > MaxRequestsPerBatch || s.Bytes > MaxBytesPerBatch {
			t.Errorf("shard %d: %d requests, %d bytes: over the limits", s.Index, s.Requests, s.Bytes)
		}
		total += s.Requests
	}
	if total != 120_000 {
		t.Errorf("shards hold %d requests, want 120000", total)
	}
	in, err := OpenJobInput(j)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for i := 0; ; i++ {
		l, err := in.Next()
		if err != nil {
			if i != 120_000 {
				t.Fatalf("iterated %d requests, want 120000 (%v)", i, err)
			}
			break
		}
		if want := fmt.Sprintf("r%d", i); l.CustomID != want {
			t.Fatalf("request %d is %q, want %q", i, l.CustomID, want)
		}
	}
}

// Shards split on bytes, on model (one model per shard, input order kept
// across models) and on the enqueued-token limit; a request too large for
// any shard is an error naming it.
func TestSplit_Limits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "job.shards")
	sp, err := NewSplitter(SplitOptions{Dir: dir, MaxBytes: 1000, QueueLimit: func(m string) int64 {
		if m == "b" {
			return 250
		}
		return 0
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		m := "a"
		if i%3 == 0 {
			m = "b"
		}
		raw := fmt.Sprintf(`{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"x":"%s"}}`, i, m, strings.Repeat("y", 60))
		if err := sp.Add(Line{CustomID: fmt.Sprintf("r%d", i), URL: "/v1/chat/completions", Model: m, Tokens: 100, Raw: []byte(raw)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Add(Line{File: "in.jsonl", Line: 31, CustomID: "huge", URL: "/v1/chat/completions", Model: "b", Tokens: 300, Raw: []byte("{}")}); err == nil || !strings.Contains(err.Error(), `in.jsonl:31: custom_id "huge"`) {
		t.Errorf("oversized request: %v", err)
	}
	shards, _, _, err := sp.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shards {
		if s.Bytes > 1000 || (s.Model == "b" && s.Tokens > 250) {
			t.Errorf("shard %d (%s): %d bytes, %d tokens", s.Index, s.Model, s.Bytes, s.Tokens)
		}
		b, _ := os.ReadFile(filepath.Join(dir, s.File))
		if bytes.Count(b, []byte(`"model":"`+s.Model+`"`)) != s.Requests {
			t.Errorf("shard %d mixes models", s.Index)
		}
	}
	j := &Job{Shards: shards, path: strings.TrimSuffix(dir, ".shards") + ".json"}
	in, _ := OpenJobInput(j)
	defer in.Close()
	for i := 0; i < 30; i++ {
		l, err := in.Next()
		if err != nil || l.CustomID != fmt.Sprintf("r%d", i) {
			t.Fatalf("request %d: %q %v", i, l.CustomID, err)
		}
	}
}

// A bare body is wrapped in the Batch envelope with its line-N custom_id.
func TestSplit_WrapsBareBodies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "job.shards")
	sp, _ := NewSplitter(SplitOptions{Dir: dir})
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	if err := sp.Add(Line{CustomID: "line-1", URL: "/v1/chat/completions", Model: "gpt-4o-mini", Raw: []byte(body), Bare: true}); err != nil {
		t.Fatal(err)
	}
	shards, _, _, _ := sp.Close()
	b, _ := os.ReadFile(filepath.Join(dir, shards[0].File))
	want := `{"custom_id":"line-1","method":"POST","url":"/v1/chat/completions","body":` + body + "}\n"
	if string(b) != want {
		t.Errorf("got %s want %s", b, want)
	}
}

// Same input twice: the second Prepare reuses the job.
func TestPrepare_SameInputReusesJob(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.jsonl")
	writeLines(t, path, 10, func(int) string { return "gpt-4o-mini" })
	state := t.TempDir()
	o := func(o *PrepareOptions) { o.StateDir = state }
	a := prepare(t, path, o)
	b := prepare(t, path, o)
	if a.err != nil || b.err != nil {
		t.Fatal(a.err, b.err)
	}
	if a.res.Job.ID != b.res.Job.ID || !b.res.Resumed || a.res.Resumed {
		t.Errorf("ids %s %s, resumed %v %v", a.res.Job.ID, b.res.Job.ID, a.res.Resumed, b.res.Resumed)
	}
	jobs, _ := ListJobs(state)
	if len(jobs) != 1 {
		t.Errorf("%d jobs in state dir, want 1", len(jobs))
	}
}

// Defect: after token_limit_exceeded the advice was "resubmit with
// --enqueued-limit N", but the rerun resumed the old one-shard split. A job
// no batch of which has run is re-split when the split changes; a started
// job keeps its shards.
func TestPrepare_ReplanUnstartedJob(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "q.jsonl")
	writeLines(t, path, 30, func(int) string { return "gpt-4o-mini" })
	run := func(limit int64) *PrepareResult {
		t.Helper()
		res, err := Prepare(context.Background(), PrepareOptions{
			Sources: []input.Source{{Name: path}}, Scan: scanOpts(), StateDir: dir,
			QueueLimit: func(string) int64 { return limit }, Now: time.Now(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := run(0)
	if len(first.Job.Shards) != 1 {
		t.Fatalf("%d shards, want 1", len(first.Job.Shards))
	}
	total := first.Job.Shards[0].Tokens
	// The trap: the shard was uploaded and refused by the server.
	first.Job.Shards[0].Status, first.Job.Shards[0].FileID = StatusUploaded, "file-1"
	first.Job.Shards[0].FailedBatches = []string{"batch_1"}
	first.Job.ServerLimits = map[string]int64{"gpt-4o-mini": total / 3}
	if err := first.Job.Save(time.Now()); err != nil {
		t.Fatal(err)
	}
	second := run(total / 3)
	if !second.Resumed || !second.Replanned || second.Job.ID != first.Job.ID || second.Job.Plan != 1 {
		t.Fatalf("resumed %v replanned %v id %s plan %d", second.Resumed, second.Replanned, second.Job.ID, second.Job.Plan)
	}
	if len(second.Job.Shards) < 3 {
		t.Errorf("%d shards, want >= 3", len(second.Job.Shards))
	}
	sum := 0
	for _, s := range second.Job.Shards {
		sum += s.Requests
		if s.Tokens > total/3 || s.FileID != "" || s.Status != StatusPending {
			t.Errorf("shard %+v: over the limit %d or not fresh", s, total/3)
		}
		if _, err := os.Stat(second.Job.ShardPath(s)); err != nil {
			t.Error(err)
		}
	}
	if sum != 30 {
		t.Errorf("shards hold %d requests, want 30", sum)
	}
	if second.Job.ServerLimits["gpt-4o-mini"] != total/3 {
		t.Errorf("server limit lost: %v", second.Job.ServerLimits)
	}
	// Started: a batch exists, so the split is kept whatever the flags.
	second.Job.Shards[0].BatchID, second.Job.Shards[0].Status = "batch_2", StatusInProgress
	if err := second.Job.Save(time.Now()); err != nil {
		t.Fatal(err)
	}
	third := run(total / 6)
	if third.Replanned || len(third.Job.Shards) != len(second.Job.Shards) {
		t.Errorf("started job re-split: replanned %v, %d shards", third.Replanned, len(third.Job.Shards))
	}
}

// Defect: the job id came from the input alone, so a job of another
// server (a restarted sim) was "resumed". A job is resumed only for its own
// base URL; --new starts another.
func TestPrepare_OtherServerStartsNewJob(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "q.jsonl")
	writeLines(t, path, 3, func(int) string { return "gpt-4o-mini" })
	run := func(base string, fresh bool, state string) (*PrepareResult, error) {
		return Prepare(context.Background(), PrepareOptions{
			Sources: []input.Source{{Name: path}}, Scan: scanOpts(), StateDir: dir, StatePath: state,
			BaseURL: base, New: fresh, Now: time.Now(),
		})
	}
	a, err := run("http://a/v1", false, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := run("http://b/v1", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if b.Resumed || b.Previous == nil || b.Previous.ID != a.Job.ID || b.Job.ID != a.Job.ID+"-2" || b.Job.BaseURL != "http://b/v1" {
		t.Fatalf("other server: resumed %v id %s (previous %v)", b.Resumed, b.Job.ID, b.Previous)
	}
	again, err := run("http://b/v1", false, "")
	if err != nil || !again.Resumed || again.Job.ID != b.Job.ID {
		t.Fatalf("same server again: %v resumed %v id %s, want %s", err, again != nil && again.Resumed, again.Job.ID, b.Job.ID)
	}
	fresh, err := run("http://b/v1", true, "")
	if err != nil || fresh.Resumed || fresh.Job.ID != a.Job.ID+"-3" {
		t.Fatalf("--new: %v id %s", err, fresh.Job.ID)
	}
	if _, err := run("http://c/v1", false, a.Job.Path()); exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "http://a/v1") {
		t.Errorf("--state of another server: %v", err)
	}
}

// Ctrl-C while the input is read is an interruption (exit 130), not an
// invalid input (exit 3); nothing is kept.
func TestPrepare_Interrupted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	writeLines(t, path, 2000, func(int) string { return "gpt-4o-mini" })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	_, err := Prepare(ctx, PrepareOptions{Sources: []input.Source{{Name: path}}, Scan: scanOpts(), StateDir: dir, Now: time.Now()})
	if exitcode.Of(err) != exitcode.Interrupted {
		t.Fatalf("exit %d (%v), want 130", exitcode.Of(err), err)
	}
	nothingLeft(t, dir)
}

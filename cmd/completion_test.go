package cmd

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/sim"
)

// complete runs cobra's hidden __complete command and returns the values
// offered (descriptions dropped) and the directive line.
func (e *batchEnv) complete(args ...string) ([]string, string) {
	e.t.Helper()
	out, errOut, code := e.run(append([]string{"__complete"}, args...)...)
	if code != 0 {
		e.t.Fatalf("__complete %v: exit %d\n%s", args, code, errOut)
	}
	var vals []string
	directive := ""
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, ":") {
			directive = l
			continue
		}
		v, _, _ := strings.Cut(l, "\t")
		vals = append(vals, v)
	}
	return vals, directive
}

func TestCompletions(t *testing.T) {
	e := newBatchEnv(t, sim.Config{BatchDuration: time.Hour})
	in := e.path("in.jsonl")
	writeRequests(t, in, 4, "gpt-4o-mini", 5)
	out, errOut, code := e.run("batch", "submit", in, "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit %d\n%s", code, errOut)
	}
	job := strings.TrimSpace(out)
	var batchID string
	for _, b := range e.srv.Sim.Batches() {
		batchID = b.ID
	}
	cases := []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"count", "--format", ""}, []string{"table", "json", "jsonl"}, nil},
		{[]string{"batch", "list", "--format", ""}, []string{"table", "json"}, []string{"jsonl"}},
		{[]string{"run", "x.jsonl", "--tier", ""}, []string{"free", "1", "5"}, nil},
		{[]string{"batch", "submit", "--endpoint", ""}, []string{"/v1/chat/completions", "/v1/embeddings"}, nil},
		{[]string{"diagnose", "--model", "gpt-4o"}, []string{"gpt-4o", "gpt-4o-mini"}, []string{"o3-mini"}},
		{[]string{"sim", "--retry-after", ""}, []string{"seconds", "none", "ms"}, nil},
		{[]string{"batch", "status", ""}, []string{job, batchID}, nil},
		{[]string{"batch", "wait", "job_"}, []string{job}, []string{batchID}},
		{[]string{"batch", "cancel", job, ""}, nil, []string{job}},
	}
	for _, tc := range cases {
		got, dir := e.complete(tc.args...)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("complete %q: %v lacks %q", tc.args, got, w)
			}
		}
		for _, n := range tc.not {
			if slices.Contains(got, n) {
				t.Errorf("complete %q: %v offers %q", tc.args, got, n)
			}
		}
		if dir != ":4" {
			t.Errorf("complete %q: directive %s, want :4 (no file completion)", tc.args, dir)
		}
	}

	// Batch ids come from the API too when a key is set (a state
	// directory without the job), and never without a key.
	e.env["OAIRL_STATE_DIR"] = e.path("other-state")
	if got, _ := e.complete("batch", "results", "batch_"); !slices.Contains(got, batchID) {
		t.Errorf("with a key: %v lacks the API's %s", got, batchID)
	}
	delete(e.env, "OPENAI_API_KEY")
	if got, _ := e.complete("batch", "results", ""); len(got) != 0 {
		t.Errorf("without a key: %v, want nothing", got)
	}
}

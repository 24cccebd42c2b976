package batch

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/models"
)

func readJSONL(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v: %s", path, err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func ids(lines []map[string]any) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l["custom_id"].(string))
	}
	return out
}

// B14: output in shuffled order, q2 only in the error file, q9 in no
// input. Joined on custom_id: q1..q4 in input order, q2 failed and in the
// retry file as its input line, q9 reported and kept apart.
func TestMergeFiles_B14(t *testing.T) {
	dir := t.TempDir()
	opts := ResultsOptions{Out: filepath.Join(dir, "results.jsonl"), Failed: filepath.Join(dir, "retry.jsonl"), Registry: models.Default()}
	var log strings.Builder
	opts.Log = &log
	s, err := MergeFiles([]string{caseFile(t, "B14.output.jsonl"), caseFile(t, "B14.error.jsonl")}, caseFile(t, "B14.input.jsonl"), opts)
	if err != nil {
		t.Fatal(err)
	}
	out := readJSONL(t, opts.Out)
	if got := strings.Join(ids(out), ","); got != "q1,q2,q3,q4" {
		t.Errorf("results order = %s, want q1,q2,q3,q4", got)
	}
	// The answer paired with q3 is q3's ("9"), not the one at q3's position.
	if b, _ := json.Marshal(out[2]); !strings.Contains(string(b), `"content":"9"`) {
		t.Errorf("q3 got the wrong answer: %s", b)
	}
	if s.Succeeded != 3 || s.Failed != 1 || s.FailedByCode["server_error"] != 1 {
		t.Errorf("summary = %+v", s)
	}
	retry := readJSONL(t, opts.Failed)
	if len(retry) != 1 || retry[0]["custom_id"] != "q2" || retry[0]["method"] != "POST" {
		t.Errorf("retry file = %v, want q2's input line", retry)
	}
	if s.Unmatched != 1 || s.UnmatchedIDs[0] != "q9" {
		t.Errorf("unmatched = %d %v, want q9", s.Unmatched, s.UnmatchedIDs)
	}
	um := readJSONL(t, opts.Out+".unmatched.jsonl")
	if len(um) != 1 || um[0]["custom_id"] != "q9" {
		t.Errorf("unmatched file = %v", um)
	}
	if !strings.Contains(log.String(), `output has custom_id "q9" that is not in the input`) {
		t.Errorf("no warning about q9: %s", log.String())
	}
	if s.PromptTokens != 36 || s.CompletionTokens != 9 {
		t.Errorf("tokens = %d/%d, want 36/9 (q9 not counted)", s.PromptTokens, s.CompletionTokens)
	}
}

// B13: success only when error is null AND status is 2xx; failures grouped
// by code.
func TestMergeFiles_B13_Mixed(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	for _, id := range []string{"r1", "r2", "r3", "r4"} {
		b.WriteString(`{"custom_id":"` + id + `","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}}` + "\n")
	}
	os.WriteFile(in, []byte(b.String()), 0o644)
	opts := ResultsOptions{Out: filepath.Join(dir, "out.jsonl"), Failed: filepath.Join(dir, "failed.jsonl")}
	s, err := MergeFiles([]string{caseFile(t, "B13.output_mixed.jsonl")}, in, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Succeeded != 1 || s.Failed != 3 {
		t.Errorf("succeeded/failed = %d/%d, want 1/3", s.Succeeded, s.Failed)
	}
	for code, n := range map[string]int{"context_length_exceeded": 1, "server_error": 1, "rate_limit_exceeded": 1} {
		if s.FailedByCode[code] != n {
			t.Errorf("failed_by_code[%s] = %d, want %d (%v)", code, s.FailedByCode[code], n, s.FailedByCode)
		}
	}
	if got := strings.Join(ids(readJSONL(t, opts.Failed)), ","); got != "r2,r3,r4" {
		t.Errorf("failed = %s, want r2,r3,r4", got)
	}
	if _, err := os.Stat(opts.Out + ".unmatched.jsonl"); !os.IsNotExist(err) {
		t.Errorf("an unmatched file was written with nothing unmatched")
	}
}

// Missing lines get a synthesized error line in place (batch_expired for
// an expired shard) and go to the retry file.
func TestMerge_SynthesizesMissing(t *testing.T) {
	m := NewMerger()
	out := `{"id":"batch_req_2","custom_id":"b","response":{"status_code":200,"request_id":"r","body":{}},"error":null}` + "\n"
	if err := m.AddOutput("out", strings.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	in := &sliceInput{lines: []InputLine{{CustomID: "a", Raw: []byte(`{"custom_id":"a"}`)}, {CustomID: "b", Raw: []byte(`{"custom_id":"b"}`)}, {CustomID: "c", Raw: []byte(`{"custom_id":"c"}`)}}}
	var res, failed strings.Builder
	s, err := m.Merge(in, MergeOptions{Out: &res, Failed: &failed, Missing: func(int) (string, string) { return CodeBatchExpired, "expired" }})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(res.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"custom_id":"a"`) || !strings.Contains(lines[0], `"code":"batch_expired"`) || !strings.Contains(lines[1], `"custom_id":"b"`) {
		t.Errorf("results:\n%s", res.String())
	}
	if failed.String() != "{\"custom_id\":\"a\"}\n{\"custom_id\":\"c\"}\n" {
		t.Errorf("failed = %q", failed.String())
	}
	if s.Synthesized != 2 || s.FailedByCode[CodeBatchExpired] != 2 || s.Succeeded != 1 {
		t.Errorf("summary %+v", s)
	}
}

// A duplicate output custom_id: the success wins; counted, not doubled.
func TestMerge_DuplicateOutput(t *testing.T) {
	m := NewMerger()
	out := `{"custom_id":"a","response":{"status_code":500,"body":{"error":{"type":"server_error","code":null}}},"error":null}
{"custom_id":"a","response":{"status_code":200,"body":{}},"error":null}
`
	m.AddOutput("out", strings.NewReader(out))
	var res strings.Builder
	s, _ := m.Merge(&sliceInput{lines: []InputLine{{CustomID: "a"}}}, MergeOptions{Out: &res})
	if s.Duplicates != 1 || s.Succeeded != 1 || strings.Count(res.String(), "\n") != 1 {
		t.Errorf("summary %+v, out %q", s, res.String())
	}
}

// readLines tolerates BOM, CRLF, blank lines and very long lines.
func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", 600<<10)
	src := "\xEF\xBB\xBFa\r\n\r\n   \r\nb \t\r\n" + long + "\nc"
	var got []string
	var nums []int
	readLines(strings.NewReader(src), func(n int, b []byte) error {
		got = append(got, string(b))
		nums = append(nums, n)
		return nil
	})
	if len(got) != 4 || got[0] != "a" || got[1] != "b" || got[2] != long || got[3] != "c" {
		t.Errorf("lines = %d %q", len(got), got[:2])
	}
	if len(nums) != 4 || nums[1] != 4 || nums[3] != 6 {
		t.Errorf("line numbers = %v, want [1 4 5 6]", nums)
	}
}

type sliceInput struct {
	lines []InputLine
	i     int
}

func (s *sliceInput) Next() (InputLine, error) {
	if s.i >= len(s.lines) {
		return InputLine{}, errEOF
	}
	s.i++
	return s.lines[s.i-1], nil
}
func (s *sliceInput) Close() error { return nil }

var errEOF = io.EOF

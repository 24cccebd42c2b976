package batch

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/extsort"
)

// TestMergeOnDisk: with the join sorted on disk in runs of 5 records, a
// shuffled output of 300 requests (split over an output and an error file,
// with duplicates, ids in no input, ids missing, an id repeated in the
// input) comes out in input order, one line per input request, and the
// temporary files are gone.
func TestMergeOnDisk(t *testing.T) {
	defer func(n int) { extsort.DefaultRunRecords = n }(extsort.DefaultRunRecords)
	extsort.DefaultRunRecords = 5
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 300
	var outs, errs []string
	for i := 0; i < n; i++ {
		switch {
		case i%50 == 7: // missing
		case i%10 == 3:
			errs = append(errs, fmt.Sprintf(`{"id":"e%d","custom_id":"r%d","response":{"status_code":500,"body":{"error":{"type":"server_error","code":"server_error"}}},"error":null}`, i, i))
		default:
			outs = append(outs, fmt.Sprintf(`{"id":"o%d","custom_id":"r%d","response":{"status_code":200,"body":{"model":"gpt-4o-mini","usage":{"prompt_tokens":10,"completion_tokens":%d}}},"error":null}`, i, i, i))
		}
	}
	// r3 failed in the error file, then succeeded: the success wins.
	outs = append(outs, `{"id":"o3b","custom_id":"r3","response":{"status_code":200,"body":{"model":"gpt-4o-mini","usage":{"prompt_tokens":10,"completion_tokens":3}}},"error":null}`)
	outs = append(outs, `{"id":"x1","custom_id":"stranger1","response":{"status_code":200,"body":{}},"error":null}`,
		`{"id":"x2","custom_id":"stranger2","response":{"status_code":200,"body":{}},"error":null}`)
	rng.Shuffle(len(outs), func(i, j int) { outs[i], outs[j] = outs[j], outs[i] })
	dir := t.TempDir()
	m := NewMerger()
	m.Dir = dir
	if err := m.AddOutput("errors.jsonl", strings.NewReader(strings.Join(errs, "\n")+"\n")); err != nil {
		t.Fatal(err)
	}
	if err := m.AddOutput("output.jsonl", strings.NewReader(strings.Join(outs, "\n")+"\n")); err != nil {
		t.Fatal(err)
	}
	in := &sliceInput{}
	for i := 0; i < n; i++ {
		in.lines = append(in.lines, InputLine{CustomID: fmt.Sprintf("r%d", i), Raw: []byte(fmt.Sprintf(`{"custom_id":"r%d"}`, i)), Shard: i / 100})
	}
	in.lines = append(in.lines, InputLine{CustomID: "r1", Raw: []byte(`{"custom_id":"r1","again":true}`)})
	var res, failed, um strings.Builder
	s, err := m.Merge(in, MergeOptions{Out: &res, Failed: &failed, Unmatched: &um,
		Missing: func(shard int) (string, string) { return CodeBatchExpired, fmt.Sprintf("shard %d expired", shard) }})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(res.String(), "\n"), "\n")
	if len(lines) != n+1 || s.Requests != n+1 {
		t.Fatalf("%d lines, %d requests", len(lines), s.Requests)
	}
	for i := 0; i < n; i++ {
		l := lines[i]
		if !strings.Contains(l, fmt.Sprintf(`"custom_id":"r%d"`, i)) {
			t.Fatalf("line %d: %s", i, l)
		}
		switch {
		case i == 3:
			if !strings.Contains(l, `"id":"o3b"`) {
				t.Errorf("r3: the success should win: %s", l)
			}
		case i%50 == 7:
			if !strings.Contains(l, `"code":"batch_expired"`) || !strings.Contains(l, fmt.Sprintf("shard %d expired", i/100)) {
				t.Errorf("missing r%d: %s", i, l)
			}
		case i%10 == 3:
			if !strings.Contains(l, fmt.Sprintf(`"id":"e%d"`, i)) {
				t.Errorf("r%d: %s", i, l)
			}
		default:
			if !strings.Contains(l, fmt.Sprintf(`"id":"o%d"`, i)) {
				t.Errorf("r%d: %s", i, l)
			}
		}
	}
	if !strings.Contains(lines[n], `"custom_id":"r1"`) || !strings.Contains(lines[n], "repeated in the input") {
		t.Errorf("repeated input id: %s", lines[n])
	}
	nMissing, nErr := 6, 0
	for i := 0; i < n; i++ {
		if i%50 != 7 && i%10 == 3 && i != 3 {
			nErr++
		}
	}
	if s.Succeeded != n-nMissing-nErr || s.Synthesized != nMissing+1 || s.Duplicates != 1 || s.Unmatched != 2 {
		t.Errorf("summary %+v", s)
	}
	if strings.Join(s.UnmatchedIDs, ",") == "" || strings.Count(um.String(), "\n") != 2 {
		t.Errorf("unmatched %v:\n%s", s.UnmatchedIDs, um.String())
	}
	if got := strings.Count(failed.String(), "\n"); got != nMissing+nErr+1 {
		t.Errorf("%d failed lines, want %d", got, nMissing+nErr+1)
	}
	if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], `custom_id "r3" appears again (first at errors.jsonl:`) {
		t.Errorf("warnings %q", m.Warnings)
	}
	var wantTokens int64
	for i := 0; i < n; i++ {
		if i%50 != 7 && i%10 != 3 {
			wantTokens += int64(i)
		}
	}
	if s.CompletionTokens != wantTokens+3 {
		t.Errorf("completion tokens %d, want %d", s.CompletionTokens, wantTokens+3)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}
}

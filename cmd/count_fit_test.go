package cmd

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/oairl/oairl/internal/iostreams"
)

// runCountWidth runs `oairl count` on a terminal of cols columns.
func runCountWidth(t *testing.T, cols int, args ...string) countResult {
	t.Helper()
	ios, _, out, errOut := iostreams.Test()
	ios.SetStdoutTTY(true)
	ios.SetTermWidth(cols)
	f := NewFactory(ios, func(string) string { return "" }, "test")
	code := run(f, context.Background(), args)
	return countResult{code, out.String(), errOut.String()}
}

// Issue 14 §7: the count table fits the terminal (98–109 columns wrapped
// in 80 before): headers shorten, then columns drop.
func TestCountTableFitsTerminal(t *testing.T) {
	countInRepoRoot(t)
	for _, tc := range []struct {
		cols       int
		want, lose []string
	}{
		{200, []string{"PROMPT TOKENS", "ENCODING", "BATCH USD", "QUOTA MIN"}, nil},
		{80, []string{"PROMPT", "BATCH $", "MIN"}, []string{"PROMPT TOKENS"}},
		{60, []string{"PROMPT", "COST $"}, []string{"ENCODING", "o200k_base"}},
	} {
		r := runCountWidth(t, tc.cols, "count", "testdata/requests.jsonl", "--tier", "1")
		table := r.out[:strings.Index(r.out, "\n\n")]
		for _, l := range strings.Split(table, "\n") {
			if n := utf8.RuneCountInString(strings.TrimRight(l, " ")); n > tc.cols && tc.cols >= 60 {
				t.Errorf("%d columns: line is %d wide: %q", tc.cols, n, l)
			}
		}
		for _, w := range tc.want {
			if !strings.Contains(table, w) {
				t.Errorf("%d columns: no %q in\n%s", tc.cols, w, table)
			}
		}
		for _, w := range tc.lose {
			if strings.Contains(table, w) {
				t.Errorf("%d columns: %q kept in\n%s", tc.cols, w, table)
			}
		}
	}
}

// Issue 14 §7: --max-problems 0 lists every problem, with no "… and N
// more" line and no folding of repeated codes.
func TestCountMaxProblemsZeroListsAll(t *testing.T) {
	countInRepoRoot(t)
	r := runCount(t, true, "", nil, "count", "testdata/requests.jsonl", "--max-problems", "0")
	if strings.Contains(r.errOut, "more") {
		t.Errorf("--max-problems 0 still folds:\n%s", r.errOut)
	}
	if n := strings.Count(r.errOut, "[estimated]"); n != 9 {
		t.Errorf("%d estimated notes listed, want all 9:\n%s", n, r.errOut)
	}
}

// Issue 14 §7: one rounding for cost: TSV and JSON give the same figure.
func TestCountCostOneRounding(t *testing.T) {
	countInRepoRoot(t)
	tsv := runCount(t, false, "", nil, "count", "testdata/requests.jsonl")
	js := runCount(t, false, "", nil, "count", "testdata/requests.jsonl", "--json")
	var doc struct {
		ByModel []struct {
			Model string `json:"model"`
			Cost  struct {
				Standard float64 `json:"standard"`
				Batch    float64 `json:"batch"`
			} `json:"cost_usd"`
		} `json:"by_model"`
	}
	if err := json.Unmarshal([]byte(js.out), &doc); err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(tsv.out), "\n") {
		c := strings.Split(l, "\t")
		rows[c[0]] = c
	}
	for _, m := range doc.ByModel {
		c := rows[m.Model]
		for i, v := range []float64{m.Cost.Standard, m.Cost.Batch} {
			got, err := strconv.ParseFloat(c[6+i], 64)
			if err != nil || got != v {
				t.Errorf("%s: TSV cost %q, JSON %v", m.Model, c[6+i], v)
			}
		}
	}
}

// Issue 14 §7: singular nouns, and no "0 requests the API would reject"
// for a file-level error.
func TestCountWording(t *testing.T) {
	countWriteFixture(t, map[string]string{
		"one.jsonl":   `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}}` + "\n",
		"empty.jsonl": "",
	})
	r := runCount(t, true, "", nil, "count", "one.jsonl")
	if !strings.Contains(r.out, "1 request, 1 valid") {
		t.Errorf("singular: %s", r.out)
	}
	r = runCount(t, true, "", nil, "count", "empty.jsonl")
	if strings.Contains(r.errOut, "0 requests") || !strings.Contains(r.errOut, "the API would reject the file") {
		t.Errorf("empty file: %s", r.errOut)
	}
}

package cmd

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/iostreams"
	"github.com/oairl/oairl/tokens"
)

// countResult is one run of 'oairl count' through the real entry point.
type countResult struct {
	code        int
	out, errOut string
}

func (r countResult) String() string {
	return fmt.Sprintf("-- stdout --\n%s-- stderr --\n%s-- exit %d --\n", r.out, r.errOut, r.code)
}

// golden is the result for a golden file: the wording of problems that
// package tokens owns is replaced by "(tokens message)", so a rewording
// there does not break these files (its own tests pin its messages); the
// code, location, severity and order stay pinned here.
func (r countResult) golden() string {
	return countNormalizeTokensMessages(r.String())
}

var (
	countTextProblem  = regexp.MustCompile(`(?m)^(\S+?: (?:custom_id "(?:[^"\\]|\\.)*": )?(?:warning: |note: )?).*( \[([a-z0-9_]+)\])$`)
	countJSONProblem  = regexp.MustCompile(`("code": "([a-z0-9_]+)",\n\s*"message": )"(?:[^"\\]|\\.)*"`)
	countJSONLProblem = regexp.MustCompile(`("code":"([a-z0-9_]+)","message":)"(?:[^"\\]|\\.)*"`)
)

func countTokensOwned(code string) bool {
	for _, c := range input.Codes {
		if c.Code == code {
			return false
		}
	}
	_, ok := tokens.CodeSeverity[code]
	return ok
}

func countNormalizeTokensMessages(s string) string {
	s = countTextProblem.ReplaceAllStringFunc(s, func(m string) string {
		g := countTextProblem.FindStringSubmatch(m)
		if !countTokensOwned(g[3]) {
			return m
		}
		return g[1] + "(tokens message)" + g[2]
	})
	for _, re := range []*regexp.Regexp{countJSONProblem, countJSONLProblem} {
		s = re.ReplaceAllStringFunc(s, func(m string) string {
			g := re.FindStringSubmatch(m)
			if !countTokensOwned(g[2]) {
				return m
			}
			return g[1] + `"(tokens message)"`
		})
	}
	return s
}

// runCount runs `oairl ARGS` with stdout a TTY or not, stdin, and env.
func runCount(t *testing.T, tty bool, stdin string, env map[string]string, args ...string) countResult {
	t.Helper()
	ios, in, out, errOut := iostreams.Test()
	in.WriteString(stdin)
	ios.SetStdoutTTY(tty)
	f := NewFactory(ios, func(k string) string { return env[k] }, "test")
	code := run(f, context.Background(), args)
	return countResult{code, out.String(), errOut.String()}
}

// inRepoRoot makes the repository root the working directory, so file
// names in the output are the ones README shows.
func countInRepoRoot(t *testing.T) {
	t.Helper()
	t.Chdir("..")
	if _, err := os.Stat("testdata/requests.jsonl"); err != nil {
		t.Fatal(err)
	}
}

// writeFixture writes files into a temp dir and makes it the working directory.
func countWriteFixture(t *testing.T, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
}

// countProblemsFile has one line for most kinds of fault (a realistic file gone wrong).
const countProblemsFile = `{"custom_id": "ok-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Name three primary colors."}], "max_completion_tokens": 50}}
{"custom_id": "ok-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Name a noble gas."}], "max_completion_tokens": 50}}
{"custom_id": "", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 7 times 8?"}], "max_completion_tokens": 50}}
{"custom_id": "nov1", "method": "POST", "url": "/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Spell banana backwards."}], "max_completion_tokens": 50}}

{"custom_id": "reason-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "o3-mini", "messages": [{"role": "user", "content": "List two uses of copper."}], "max_tokens": 2000}}
{"custom_id": "stream-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": true, "max_completion_tokens": 50}}
{"custom_id": "huge-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}], "max_tokens": 32000}}
{"custom_id": "nobudget-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Name a river."}]}}
{"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [}}
[{"custom_id": "arr-1"}, {"custom_id": "arr-2"}]
`

// TestCountTable: the README command, on a terminal, with a tier.
func TestCountTable(t *testing.T) {
	countInRepoRoot(t)
	assertGolden(t, runCount(t, true, "", nil, "count", "testdata/requests.jsonl", "--tier", "1").golden())
}

// TestCountPiped: the same off a terminal: tab-separated rows, raw integers.
func TestCountPiped(t *testing.T) {
	countInRepoRoot(t)
	r := runCount(t, false, "", nil, "count", "testdata/requests.jsonl", "--tier", "1")
	assertGolden(t, r.golden())
	for _, l := range strings.Split(strings.TrimSpace(r.out), "\n") {
		if n := len(strings.Split(l, "\t")); n != 9 {
			t.Errorf("row has %d columns, want 9: %q", n, l)
		}
		if strings.Contains(l, ",") || strings.Contains(l, "$") {
			t.Errorf("row is not raw: %q", l)
		}
	}
}

func TestCountJSON(t *testing.T) {
	countInRepoRoot(t)
	r := runCount(t, false, "", nil, "count", "--json", "testdata/requests.jsonl", "testdata/embeddings.jsonl", "--tier", "1")
	assertGolden(t, r.golden())
}

// TestCountProblems: every kind of fault in one file, table on a terminal.
func TestCountProblems(t *testing.T) {
	countWriteFixture(t, map[string]string{"batch.jsonl": countProblemsFile})
	r := runCount(t, true, "", nil, "count", "batch.jsonl", "--tpm", "30000")
	assertGolden(t, r.golden())
	if r.code != exitcode.Input {
		t.Errorf("exit %d, want %d", r.code, exitcode.Input)
	}
}

func TestCountProblemsJSONL(t *testing.T) {
	countWriteFixture(t, map[string]string{"batch.jsonl": countProblemsFile})
	r := runCount(t, false, "", nil, "count", "batch.jsonl", "--format", "jsonl", "--tpm", "30000")
	assertGolden(t, r.golden())
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 10 {
		t.Fatalf("%d jsonl lines, want 10 (one per non-blank line)", len(lines))
	}
	prev := 0
	for _, l := range lines {
		var v struct{ Line int }
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		if v.Line <= prev {
			t.Errorf("line %d after %d: not in input order", v.Line, prev)
		}
		prev = v.Line
	}
}

func countKeys(m map[string]any) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func countWantKeys(t *testing.T, what string, m any, want string) {
	t.Helper()
	mm, ok := m.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, not an object", what, m)
	}
	got := strings.Join(countKeys(mm), ",")
	w := strings.Split(want, ",")
	sort.Strings(w)
	if got != strings.Join(w, ",") {
		t.Errorf("%s fields:\n got %s\nwant %s", what, got, strings.Join(w, ","))
	}
}

// TestCountJSONFields pins the documented JSON and JSONL schemas: scripts
// depend on them (and bench/count.sh on the JSONL one).
func TestCountJSONFields(t *testing.T) {
	countWriteFixture(t, map[string]string{"batch.jsonl": countProblemsFile})
	r := runCount(t, false, "", nil, "count", "batch.jsonl", "--json", "--tier", "1")
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	countWantKeys(t, "document", doc, "schema_version,requests,valid_requests,prompt_tokens,output_budget,tpm_charge,cost_usd,by_model,quota,problems,problems_total,errors,warnings,problems_by_code,assumptions")
	countWantKeys(t, "cost_usd", doc["cost_usd"], "standard,batch")
	bm := doc["by_model"].([]any)
	countWantKeys(t, "by_model[]", bm[0], "model,encoding,requests,prompt_tokens,output_budget,tpm_charge,cost_usd,quota")
	countWantKeys(t, "by_model[].quota", bm[0].(map[string]any)["quota"], "rpm,tpm,minutes,binding")
	// Under --tier the top-level quota has no rpm/tpm (each model's are in
	// by_model[].quota); with --rpm/--tpm it has them.
	countWantKeys(t, "quota", doc["quota"], "tier,minutes")
	countWantKeys(t, "problems[]", doc["problems"].([]any)[0], "file,line,custom_id,severity,code,message")

	r = runCount(t, false, "", nil, "count", "batch.jsonl", "--json", "--rpm", "100", "--tpm", "5000")
	doc = nil
	_ = json.Unmarshal([]byte(r.out), &doc)
	countWantKeys(t, "quota (--rpm/--tpm)", doc["quota"], "tier,rpm,tpm,minutes")

	// Without limits there is no quota anywhere.
	r = runCount(t, false, "", nil, "count", "batch.jsonl", "--json")
	doc = nil
	_ = json.Unmarshal([]byte(r.out), &doc)
	if _, ok := doc["quota"]; ok {
		t.Errorf("quota present without limits")
	}
	if _, ok := doc["by_model"].([]any)[0].(map[string]any)["quota"]; ok {
		t.Errorf("by_model quota present without limits")
	}

	r = runCount(t, false, "", nil, "count", "batch.jsonl", "--format", "jsonl")
	first := strings.SplitN(r.out, "\n", 2)[0]
	var line map[string]any
	if err := json.Unmarshal([]byte(first), &line); err != nil {
		t.Fatal(err)
	}
	countWantKeys(t, "jsonl line", line, "file,line,custom_id,model,encoding,endpoint,prompt_tokens,output_budget,n,tpm_charge,estimated,budget_assumed,valid,problems")
	if _, ok := line["problems"].([]any); !ok {
		t.Errorf("problems is %T, want an array (never null)", line["problems"])
	}
}

// TestCountExitCodes asserts exact exit codes through the real entry point.
func TestCountExitCodes(t *testing.T) {
	valid := `{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 10}}` + "\n"
	warn := "\n" + valid // a blank line: a warning only
	countWriteFixture(t, map[string]string{"valid.jsonl": valid, "warn.jsonl": warn, "bad.jsonl": countProblemsFile})
	cases := []struct {
		args    []string
		want    int
		wantErr string
	}{
		{[]string{"valid.jsonl"}, exitcode.OK, ""},
		{[]string{"warn.jsonl"}, exitcode.OK, "blank_lines"},
		{[]string{"warn.jsonl", "--strict"}, exitcode.Input, "1 warning (--strict)"},
		{[]string{"bad.jsonl"}, exitcode.Input, "the API would reject"},
		{[]string{"bad.jsonl", "--json"}, exitcode.Input, "the API would reject"},
		{[]string{"valid.jsonl", "missing.jsonl"}, exitcode.Failure, "missing.jsonl"},
		// Every file is checked; the exit code is the worst (3 beats 1).
		{[]string{"missing.jsonl", "bad.jsonl"}, exitcode.Input, "missing.jsonl: cannot open"},
		{[]string{"missing.jsonl", "bad.jsonl", "--json"}, exitcode.Input, "1 file could not be read"},
		{[]string{"-", "-"}, exitcode.Usage, "can be given only once"},
		{[]string{}, exitcode.Usage, "requires at least 1 arg"},
		{[]string{"valid.jsonl", "--format", "xml"}, exitcode.Usage, "valid formats are table, json, jsonl"},
		{[]string{"valid.jsonl", "--json", "--format", "jsonl"}, exitcode.Usage, "cannot be combined"},
		{[]string{"valid.jsonl", "--tier", "9"}, exitcode.Usage, "valid tiers are"},
		{[]string{"valid.jsonl", "--tier", "1", "--tpm", "5"}, exitcode.Usage, "cannot be combined"},
		{[]string{"valid.jsonl", "--encoding", "gpt2"}, exitcode.Usage, "valid encodings"},
		{[]string{"valid.jsonl", "--assume-output", "-1"}, exitcode.Usage, "must not be negative"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := runCount(t, false, "", nil, append([]string{"count"}, c.args...)...)
			if r.code != c.want {
				t.Errorf("exit %d, want %d\n%s", r.code, c.want, r)
			}
			if !strings.Contains(r.errOut, c.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", c.wantErr, r.errOut)
			}
		})
	}
}

func TestCountFlags(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want CountOptions
	}{
		{[]string{"a.jsonl"}, nil, CountOptions{Files: []string{"a.jsonl"}, AssumeOutput: 1024, Format: "table", MaxProblems: 20}},
		{[]string{"a.jsonl", "b.jsonl.gz", "--json"}, nil, CountOptions{Files: []string{"a.jsonl", "b.jsonl.gz"}, AssumeOutput: 1024, Format: "json", MaxProblems: 1000}},
		{[]string{"-", "--format", "jsonl", "--model", "gpt-4o", "--assume-output", "0", "--rpm", "500", "--tpm", "30000", "--strict", "--max-problems", "0"}, nil,
			CountOptions{Files: []string{"-"}, Format: "jsonl", Model: "gpt-4o", RPM: 500, TPM: 30000, Strict: true}},
		{[]string{"a.jsonl", "--tier", "Tier2"}, nil, CountOptions{Files: []string{"a.jsonl"}, AssumeOutput: 1024, Format: "table", MaxProblems: 20, Tier: "2"}},
		{[]string{"a.jsonl"}, map[string]string{"OAIRL_TIER": "3"}, CountOptions{Files: []string{"a.jsonl"}, AssumeOutput: 1024, Format: "table", MaxProblems: 20, Tier: "3"}},
		{[]string{"a.jsonl", "--tpm", "100"}, map[string]string{"OAIRL_TIER": "3"}, CountOptions{Files: []string{"a.jsonl"}, AssumeOutput: 1024, Format: "table", MaxProblems: 20, TPM: 100}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			ios, _, _, _ := iostreams.Test()
			f := NewFactory(ios, func(k string) string { return c.env[k] }, "test")
			var got *CountOptions
			cmd := newCountCmd(f, func(o *CountOptions) error { got = o; return nil })
			cmd.SetArgs(c.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			got.IO, got.Registry, got.Getenv = nil, nil, nil
			if !reflect.DeepEqual(*got, c.want) {
				t.Errorf("got %+v\nwant %+v", *got, c.want)
			}
		})
	}
}

// TestCountStdinAndGzip: "-" reads stdin; several files keep their names.
func TestCountStdinAndGzip(t *testing.T) {
	countInRepoRoot(t)
	body := `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 10}` + "\n"
	r := runCount(t, false, body, nil, "count", "--format", "jsonl", "-", "testdata/embeddings.jsonl")
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if r.code != 0 || len(lines) != 10 {
		t.Fatalf("%s", r)
	}
	if !strings.Contains(lines[0], `"file":"-"`) || !strings.Contains(lines[0], `"custom_id":"line-1"`) || !strings.Contains(lines[0], `"endpoint":"/v1/chat/completions"`) {
		t.Errorf("stdin line: %s", lines[0])
	}
}

// jsonlLines runs count --format jsonl and returns the objects by custom_id.
func countJSONLLines(t *testing.T, args ...string) (map[string]map[string]any, countResult) {
	t.Helper()
	r := runCount(t, false, "", nil, append([]string{"count", "--format", "jsonl"}, args...)...)
	out := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(r.out), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		out[v["custom_id"].(string)] = v
	}
	return out, r
}

func countProblemCodes(v map[string]any) []string {
	var out []string
	for _, p := range v["problems"].([]any) {
		out = append(out, p.(map[string]any)["code"].(string))
	}
	return out
}

const countCasesDir = "../internal/input/testdata/cases/"

// Cases from shared/cases through the whole command (exact exit codes).
func TestCountCases(t *testing.T) {
	t.Run("B01", func(t *testing.T) {
		r := runCount(t, false, "", nil, "count", countCasesDir+"B01.jsonl")
		for _, want := range []string{
			`B01.jsonl:3: custom_id "req-1": duplicate custom_id "req-1" (first used on line 1) [duplicate_custom_id]`,
			`B01.jsonl:5: custom_id "req-2": duplicate custom_id "req-2" (first used on line 2) [duplicate_custom_id]`,
			`B01.jsonl:4: custom_id must be a non-empty string [empty_custom_id]`,
		} {
			if !strings.Contains(r.errOut, want) {
				t.Errorf("stderr lacks %q\n%s", want, r.errOut)
			}
		}
		if r.code != exitcode.Input || !strings.HasPrefix(r.out, "gpt-4o-mini\to200k_base\t5\t") {
			t.Errorf("%s", r)
		}
	})
	t.Run("B06", func(t *testing.T) {
		r := runCount(t, false, "", nil, "count", countCasesDir+"B06.jsonl")
		if r.code != exitcode.OK || !strings.HasPrefix(r.out, "gpt-4o-mini\to200k_base\t3\t") || !strings.Contains(r.errOut, "B06.jsonl:3: warning: lines 3, 4, 6: blank, ignored [blank_lines]") {
			t.Errorf("%s", r)
		}
		if r := runCount(t, false, "", nil, "count", countCasesDir+"B06.jsonl", "--strict"); r.code != exitcode.Input {
			t.Errorf("--strict: %s", r)
		}
	})
	t.Run("B08", func(t *testing.T) {
		r := runCount(t, false, "", nil, "count", countCasesDir+"B08.jsonl")
		for _, want := range []string{
			"B08.jsonl:2: line is a JSON array (2 items); JSONL needs one request object per line [not_an_object]",
			"B08.jsonl:3: line is a JSON string, expected an object [not_an_object]",
			"B08.jsonl:4: line is null, expected an object [not_an_object]",
			`B08.jsonl:5: custom_id "p5": unexpected end of line inside an object — the file looks pretty-printed (one object spread over lines 5–18); write one object per line [pretty_printed]`,
		} {
			if !strings.Contains(r.errOut, want) {
				t.Errorf("stderr lacks %q\n%s", want, r.errOut)
			}
		}
		if strings.Count(r.errOut, "pretty_printed") != 1 || r.code != exitcode.Input {
			t.Errorf("%s", r)
		}
	})
	t.Run("B19", func(t *testing.T) {
		r := runCount(t, false, "", nil, "count", countCasesDir+"B19.jsonl", "--tpm", "30000")
		if r.code != exitcode.Input {
			t.Errorf("exit %d", r.code)
		}
		want := `B19.jsonl:1: custom_id "big1": big1 needs ~32,017 rate-limit tokens per request (prompt ~17 + max_tokens 32,000) which exceeds --tpm 30,000; it can never be sent. Lower max_tokens or raise the limit [request_too_large]`
		if !strings.Contains(r.errOut, want) {
			t.Errorf("stderr lacks %q\n%s", want, r.errOut)
		}
		if strings.Contains(r.errOut, "small1") {
			t.Errorf("small1 fits: %s", r.errOut)
		}
	})
	t.Run("B24", func(t *testing.T) {
		lines, r := countJSONLLines(t, countCasesDir+"B24.jsonl")
		want := map[string]string{
			"m01": "o200k_base", "m02": "o200k_base", "m03": "o200k_base", "m04": "o200k_base", "m05": "o200k_base",
			"m06": "o200k_base", "m07": "o200k_base", "m08": "o200k_base", "m09": "o200k_base", "m10": "o200k_base",
			"m11": "o200k_base", "m12": "o200k_base", "m13": "cl100k_base", "m14": "cl100k_base", "m15": "cl100k_base",
			"m16": "o200k_base", "emb1": "cl100k_base",
		}
		for id, enc := range want {
			if got := lines[id]["encoding"]; got != enc {
				t.Errorf("%s: encoding %v, want %s", id, got, enc)
			}
		}
		if len(lines) != 18 {
			t.Errorf("%d lines\n%s", len(lines), r)
		}
		// my-custom-model: no encoding known → said so (unknown_model, with
		// the --encoding remedy), counted as an estimate, never a silent 0.
		m17 := lines["m17"]
		if m17["prompt_tokens"].(float64) == 0 || m17["estimated"] != true || !strings.Contains(fmt.Sprint(m17["problems"]), "--encoding") {
			t.Errorf("m17: %v", m17)
		}
		if lines["m09"]["prompt_tokens"].(float64) == 0 {
			t.Errorf("m09 counted 0")
		}
	})
	t.Run("B25", func(t *testing.T) {
		lines, r := countJSONLLines(t, countCasesDir+"B25.jsonl")
		if r.code != exitcode.OK {
			t.Errorf("exit %d: %s", r.code, r)
		}
		// Figures measured independently in shared/cases/CASES.md (B25).
		for id, want := range map[string]float64{"line-1": 25, "line-2": 32, "line-3": 36} {
			if got := lines[id]["prompt_tokens"]; got != want {
				t.Errorf("%s: prompt_tokens %v, want %v", id, got, want)
			}
		}
	})
	t.Run("B29", func(t *testing.T) {
		lines, _ := countJSONLLines(t, countCasesDir+"B29.jsonl")
		has := func(id, code string) bool {
			for _, c := range countProblemCodes(lines[id]) {
				if c == code {
					return true
				}
			}
			return false
		}
		for _, c := range []struct{ id, code string }{
			{"r1", "max_tokens_on_reasoning_model"}, {"r3", "conflicting_output_budget"},
			{"r5", "small_reasoning_budget"}, {"r6", "no_output_budget"},
		} {
			if !has(c.id, c.code) {
				t.Errorf("%s lacks %s: %v", c.id, c.code, countProblemCodes(lines[c.id]))
			}
		}
		// r4: the output reservation counts toward TPM (prompt + 16,000).
		r4 := lines["r4"]
		if r4["tpm_charge"].(float64) != r4["prompt_tokens"].(float64)+16000 || r4["output_budget"].(float64) != 16000 {
			t.Errorf("r4: %v", r4)
		}
		if r6 := lines["r6"]; r6["budget_assumed"] != true || r6["output_budget"].(float64) != 1024 {
			t.Errorf("r6: %v", r6)
		}
	})
}

// TestCountInterrupted: Ctrl-C (the command's context cancelled) → 130.
func TestCountInterrupted(t *testing.T) {
	countInRepoRoot(t)
	ios, _, out, errOut := iostreams.Test()
	f := NewFactory(ios, func(string) string { return "" }, "test")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code := run(f, ctx, []string{"count", "testdata/requests.jsonl"}); code != exitcode.Interrupted {
		t.Errorf("exit %d, want %d\n%s%s", code, exitcode.Interrupted, out, errOut)
	}
}

// TestCountProgressOnlyOnStderr: with stderr a terminal the bar is drawn
// there (for inputs of 4 MB and more); stdout carries only data.
func TestCountProgressOnlyOnStderr(t *testing.T) {
	var b strings.Builder
	line := `{"custom_id": "r%d", "method": "POST", "url": "/v1/embeddings", "body": {"model": "text-embedding-3-small", "input": "%s"}}` + "\n"
	for i := 0; b.Len() < 5<<20; i++ {
		fmt.Fprintf(&b, line, i, strings.Repeat("x", 2000))
	}
	countWriteFixture(t, map[string]string{"big.jsonl": b.String()})
	ios, _, out, errOut := iostreams.Test()
	ios.SetStderrTTY(true)
	f := NewFactory(ios, func(string) string { return "" }, "test")
	if code := run(f, context.Background(), []string{"count", "big.jsonl"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Count(out.String(), "\n") != 2 || strings.Contains(out.String(), "counting") {
		t.Errorf("stdout is not just the two rows: %q", out.String())
	}
	if !strings.Contains(errOut.String(), "counting") {
		t.Errorf("no progress bar on the terminal stderr: %q", errOut.String())
	}
}

// TestCountEnqueuedLimit: with --tier, a file whose tokens for one model
// exceed that tier's Batch enqueued-token limit (gpt-4o tier 1: 90,000,
// models.json) gets an over_enqueued_limit warning; tier 2 does not.
func TestCountEnqueuedLimit(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, `{"custom_id": "r%d", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Write a long essay."}], "max_completion_tokens": 16000}}`+"\n", i)
	}
	countWriteFixture(t, map[string]string{"q.jsonl": b.String()})
	r := runCount(t, false, "", nil, "count", "q.jsonl", "--tier", "1")
	if r.code != exitcode.OK || !strings.Contains(r.errOut, "q.jsonl: warning: gpt-4o requests need ~96,") || !strings.Contains(r.errOut, "over the tier 1 Batch queue limit of 90,000 for gpt-4o") {
		t.Errorf("%s", r)
	}
	if r := runCount(t, false, "", nil, "count", "q.jsonl", "--tier", "2"); strings.Contains(r.errOut, "over_enqueued_limit") {
		t.Errorf("tier 2: %s", r)
	}
	if r := runCount(t, false, "", nil, "count", "q.jsonl", "--tier", "1", "--strict"); r.code != exitcode.Input {
		t.Errorf("--strict: %s", r)
	}
}

// TestCountLongContextTier (defect 3): a gpt-4.1 prompt above 128k tokens
// is checked against the tier's long-context bucket (tier 1: 200,000 TPM,
// 2,000,000 Batch queue), not the standard 30,000 TPM.
func TestCountLongContextTier(t *testing.T) {
	long := `{"custom_id": "g%d", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4.1", "max_tokens": 1000, "messages": [{"role": "user", "content": "` +
		strings.Repeat("hello ", 150_000) + `"}]}}` + "\n"
	short := `{"custom_id": "s1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4.1", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}}` + "\n"
	var file strings.Builder
	for i := 0; i < 14; i++ { // 14 × ~151k = ~2.1M enqueued: over the 2M long-context queue
		fmt.Fprintf(&file, long, i)
	}
	file.WriteString(short)
	countWriteFixture(t, map[string]string{"one.jsonl": fmt.Sprintf(long, 0), "many.jsonl": file.String()})
	r := runCount(t, false, "", nil, "count", "one.jsonl", "--tier", "1", "--json")
	if r.code != exitcode.OK || strings.Contains(r.out, "request_too_large") {
		t.Fatalf("one long-context request: %s", r)
	}
	var doc struct {
		ByModel []struct {
			Quota struct {
				TPM         int64
				Minutes     float64
				Binding     string
				LongContext *struct {
					RPM, TPM int64
					Minutes  float64
				} `json:"long_context"`
			}
		} `json:"by_model"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatal(err)
	}
	q := doc.ByModel[0].Quota
	if q.LongContext == nil || q.LongContext.TPM != 200_000 || q.Binding != "long_context_tpm" || q.Minutes < 0.75 || q.Minutes > 0.76 {
		t.Errorf("quota %+v %+v", q, q.LongContext)
	}
	r = runCount(t, false, "", nil, "count", "many.jsonl", "--tier", "1")
	if !strings.Contains(r.errOut, "long-context") || !strings.Contains(r.errOut, "2,000,000") || strings.Contains(r.errOut, "request_too_large") {
		t.Errorf("enqueued: %s", r)
	}
	// The standard bucket still applies to short prompts: --tpm as a check.
	r = runCount(t, false, "", nil, "count", "one.jsonl", "--tpm", "30000")
	if !strings.Contains(r.errOut, "request_too_large") {
		t.Errorf("--tpm 30000: %s", r)
	}
}

// TestCountUnknownModelCost (defect 4): a model without a registry entry
// has unknown cost (null in JSON, "?" on a terminal, empty in TSV), a
// warning, and under --tier a quota note; a model without free-tier
// limits says so.
func TestCountUnknownModelCost(t *testing.T) {
	in := `{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mnii", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}}
{"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}}
`
	countWriteFixture(t, map[string]string{"p.jsonl": in})
	r := runCount(t, false, "", nil, "count", "p.jsonl", "--json", "--tier", "free")
	var doc struct {
		ByModel []struct {
			Model   string
			CostUSD struct{ Standard, Batch *float64 } `json:"cost_usd"`
			Quota   struct {
				Minutes *float64
				Note    string
			}
		} `json:"by_model"`
		Assumptions []string
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatal(err)
	}
	for _, m := range doc.ByModel {
		switch m.Model {
		case "gpt-4o-mnii":
			if m.CostUSD.Standard != nil || m.CostUSD.Batch != nil || m.Quota.Minutes != nil || !strings.Contains(m.Quota.Note, "no published limits") {
				t.Errorf("unknown model: %+v", m)
			}
		case "gpt-4o":
			if m.CostUSD.Standard == nil || *m.CostUSD.Standard == 0 || !strings.Contains(m.Quota.Note, "no published tier free limits for gpt-4o") {
				t.Errorf("gpt-4o: %+v", m)
			}
		}
	}
	if !strings.Contains(r.out, "did you mean gpt-4o-mini?") || !strings.Contains(strings.Join(doc.Assumptions, "\n"), "cost unknown for 1 request") {
		t.Errorf("%s", r)
	}
	r = runCount(t, true, "", nil, "count", "p.jsonl")
	if !regexp.MustCompile(`gpt-4o-mnii .* \?\s+\?\s*\n`).MatchString(r.out) {
		t.Errorf("table: %s", r)
	}
	r = runCount(t, false, "", nil, "count", "p.jsonl")
	if !strings.Contains(r.out, "gpt-4o-mnii\to200k_base\t1\t8\t10\t18\t\t\n") {
		t.Errorf("tsv: %q", r.out)
	}
}

// TestCountTSVEscapesCells (defect 13): a model name with a tab or newline
// keeps every TSV row one line with the same number of columns.
func TestCountTSVEscapesCells(t *testing.T) {
	in := `{"custom_id":"t\tab","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o\tx\ny\u200b","messages":[{"role":"user","content":"x"}],"max_tokens":3}}` + "\n"
	countWriteFixture(t, map[string]string{"t.jsonl": in})
	r := runCount(t, false, "", nil, "count", "t.jsonl")
	rows := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	if len(rows) != 2 || !strings.HasPrefix(rows[0], `gpt-4o\tx\ny\u{200B}`+"\t") {
		t.Fatalf("%q", r.out)
	}
	for _, row := range rows {
		if n := strings.Count(row, "\t"); n != 7 {
			t.Errorf("%d tabs in %q", n, row)
		}
	}
	r = runCount(t, true, "", nil, "count", "t.jsonl")
	if !strings.Contains(r.out, `gpt-4o\tx\ny\u{200B}`) {
		t.Errorf("table: %s", r)
	}
}

// TestCountUnreadableFiles (defect 23): a corrupt gzip does not hide what
// was read: the JSON document is printed with an unreadable_file problem;
// every file is checked; gzip data named .jsonl is a warning.
func TestCountUnreadableFiles(t *testing.T) {
	ok := `{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}}` + "\n"
	var gz strings.Builder
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.ReplaceAll(ok, `"a"`, `"b"`)))
	zw.Close()
	countWriteFixture(t, map[string]string{"ok.jsonl": ok, "corrupt.jsonl.gz": "\x1f\x8b\x08\x00garbage", "zipped.jsonl": gz.String()})
	r := runCount(t, false, "", nil, "count", "--json", "ok.jsonl", "corrupt.jsonl.gz", "zipped.jsonl")
	var doc struct {
		Requests int
		Problems []input.Problem
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("no JSON document: %v\n%s", err, r)
	}
	var got []string
	for _, p := range doc.Problems {
		got = append(got, fmt.Sprintf("%s:%d:%s:%s", p.File, p.Line, p.Severity, p.Code))
	}
	want := []string{"corrupt.jsonl.gz:0:error:unreadable_file", "zipped.jsonl:0:warning:gzip_without_gz_extension"}
	if doc.Requests != 2 || !reflect.DeepEqual(got, want) || r.code != exitcode.Failure {
		t.Errorf("requests %d, problems %v, want %v\n%s", doc.Requests, got, want, r)
	}
}

// TestCountSharedGroupAndFlex: two models in one shared-limit group need
// the pool's minutes (their charges added), not each model's own; a flex
// request is priced at Batch rates in the standard column too.
func TestCountSharedGroupAndFlex(t *testing.T) {
	line := `{"custom_id": "%s", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "%s", "max_tokens": 9000, "messages": [{"role": "user", "content": "hi"}]%s}}` + "\n"
	file := fmt.Sprintf(line, "a", "gpt-4o", "") + fmt.Sprintf(line, "b", "gpt-4.1", "")
	flexFile := fmt.Sprintf(line, "f", "gpt-4o", `, "service_tier": "flex"`)
	group := `{"shared_limit_groups": [{"id": "pool", "members": ["gpt-4o", "gpt-4.1"], "source": "test", "date": "2026-12-04"}]}`
	countWriteFixture(t, map[string]string{"two.jsonl": file, "flex.jsonl": flexFile, "groups.json": group})
	type doc struct {
		ByModel []struct {
			Model   string
			CostUSD struct{ Standard, Batch float64 } `json:"cost_usd"`
			Quota   struct {
				TPM     int64
				Minutes float64
				Group   string `json:"shared_limit_group"`
			}
		} `json:"by_model"`
		Assumptions []string
	}
	parse := func(r countResult) doc {
		t.Helper()
		var d doc
		if err := json.Unmarshal([]byte(r.out), &d); err != nil {
			t.Fatalf("%v\n%s", err, r)
		}
		return d
	}
	alone := parse(runCount(t, false, "", nil, "count", "two.jsonl", "--tier", "1", "--json"))
	pooled := parse(runCount(t, false, "", nil, "count", "two.jsonl", "--tier", "1", "--json", "--models", "groups.json"))
	for i := range pooled.ByModel {
		a, p := alone.ByModel[i].Quota, pooled.ByModel[i].Quota
		if a.Group != "" || p.Group != "pool" {
			t.Errorf("group %q / %q", a.Group, p.Group)
		}
		// Both at tier 1 have 30,000 TPM; pooled, the two charges add up.
		if p.TPM != 30000 || p.Minutes < 2*a.Minutes*0.99 || p.Minutes > 2*a.Minutes*1.01 {
			t.Errorf("%s: pooled %+v vs alone %+v", pooled.ByModel[i].Model, p, a)
		}
	}
	std := parse(runCount(t, false, "", nil, "count", "two.jsonl", "--json"))
	flex := parse(runCount(t, false, "", nil, "count", "flex.jsonl", "--json"))
	s, f := std.ByModel[0].CostUSD, flex.ByModel[0].CostUSD
	if s.Standard <= s.Batch || f.Standard != f.Batch || f.Batch != s.Batch {
		t.Errorf("costs standard %+v flex %+v", s, f)
	}
	if !strings.Contains(strings.Join(flex.Assumptions, "\n"), `service_tier "flex"`) {
		t.Errorf("assumptions %q", flex.Assumptions)
	}
}

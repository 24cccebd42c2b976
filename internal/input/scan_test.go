package input

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/tokens"
)

// casesDir holds copies of shared/cases/inputs (the real-world cases).
const casesDir = "testdata/cases"

var testReg = models.Default()

// scanFiles scans files (written into a temp dir from name → content) and
// returns every request, the summary and the error.
func scanFiles(t *testing.T, opts Options, files ...[2]string) ([]*Request, Summary, error) {
	t.Helper()
	dir := t.TempDir()
	var srcs []Source
	for _, f := range files {
		p := filepath.Join(dir, f[0])
		if err := os.WriteFile(p, []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, Source{Name: p})
	}
	return scanSources(t, opts, srcs)
}

func scanSources(t *testing.T, opts Options, srcs []Source) ([]*Request, Summary, error) {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = testReg
	}
	var reqs []*Request
	sum, err := Scan(context.Background(), srcs, opts, func(r *Request) error {
		reqs = append(reqs, r)
		return nil
	})
	return reqs, sum, err
}

func scanOne(t *testing.T, content string) ([]*Request, Summary) {
	t.Helper()
	reqs, sum, err := scanFiles(t, Options{}, [2]string{"in.jsonl", content})
	if err != nil {
		t.Fatal(err)
	}
	return reqs, sum
}

// codes lists "line:code" for every problem of reqs (and file problems).
func codes(reqs []*Request, sum Summary) []string {
	var out []string
	for _, r := range reqs {
		for _, p := range r.Problems {
			out = append(out, fmt.Sprintf("%d:%s", p.Line, p.Code))
		}
	}
	for _, p := range sum.FileProblems {
		out = append(out, fmt.Sprintf("file%d:%s", p.Line, p.Code))
	}
	return out
}

func find(reqs []*Request, sum Summary, code string) *Problem {
	for _, r := range reqs {
		for i := range r.Problems {
			if r.Problems[i].Code == code {
				return &r.Problems[i]
			}
		}
	}
	for i := range sum.FileProblems {
		if sum.FileProblems[i].Code == code {
			return &sum.FileProblems[i]
		}
	}
	return nil
}

const okChat = `{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}}`

func line(id, method, url, body string) string {
	return fmt.Sprintf(`{"custom_id": %s, "method": %s, "url": %s, "body": %s}`, id, method, url, body)
}

const chatBody = `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}`

// TestProblemCodes is the table of every problem code input reports: the
// input, the code, its severity and a fragment of the message.
func TestProblemCodes(t *testing.T) {
	cases := []struct {
		name, in string
		code     string
		sev      Severity
		msg      string
	}{
		{"invalid json", `{"custom_id": "a", x}`, "invalid_json", tokens.Error, "invalid JSON at column 20: invalid character 'x'"},
		{"cut short", `{"custom_id": "a", "method": "POST"`, "invalid_json", tokens.Error, "unexpected end of line inside an object"},
		{"trailing garbage", okChat + ` xyz`, "invalid_json", tokens.Error, "unexpected data after the object"},
		{"two objects", okChat + okChat, "invalid_json", tokens.Error, "two objects on one line, or stray text"},
		{"bare CR", okChat + "\r" + okChat, "invalid_json", tokens.Error, "bare CR"},
		{"nul byte", "{\"custom_id\":\x00}", "invalid_json", tokens.Error, "NUL byte at column 14"},
		{"array", `[1, 2]`, "not_an_object", tokens.Error, "line is a JSON array (2 items); JSONL needs one request object per line"},
		{"string", `"x"`, "not_an_object", tokens.Error, "line is a JSON string, expected an object"},
		{"encoded object", `"{\"custom_id\": \"a\"}"`, "not_an_object", tokens.Error, "encoded twice"},
		{"null", `null`, "not_an_object", tokens.Error, "line is null, expected an object"},
		{"number", `42`, "not_an_object", tokens.Error, "line is a JSON number"},
		{"bool", `true`, "not_an_object", tokens.Error, "line is a JSON boolean"},
		{"bad scalar", `nul`, "invalid_json", tokens.Error, "invalid JSON"},
		{"invalid utf8", line(`"a"`, `"POST"`, `"/v1/chat/completions"`, `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "h`+"\xff"+`i"}]}`), "invalid_utf8", tokens.Error, "invalid UTF-8 at byte 145 of the line"},
		{"missing custom_id", `{"method": "POST", "url": "/v1/chat/completions", "body": ` + chatBody + `}`, "missing_custom_id", tokens.Error, "missing custom_id"},
		{"empty custom_id", line(`""`, `"POST"`, `"/v1/chat/completions"`, chatBody), "empty_custom_id", tokens.Error, "custom_id must be a non-empty string"},
		{"number custom_id", line(`17`, `"POST"`, `"/v1/chat/completions"`, chatBody), "custom_id_not_string", tokens.Error, `got number 17 (write "17")`},
		{"null custom_id", line(`null`, `"POST"`, `"/v1/chat/completions"`, chatBody), "custom_id_not_string", tokens.Error, "got null"},
		{"whitespace custom_id", line(`"a "`, `"POST"`, `"/v1/chat/completions"`, chatBody), "custom_id_lookalike", tokens.Warning, "trailing whitespace"},
		{"blank custom_id", line(`"  "`, `"POST"`, `"/v1/chat/completions"`, chatBody), "custom_id_lookalike", tokens.Warning, "only whitespace"},
		{"missing method", `{"custom_id": "a", "url": "/v1/chat/completions", "body": ` + chatBody + `}`, "missing_method", tokens.Error, `"POST"`},
		{"GET", line(`"a"`, `"GET"`, `"/v1/chat/completions"`, chatBody), "method_not_post", tokens.Error, `method must be "POST"`},
		{"method number", line(`"a"`, `1`, `"/v1/chat/completions"`, chatBody), "method_not_post", tokens.Error, `got number`},
		{"missing url", `{"custom_id": "a", "method": "POST", "body": ` + chatBody + `}`, "missing_url", tokens.Error, "missing url"},
		{"url number", line(`"a"`, `"POST"`, `5`, chatBody), "url_not_string", tokens.Error, "got number"},
		{"absolute url", line(`"a"`, `"POST"`, `"https://api.openai.com/v1/embeddings"`, chatBody), "url_absolute", tokens.Error, `url must be a path such as "/v1/embeddings", not an absolute URL`},
		{"missing v1", line(`"a"`, `"POST"`, `"/chat/completions"`, chatBody), "url_missing_v1", tokens.Error, `url "/chat/completions" must be "/v1/chat/completions" (did you mean it?)`},
		{"query", line(`"a"`, `"POST"`, `"/v1/chat/completions?api-version=2"`, chatBody), "url_query", tokens.Error, "query string"},
		{"trailing slash", line(`"a"`, `"POST"`, `"/v1/chat/completions/"`, chatBody), "url_not_batch_endpoint", tokens.Error, `did you mean "/v1/chat/completions"?`},
		{"unknown url", line(`"a"`, `"POST"`, `"/v1/assistants"`, chatBody), "url_not_batch_endpoint", tokens.Error, "supported: /v1/chat/completions, /v1/responses"},
		{"missing body", `{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"}`, "missing_body", tokens.Error, "missing body"},
		{"body at top level", `{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "model": "gpt-4o", "messages": []}`, "missing_body", tokens.Error, `"model", "messages" are at the top level`},
		{"body string", line(`"a"`, `"POST"`, `"/v1/chat/completions"`, `"hello"`), "body_not_object", tokens.Error, "got string"},
		{"body encoded", line(`"a"`, `"POST"`, `"/v1/chat/completions"`, `"{\"model\": \"gpt-4o\"}"`), "body_not_object", tokens.Error, "encoded JSON"},
		{"body array", line(`"a"`, `"POST"`, `"/v1/chat/completions"`, `[]`), "body_not_object", tokens.Error, "got array"},
		{"unknown field", `{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": ` + chatBody + `, "metadata": {}}`, "unknown_field", tokens.Warning, `unknown member "metadata"`},
		{"duplicate member", `{"custom_id": "a", "method": "POST", "custom_id": "b", "url": "/v1/chat/completions", "body": ` + chatBody + `}`, "duplicate_member", tokens.Warning, `member "custom_id" appears more than once`},
		{"image endpoint", line(`"a"`, `"POST"`, `"/v1/images/generations"`, `{"model": "gpt-image-1", "prompt": "a cat"}`), "not_counted", tokens.Note, "does not count /v1/images/generations"},
		{"bom inside", okChat + "\n\xef\xbb\xbf" + strings.Replace(okChat, `"a"`, `"b"`, 1), "bom_inside", tokens.Error, "byte-order mark"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reqs, sum := scanOne(t, c.in+"\n")
			p := find(reqs, sum, c.code)
			if p == nil {
				t.Fatalf("no %s problem; got %v", c.code, codes(reqs, sum))
			}
			if p.Severity != c.sev {
				t.Errorf("severity %s, want %s", p.Severity, c.sev)
			}
			if !strings.Contains(p.Message, c.msg) {
				t.Errorf("message %q lacks %q", p.Message, c.msg)
			}
			if p.File == "" || p.Line == 0 {
				t.Errorf("problem not located: %+v", p)
			}
		})
	}
}

func TestValidLineHasNoProblems(t *testing.T) {
	reqs, sum := scanOne(t, okChat+"\n")
	if len(reqs) != 1 || len(reqs[0].Problems) != 0 || len(sum.FileProblems) != 0 {
		t.Fatalf("got %v", codes(reqs, sum))
	}
	r := reqs[0]
	if r.CustomID != "a" || r.Method != "POST" || r.URL != "/v1/chat/completions" || r.Model != "gpt-4o-mini" || r.Bare {
		t.Errorf("request %+v", r)
	}
	if string(r.Body) != chatBody {
		t.Errorf("body %q, want the bytes as written", r.Body)
	}
	if string(r.Raw) != okChat {
		t.Errorf("raw %q", r.Raw)
	}
	if r.Resolution.Model == nil || r.Resolution.Model.ID != "gpt-4o-mini" {
		t.Errorf("resolution %+v", r.Resolution)
	}
	if sum.Requests != 1 || sum.Valid != 1 {
		t.Errorf("summary %+v", sum)
	}
}

// Case B01: duplicate and empty custom_id.
func TestCaseB01(t *testing.T) {
	reqs, sum, err := scanSources(t, Options{}, []Source{{Name: filepath.Join(casesDir, "B01.jsonl")}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{
		3: `duplicate custom_id "req-1" (first used on line 1)`,
		5: `duplicate custom_id "req-2" (first used on line 2)`,
		4: `custom_id must be a non-empty string`,
	}
	got := map[int]string{}
	for _, r := range reqs {
		for _, p := range r.Problems {
			if p.Severity == tokens.Error {
				got[p.Line] = p.Message
			}
		}
	}
	for l, m := range want {
		if got[l] != m {
			t.Errorf("line %d: %q, want %q", l, got[l], m)
		}
	}
	if len(got) != len(want) {
		t.Errorf("errors %v", got)
	}
	if sum.Requests != 5 || sum.Valid != 2 {
		t.Errorf("summary %+v", sum)
	}
}

func TestDuplicateAcrossFilesAndLookalikes(t *testing.T) {
	a := line(`"req-1"`, `"POST"`, `"/v1/chat/completions"`, chatBody) + "\n" +
		line(`"Req-1"`, `"POST"`, `"/v1/chat/completions"`, chatBody) + "\n"
	b := line(`"req-1"`, `"POST"`, `"/v1/chat/completions"`, chatBody) + "\n"
	reqs, sum, err := scanFiles(t, Options{}, [2]string{"a.jsonl", a}, [2]string{"b.jsonl", b})
	if err != nil {
		t.Fatal(err)
	}
	if p := find(reqs, sum, "custom_id_lookalike"); p == nil || p.Line != 2 || !strings.Contains(p.Message, "line 1") {
		t.Errorf("lookalike: %+v", p)
	}
	p := find(reqs, sum, "duplicate_custom_id")
	if p == nil || !strings.HasSuffix(p.File, "b.jsonl") || !strings.Contains(p.Message, "a.jsonl:1") {
		t.Errorf("cross-file duplicate: %+v", p)
	}
}

// Case B03: wrong url or method; a line url different from the batch endpoint.
func TestCaseB03(t *testing.T) {
	reqs, sum, err := scanSources(t, Options{}, []Source{{Name: filepath.Join(casesDir, "B03.jsonl")}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{
		2: `url "/chat/completions" must be "/v1/chat/completions" (did you mean it?)`,
		3: `url must be a path such as "/v1/chat/completions", not an absolute URL`,
		4: `method must be "POST"`,
	}
	for l, m := range want {
		r := reqs[l-1]
		if r.Line != l {
			t.Fatalf("request %d has line %d", l, r.Line)
		}
		if len(r.Problems) == 0 || !strings.Contains(r.Problems[0].Message, m) {
			t.Errorf("line %d: %v, want %q", l, r.Problems, m)
		}
	}
	if len(reqs[0].Problems) != 0 {
		t.Errorf("line 1: %v", reqs[0].Problems)
	}
	// Without --endpoint the batch endpoint is line 1's and line 5 is
	// reported against it: an error, not a file-level warning, so count
	// and batch submit refuse the file alike (issue 14 §4).
	if p := find(reqs[4:5], Summary{}, "endpoint_mismatch"); p == nil || p.Severity != tokens.Error ||
		p.Message != `url "/v1/responses" differs from the batch endpoint "/v1/chat/completions" — one endpoint per batch` {
		t.Errorf("line 5 without --endpoint: %+v", reqs[4].Problems)
	}
	for i, r := range reqs {
		if i != 4 && find(reqs[i:i+1], Summary{}, "endpoint_mismatch") != nil {
			t.Errorf("line %d: endpoint_mismatch %v", r.Line, r.Problems)
		}
	}
	for _, p := range sum.FileProblems {
		if strings.Contains(p.Message, "endpoints") {
			t.Errorf("file-level endpoint problem: %+v", p)
		}
	}
	// run (MixedEndpoints) sends each line to its own url: line 5 is fine.
	reqs, sum, err = scanSources(t, Options{MixedEndpoints: true}, []Source{{Name: filepath.Join(casesDir, "B03.jsonl")}})
	if err != nil {
		t.Fatal(err)
	}
	if p := find(reqs, Summary{}, "endpoint_mismatch"); p != nil || len(reqs[4].Problems) != 0 {
		t.Errorf("MixedEndpoints: line 5 %v", reqs[4].Problems)
	}
	for _, p := range sum.FileProblems {
		if strings.Contains(p.Message, "endpoints") {
			t.Errorf("MixedEndpoints: file-level endpoint problem: %+v", p)
		}
	}
	// With an explicit endpoint every line is held to it.
	reqs, _, err = scanSources(t, Options{Endpoint: "/v1/responses"}, []Source{{Name: filepath.Join(casesDir, "B03.jsonl")}})
	if err != nil {
		t.Fatal(err)
	}
	if p := find(reqs[:1], Summary{}, "endpoint_mismatch"); p == nil || !strings.Contains(p.Message, `batch endpoint "/v1/responses"`) {
		t.Errorf("line 1 against --endpoint: %+v", p)
	}
	if p := find(reqs[4:5], Summary{}, "endpoint_mismatch"); p != nil {
		t.Errorf("line 5 matches the endpoint: %+v", p)
	}
}

// Case B06: BOM, CRLF, blank lines, trailing whitespace.
func TestCaseB06(t *testing.T) {
	reqs, sum, err := scanSources(t, Options{}, []Source{{Name: filepath.Join(casesDir, "B06.jsonl")}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range reqs {
		ids = append(ids, fmt.Sprintf("%s@%d", r.CustomID, r.Line))
		if len(r.Problems) != 0 {
			t.Errorf("%s: %v", r.CustomID, r.Problems)
		}
		if bytes.HasSuffix(r.Raw, []byte(" ")) || bytes.HasSuffix(r.Raw, []byte("\r")) || bytes.HasPrefix(r.Raw, bom) {
			t.Errorf("%s: raw not trimmed: %q", r.CustomID, r.Raw)
		}
	}
	if got := strings.Join(ids, " "); got != "w1@1 w2@2 w3@5" {
		t.Errorf("requests %s", got)
	}
	var fp []string
	for _, p := range sum.FileProblems {
		fp = append(fp, fmt.Sprintf("%d:%s:%s:%s", p.Line, p.Severity, p.Code, p.Message))
	}
	want := []string{
		"1:warning:bom:",
		"1:warning:crlf:",
		"3:warning:blank_lines:lines 3, 4, 6: blank, ignored",
	}
	if len(fp) != len(want) {
		t.Fatalf("file problems %q", fp)
	}
	for i := range want {
		if !strings.HasPrefix(fp[i], want[i]) {
			t.Errorf("file problem %q, want %q", fp[i], want[i])
		}
	}
	if sum.Requests != 3 || sum.Valid != 3 {
		t.Errorf("summary %+v", sum)
	}
}

// Case B08: arrays, scalars and a pretty-printed object.
func TestCaseB08(t *testing.T) {
	reqs, sum, err := scanSources(t, Options{}, []Source{{Name: filepath.Join(casesDir, "B08.jsonl")}})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line, end int
		code, msg string
	}{
		{1, 1, "", ""},
		{2, 2, "not_an_object", "line is a JSON array (2 items); JSONL needs one request object per line"},
		{3, 3, "not_an_object", "line is a JSON string, expected an object"},
		{4, 4, "not_an_object", "line is null, expected an object"},
		{5, 18, "pretty_printed", "unexpected end of line inside an object — the file looks pretty-printed (one object spread over lines 5–18); write one object per line"},
	}
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d: %v", len(reqs), len(want), codes(reqs, sum))
	}
	for i, w := range want {
		r := reqs[i]
		if r.Line != w.line || r.EndLine != w.end {
			t.Errorf("request %d: lines %d–%d, want %d–%d", i, r.Line, r.EndLine, w.line, w.end)
		}
		if w.code == "" {
			if len(r.Problems) != 0 {
				t.Errorf("line %d: %v", w.line, r.Problems)
			}
			continue
		}
		if len(r.Problems) != 1 || r.Problems[0].Code != w.code || r.Problems[0].Message != w.msg {
			t.Errorf("line %d: %+v, want %s %q", w.line, r.Problems, w.code, w.msg)
		}
	}
	// The pretty-printed object is still read: its id and body are known.
	if p5 := reqs[4]; p5.CustomID != "p5" || p5.Model != "gpt-4o-mini" || p5.Problems[0].CustomID != "p5" {
		t.Errorf("pretty block %+v", p5)
	}
}

func TestPrettyPrintedEdgeCases(t *testing.T) {
	t.Run("truncated line followed by records", func(t *testing.T) {
		in := `{"custom_id": "a", "method": "POST", "body": {"model": "x"` + "\n" + strings.Replace(okChat, `"a"`, `"b"`, 1) + "\n"
		reqs, sum := scanOne(t, in)
		if len(reqs) != 2 || reqs[1].CustomID != "b" || len(reqs[1].Problems) != 0 {
			t.Fatalf("got %v", codes(reqs, sum))
		}
		if reqs[0].Problems[0].Code != "invalid_json" || !strings.Contains(reqs[0].Problems[0].Message, "cut short") {
			t.Errorf("line 1: %v", reqs[0].Problems)
		}
	})
	t.Run("file ends inside an object", func(t *testing.T) {
		reqs, sum := scanOne(t, okChat+"\n{\n  \"custom_id\": \"x\",\n  \"body\": {\n")
		if len(reqs) != 2 {
			t.Fatalf("got %v", codes(reqs, sum))
		}
		p := reqs[1].Problems
		if len(p) != 1 || p[0].Code != "invalid_json" || !strings.Contains(p[0].Message, "lines 2–4") {
			t.Errorf("got %v", p)
		}
	})
	t.Run("pretty block with a syntax error is located", func(t *testing.T) {
		reqs, sum := scanOne(t, "{\n  \"custom_id\": \"x\",\n  \"body\": {\"a\": 1,}\n}\n")
		if len(reqs) != 1 {
			t.Fatalf("got %v", codes(reqs, sum))
		}
		if p := find(reqs, sum, "invalid_json"); p == nil || !strings.Contains(p.Message, "line 3 column") {
			t.Errorf("got %+v", reqs[0].Problems)
		}
	})
	t.Run("pretty array", func(t *testing.T) {
		reqs, sum := scanOne(t, "[\n  {\"a\": 1},\n  {\"b\": 2}\n]\n")
		if len(reqs) != 1 || find(reqs, sum, "pretty_printed") == nil || find(reqs, sum, "not_an_object") == nil {
			t.Errorf("got %v", codes(reqs, sum))
		}
	})
}

func TestBareBodies(t *testing.T) {
	in := `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
{"model": "text-embedding-3-small", "input": "hello"}
{"model": "gpt-4o", "input": "hello"}
{"model": "gpt-3.5-turbo-instruct", "prompt": "hello"}
{"model": "omni-moderation-latest", "input": "hello"}
{"messages": [{"role": "user", "content": "no model"}]}
`
	reqs, _, err := scanFiles(t, Options{Model: "gpt-4o"}, [2]string{"bare.jsonl", in})
	if err != nil {
		t.Fatal(err)
	}
	wantURL := []string{"/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/completions", "/v1/moderations", "/v1/chat/completions"}
	for i, r := range reqs {
		if !r.Bare || r.CustomID != fmt.Sprintf("line-%d", i+1) || r.URL != wantURL[i] || r.Method != "POST" {
			t.Errorf("line %d: bare=%v id=%q url=%q", i+1, r.Bare, r.CustomID, r.URL)
		}
	}
	last := reqs[5]
	if last.Model != "gpt-4o" || string(last.Body) != `{"model":"gpt-4o","messages": [{"role": "user", "content": "no model"}]}` {
		t.Errorf("--model not applied: %q %s", last.Model, last.Body)
	}
	if last.Problems[0].Code != "model_from_flag" {
		t.Errorf("problems %v", last.Problems)
	}
	if got := string(injectModel([]byte(`{ }`), "m")); got != `{"model":"m" }` {
		t.Errorf("inject into empty object: %s", got)
	}
}

// TestEndpointMismatchBareLines (defect 10): one endpoint per file holds
// for bare bodies too (by their inferred url) in count and batch submit (a
// batch takes one endpoint); run (MixedEndpoints) sends each to its own.
func TestEndpointMismatchBareLines(t *testing.T) {
	in := `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
{"model": "text-embedding-3-small", "input": "hello"}
{"model": "gpt-4o-mini", "input": "hi"}
{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
`
	reqs, _ := scanOne(t, in)
	if reqs[1].URL != "/v1/embeddings" || reqs[2].URL != "/v1/responses" {
		t.Errorf("urls %q %q", reqs[1].URL, reqs[2].URL)
	}
	// Without an endpoint the first line's sets it; with the same
	// endpoint given, the same lines are errors.
	given, _, err := scanFiles(t, Options{Endpoint: "/v1/chat/completions"}, [2]string{"in.jsonl", in})
	if err != nil {
		t.Fatal(err)
	}
	for name, reqs := range map[string][]*Request{"inferred": reqs, "--endpoint": given} {
		for i, want := range []bool{false, true, true, false} {
			p := find(reqs[i:i+1], Summary{}, "endpoint_mismatch")
			if (p != nil) != want {
				t.Errorf("%s: line %d: %+v", name, i+1, p)
			}
			if p != nil && (p.Severity != tokens.Error || !strings.Contains(p.Message, `"/v1/chat/completions"`)) {
				t.Errorf("%s: line %d: %+v", name, i+1, p)
			}
		}
	}
	// run (MixedEndpoints): no endpoint_mismatch.
	mixed, msum, err := scanFiles(t, Options{MixedEndpoints: true}, [2]string{"in.jsonl", in})
	if err != nil || find(mixed, msum, "endpoint_mismatch") != nil {
		t.Errorf("MixedEndpoints: %v %v", err, codes(mixed, msum))
	}
	// Each file has its own endpoint.
	reqs, sum, err := scanFiles(t, Options{}, [2]string{"a.jsonl", `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}` + "\n"},
		[2]string{"b.jsonl", `{"model": "text-embedding-3-small", "input": "hello"}` + "\n"})
	if err != nil || find(reqs, sum, "endpoint_mismatch") != nil {
		t.Errorf("two files: %v %v", err, codes(reqs, sum))
	}
}

// TestAutoIDsUniqueAndChecked (defect 5): bare bodies get "line-N" in the
// first file and "BASE:line-N" in later ones, and auto ids take part in
// the duplicate check.
func TestAutoIDsUniqueAndChecked(t *testing.T) {
	bare := `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}` + "\n"
	reqs, sum, err := scanFiles(t, Options{}, [2]string{"bareA.jsonl", bare}, [2]string{"bareB.jsonl", bare})
	if err != nil {
		t.Fatal(err)
	}
	if reqs[0].CustomID != "line-1" || reqs[1].CustomID != "bareB.jsonl:line-1" || find(reqs, sum, "duplicate_custom_id") != nil {
		t.Errorf("ids %q %q, %v", reqs[0].CustomID, reqs[1].CustomID, codes(reqs, sum))
	}
	in := line(`"line-2"`, `"POST"`, `"/v1/chat/completions"`, chatBody) + "\n" + bare
	reqs, sum = scanOne(t, in)
	p := find(reqs, sum, "duplicate_custom_id")
	if p == nil || p.Line != 2 || !strings.Contains(p.Message, "line 1") {
		t.Errorf("explicit vs auto: %v", codes(reqs, sum))
	}
	// And the other way round: an explicit id equal to an earlier auto id.
	in = bare + line(`"line-1"`, `"POST"`, `"/v1/chat/completions"`, chatBody) + "\n"
	reqs, sum = scanOne(t, in)
	if p := find(reqs, sum, "duplicate_custom_id"); p == nil || p.Line != 2 {
		t.Errorf("auto vs explicit: %v", codes(reqs, sum))
	}
	if got := AutoID([]Source{{Name: "a"}, {Name: "-"}}, 1, 3); got != "stdin:line-3" {
		t.Errorf("stdin auto id %q", got)
	}
}

func TestSeveralModelsAndFileLimits(t *testing.T) {
	in := okChat + "\n" + line(`"b"`, `"POST"`, `"/v1/chat/completions"`, `{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}`) + "\n"
	reqs, sum := scanOne(t, in)
	p := find(reqs, sum, "several_models")
	if p == nil || p.Severity != tokens.Warning || !strings.Contains(p.Message, "gpt-4o-mini ×1, gpt-4o ×1") {
		t.Errorf("several_models: %+v", p)
	}
}

func TestOverBatchRequests(t *testing.T) {
	var b strings.Builder
	for i := 0; i < BatchMaxRequests+2; i++ {
		fmt.Fprintf(&b, `{"custom_id": "r%d", "method": "POST", "url": "/v1/embeddings", "body": {"model": "text-embedding-3-small", "input": "x"}}`+"\n", i)
	}
	reqs, sum := scanOne(t, b.String())
	if len(reqs) != BatchMaxRequests+2 {
		t.Fatalf("%d requests", len(reqs))
	}
	p := find(nil, sum, "over_batch_requests")
	if p == nil || p.Line != BatchMaxRequests+1 || !strings.Contains(p.Message, "50,002 requests") {
		t.Errorf("over_batch_requests: %+v", p)
	}
	for i, r := range reqs {
		if r.Line != i+1 {
			t.Fatalf("request %d has line %d: out of order", i, r.Line)
		}
	}
}

func TestLineTooLarge(t *testing.T) {
	long := `{"custom_id": "big", "method": "POST", "url": "/v1/embeddings", "body": {"model": "text-embedding-3-small", "input": "` + strings.Repeat("a", 5000) + `"}}`
	reqs, _, err := scanFiles(t, Options{MaxLineBytes: 1000}, [2]string{"x.jsonl", okChat + "\n" + long + "\n" + strings.Replace(okChat, `"a"`, `"c"`, 1) + "\n"})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 || reqs[1].Problems[0].Code != "line_too_large" || reqs[2].CustomID != "c" || reqs[2].Line != 3 {
		t.Fatalf("got %v", codes(reqs, Summary{}))
	}
	if len(reqs[1].Raw) > tooLongPrefix {
		t.Errorf("kept %d bytes of a too-long line", len(reqs[1].Raw))
	}
}

func TestSources(t *testing.T) {
	dir := t.TempDir()
	gz := filepath.Join(dir, "a.jsonl.gz")
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(okChat + "\n"))
	zw.Close()
	os.WriteFile(gz, b.Bytes(), 0o644)
	plain := filepath.Join(dir, "b.jsonl")
	os.WriteFile(plain, []byte(strings.Replace(okChat, `"a"`, `"b"`, 1)+"\n"), 0o644)
	stdin := strings.NewReader(strings.Replace(okChat, `"a"`, `"c"`, 1))
	var progress int64
	reqs, sum, err := scanSources(t, Options{Stdin: stdin, Progress: func(n int64) { progress = n }},
		[]Source{{Name: gz}, {Name: "-"}, {Name: plain}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range reqs {
		got = append(got, filepath.Base(r.File)+":"+r.CustomID)
	}
	if strings.Join(got, " ") != "a.jsonl.gz:a -:c b.jsonl:b" {
		t.Errorf("got %v", got)
	}
	if sum.Bytes != int64(3*len(okChat)+2) {
		t.Errorf("bytes %d", sum.Bytes)
	}
	if progress == 0 {
		t.Errorf("progress never reported")
	}

	_, _, err = scanSources(t, Options{}, []Source{{Name: plain}, {Name: filepath.Join(dir, "nope.jsonl")}})
	if err == nil || !strings.Contains(err.Error(), "nope.jsonl") {
		t.Errorf("missing file: %v", err)
	}
	_, _, err = scanSources(t, Options{}, []Source{{Name: dir}})
	if err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
	bad := filepath.Join(dir, "bad.gz")
	os.WriteFile(bad, []byte("not gzip"), 0o644)
	_, _, err = scanSources(t, Options{}, []Source{{Name: bad}})
	if err == nil || !strings.Contains(err.Error(), "bad.gz") {
		t.Errorf("bad gzip: %v", err)
	}
	u16 := filepath.Join(dir, "u16.jsonl")
	os.WriteFile(u16, []byte("\xff\xfe{\x00}\x00"), 0o644)
	reqs, sum, err = scanSources(t, Options{}, []Source{{Name: u16}})
	if err != nil || len(reqs) != 0 || find(nil, sum, "not_utf8") == nil {
		t.Errorf("utf-16: %v %v %v", err, reqs, sum)
	}
}

func TestFnErrorStops(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&b, `{"custom_id": "r%d", "method": "POST", "url": "/v1/embeddings", "body": {"model": "text-embedding-3-small", "input": "x"}}`+"\n", i)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "x.jsonl")
	os.WriteFile(p, []byte(b.String()), 0o644)
	stop := errors.New("stop")
	n := 0
	_, err := Scan(context.Background(), []Source{{Name: p}}, Options{Registry: testReg, Workers: 4}, func(r *Request) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Errorf("err %v after %d", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	_, err = Scan(ctx, []Source{{Name: p}}, Options{Registry: testReg, Workers: 4}, func(r *Request) error {
		n++
		if n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 10+4*32 {
		t.Errorf("cancel: err %v after %d", err, n)
	}
}

func TestURLTable(t *testing.T) {
	for _, e := range Endpoints {
		if c := checkURL(e.Path); c.code != "" || c.endpoint != e.Path {
			t.Errorf("%s: %+v", e.Path, c)
		}
	}
	if got := guessEndpoint(" V1/Embeddings/ "); got != "/v1/embeddings" {
		t.Errorf("guess: %q", got)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 32017: "32,017", -1234567: "-1,234,567"} {
		if got := Thousands(n); got != want {
			t.Errorf("%d: %q", n, got)
		}
	}
}

var fuzzCounter = tokens.NewCounter(tokens.Options{Registry: testReg, AssumeOutput: 16})

// FuzzLine feeds arbitrary bytes (several lines) to Scan: it must never
// panic, every request has a line, and problems are located.
func FuzzLine(f *testing.F) {
	f.Add([]byte(okChat))
	f.Add([]byte("{\n  \"a\": [1,\n 2]\n}\n"))
	f.Add([]byte("\xef\xbb\xbf" + okChat + "\r\n\r\n"))
	f.Add([]byte(`[{"custom_id": 1}]`))
	f.Add([]byte(`{"custom_id": "a", "body": "{}", "url": "http://x/v1/chat/completions?x"}`))
	f.Add([]byte("{\"model\": \"gpt-4o\", \"input\": \"\xff\"}\n{"))
	f.Add([]byte("\x1f\x8b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "f.jsonl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Scan(context.Background(), []Source{{Name: p}}, Options{Registry: testReg, Counter: fuzzCounter, Model: "gpt-4o", Workers: 2, MaxLineBytes: 4096, TPMLimit: 100},
			func(r *Request) error {
				if r.Line < 1 || r.EndLine < r.Line {
					t.Fatalf("bad lines %d–%d", r.Line, r.EndLine)
				}
				for _, pr := range r.Problems {
					if pr.Code == "" || pr.Message == "" || pr.Line != r.Line {
						t.Fatalf("bad problem %+v", pr)
					}
				}
				return nil
			})
		if err != nil && !strings.Contains(err.Error(), "f.jsonl") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}

// Case B19: a request whose TPM charge exceeds the TPM limit can never be
// sent; with --tpm and with a tier's published limit (gpt-4o tier 1: 30,000
// TPM, models.json). The figures are the case's (shared/cases/CASES.md B19).
func TestCaseB19RequestTooLarge(t *testing.T) {
	counter := tokens.NewCounter(tokens.Options{Registry: testReg, AssumeOutput: 1024})
	src := []Source{{Name: filepath.Join(casesDir, "B19.jsonl")}}
	for _, opts := range []Options{
		{Counter: counter, TPMLimit: 30000, TPMLimitName: "--tpm"},
		{Counter: counter, Tier: "1"},
	} {
		reqs, _, err := scanSources(t, opts, src)
		if err != nil {
			t.Fatal(err)
		}
		big, small := reqs[0], reqs[1]
		p := find(reqs[:1], Summary{}, "request_too_large")
		if p == nil || p.Severity != tokens.Error {
			t.Fatalf("big1: %+v", big.Problems)
		}
		want := "big1 needs ~32,017 rate-limit tokens per request (prompt ~17 + max_tokens 32,000) which exceeds --tpm 30,000; it can never be sent. Lower max_tokens or raise the limit"
		if opts.Tier != "" {
			want = "big1 needs ~32,017 rate-limit tokens per request (prompt ~17 + max_tokens 32,000) which exceeds the tier 1 TPM limit for gpt-4o 30,000; it can never be sent. Lower max_tokens or raise the limit"
		}
		if p.Message != want {
			t.Errorf("message\n got %q\nwant %q", p.Message, want)
		}
		if find(reqs[1:], Summary{}, "request_too_large") != nil || small.CustomID != "small1" {
			t.Errorf("small1: %+v", small.Problems)
		}
	}
}

func TestCheckEnqueued(t *testing.T) {
	if _, over := CheckEnqueued("f", "gpt-4o", 90000, 90000, "tier 1"); over {
		t.Errorf("at the limit is fine")
	}
	if _, over := CheckEnqueued("f", "gpt-4o", 1e9, 0, "tier 1"); over {
		t.Errorf("unknown limit")
	}
	p, over := CheckEnqueued("f", "gpt-4o", 120000, 90000, "tier 1")
	if !over || p.Code != "over_enqueued_limit" || p.Severity != tokens.Warning || !strings.Contains(p.Message, "120,000") || !strings.Contains(p.Message, "90,000") {
		t.Errorf("%+v", p)
	}
}

// Every code the source reports is in Codes (the documented list), with
// the same severity, once.
func TestCodesDocumented(t *testing.T) {
	doc := map[string]Severity{}
	for _, c := range Codes {
		if _, dup := doc[c.Code]; dup || c.Summary == "" {
			t.Errorf("bad code entry %+v", c)
		}
		doc[c.Code] = c.Severity
	}
	re := regexp.MustCompile(`tokens\.(Error|Warning|Note),\s*(?:Code:\s*)?"([a-z0-9_]+)"`)
	found := 0
	for _, f := range []string{"parse.go", "scan.go", "codes.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			found++
			sev := Severity(strings.ToLower(m[1]))
			if got, ok := doc[m[2]]; !ok || got != sev {
				t.Errorf("code %s (%s) is not documented in Codes with that severity", m[2], sev)
			}
		}
	}
	if found < 30 {
		t.Errorf("found only %d code uses: the pattern is stale", found)
	}
}

// FuzzObjectMembers: for every valid JSON object, objectMembers agrees
// with encoding/json (same names, same values, last duplicate wins).
func FuzzObjectMembers(f *testing.F) {
	for _, s := range []string{okChat, `{}`, `{"a":1,"a":[1,{"b":"}"}]}`, `{"\u0061": "x\"}", "b" : null , "c":-1.5e3}`, ` { "k" : { } } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _ := objectMembers(data) // never panics, valid or not
		var want map[string]json.RawMessage
		if json.Unmarshal(data, &want) != nil || want == nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%d members, want %d: %q", len(got), len(want), data)
		}
		for k, v := range want {
			if string(got[k]) != string(v) {
				t.Fatalf("member %q = %q, want %q", k, got[k], v)
			}
		}
	})
}

func TestOverBatchBytesAndEmpty(t *testing.T) {
	old := batchMaxBytes
	batchMaxBytes = 300
	defer func() { batchMaxBytes = old }()
	reqs, sum := scanOne(t, okChat+"\n"+strings.Replace(okChat, `"a"`, `"b"`, 1)+"\n")
	p := find(reqs, sum, "over_batch_bytes")
	if p == nil || p.Severity != tokens.Warning || !strings.Contains(p.Message, "Batch will need splitting") {
		t.Errorf("over_batch_bytes: %+v", p)
	}
	// Bare bodies are not a Batch file: no Batch-size warnings.
	_, sum = scanOne(t, strings.Repeat(chatBody+"\n", 5))
	if find(nil, sum, "over_batch_bytes") != nil {
		t.Errorf("bare file warned")
	}
	for _, in := range []string{"", "\n \n"} {
		_, sum = scanOne(t, in)
		if p := find(nil, sum, "no_requests"); p == nil || p.Severity != tokens.Error {
			t.Errorf("%q: %v", in, codes(nil, sum))
		}
	}
}

// Issue 14 §6: a gzip bomb (tiny file, huge expansion) is refused once it
// expands past MaxGzipRatio, instead of being read to the end.
func TestGzipBombRefused(t *testing.T) {
	dir := t.TempDir()
	gz := filepath.Join(dir, "bomb.jsonl.gz")
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	line := []byte(strings.Repeat(" ", 4095) + "\n")
	for i := 0; i < (MaxGzipFloor/4096)*2; i++ { // 2× the floor, ~1000:1
		zw.Write(line)
	}
	zw.Close()
	os.WriteFile(gz, b.Bytes(), 0o644)
	_, sum, err := scanSources(t, Options{}, []Source{{Name: gz}})
	if err == nil || !strings.Contains(err.Error(), "expands more than") {
		t.Fatalf("bomb read: err %v, %d bytes", err, sum.Bytes)
	}
	if sum.Bytes > 2*MaxGzipFloor-1<<20 {
		t.Errorf("read %d bytes of a bomb", sum.Bytes)
	}
	// An ordinary gzip file (a few ×) is read whole.
	b.Reset()
	zw = gzip.NewWriter(&b)
	for i := 0; i < 1000; i++ {
		zw.Write([]byte(strings.Replace(okChat, `"a"`, fmt.Sprintf(`"a%d"`, i), 1) + "\n"))
	}
	zw.Close()
	os.WriteFile(gz, b.Bytes(), 0o644)
	if reqs, _, err := scanSources(t, Options{}, []Source{{Name: gz}}); err != nil || len(reqs) != 1000 {
		t.Errorf("ordinary gzip: %v, %d requests", err, len(reqs))
	}
}

package input

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/oairl/oairl/tokens"
)

// TestLookalikeIDs (defect 15): ids that look alike once zero-width
// characters, non-breaking hyphens, Cyrillic/Greek homoglyphs, NFC/NFD
// and case are folded get exactly one custom_id_lookalike each.
func TestLookalikeIDs(t *testing.T) {
	ids := []struct {
		id   string
		want bool // a look-alike warning on this line
	}{
		{`"req-1"`, false},
		{`"req\u20111"`, true},  // non-breaking hyphen
		{`"REQ-1"`, true},       // case
		{`"req-1 "`, true},      // trailing space: ONE warning
		{`"r\u0435q-1"`, true},  // Cyrillic e
		{`"re\u200bq-1"`, true}, // zero-width space
		{`"\u03bfk"`, true},     // Greek omicron + Latin k: mixed scripts
		{`"ok"`, true},          // looks like the Greek one
		{`"e\u0301"`, false},    // NFD
		{`"\u00e9"`, true},      // NFC
		{`"\u0437\u0430\u043f\u0440\u043e\u0441"`, false}, // plain Cyrillic word: not odd on its own
	}
	var b strings.Builder
	for _, x := range ids {
		b.WriteString(line(x.id, `"POST"`, `"/v1/chat/completions"`, chatBody) + "\n")
	}
	reqs, sum := scanOne(t, b.String())
	for i, x := range ids {
		n := 0
		for _, p := range reqs[i].Problems {
			if p.Code == "custom_id_lookalike" {
				n++
				if p.Severity != tokens.Warning {
					t.Errorf("%s: severity %s", x.id, p.Severity)
				}
			}
		}
		if x.want && n != 1 || !x.want && n != 0 {
			t.Errorf("line %d %s: %d look-alike warnings, want %v: %v", i+1, x.id, n, x.want, reqs[i].Problems)
		}
	}
	if p := find(reqs, sum, "duplicate_custom_id"); p != nil {
		t.Errorf("look-alikes are not duplicates: %+v", p)
	}
	if p := find(reqs[3:4], Summary{}, "custom_id_lookalike"); p == nil || !strings.Contains(p.Message, "whitespace") || !strings.Contains(p.Message, "line 1") {
		t.Errorf("req-1 space: %+v", p)
	}
}

func TestFoldID(t *testing.T) {
	for in, want := range map[string]string{
		"req\u20111": "req-1", "R\u0415Q\u00a01": "req 1", "re\u200bq": "req", "e\u0301": "e", "\u00e9": "e",
		"\uff52\uff45\uff51": "req", " x ": "x", "\ufeffid": "id",
	} {
		if got := foldID(in); got != want {
			t.Errorf("foldID(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDuplicateMemberLine (defect 14): a repeated envelope member names
// both values and the one likely used; a bare body's repeats are reported
// once (by the counter), not twice.
func TestDuplicateMemberLine(t *testing.T) {
	counter := tokens.NewCounter(tokens.Options{Registry: testReg, AssumeOutput: 10})
	in := `{"custom_id": "a", "custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}}
{"model": "gpt-4o-mini", "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
`
	reqs, _, err := scanFiles(t, Options{Counter: counter}, [2]string{"d.jsonl", in})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range reqs {
		for _, p := range r.Problems {
			if p.Code == "duplicate_member" {
				got = append(got, fmt.Sprintf("%d:%s", p.Line, p.Message))
			}
		}
	}
	if len(got) != 3 || !strings.Contains(got[0], `likely use "b"`) || !strings.Contains(got[1], `likely use "gpt-4o"`) || !strings.HasPrefix(got[2], "2:") {
		t.Errorf("%q", got)
	}
	if reqs[0].CustomID != "b" || reqs[0].Model != "gpt-4o" {
		t.Errorf("last values not used: %q %q", reqs[0].CustomID, reqs[0].Model)
	}
}

// allocDuring returns the bytes allocated while f runs.
func allocDuring(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestLongLinesHeldOnce (defect 7): a line over the limit is streamed past
// without being buffered, and a long allowed line is read in one exact
// allocation (no append-growth copies), from a plain file and from a
// non-seekable stream (spilled to a temporary file).
func TestLongLinesHeldOnce(t *testing.T) {
	const lineLen = 12 << 20
	body := `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"` +
		strings.Repeat("x", lineLen) + `"}]}}` + "\n" + okChat + "\n"
	dir := t.TempDir()
	path := filepath.Join(dir, "long.jsonl")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		max     int
		tooLong bool
		limit   uint64 // bytes allocated at most
	}{
		{"over the limit", 4 << 20, true, 8 << 20}, // the first 1 MB (spillBytes) is buffered
		{"allowed", 64 << 20, false, lineLen * 3 / 2},
	} {
		for _, stdin := range []bool{false, true} {
			var reqs []*Request
			var sum Summary
			var err error
			alloc := allocDuring(func() {
				src := []Source{{Name: path}}
				opts := Options{Registry: testReg, MaxLineBytes: tc.max, Workers: 1}
				if stdin {
					f, ferr := os.Open(path)
					if ferr != nil {
						t.Fatal(ferr)
					}
					defer f.Close()
					src, opts.Stdin = []Source{{Name: "-"}}, struct{ io.Reader }{f} // hide ReaderAt
				}
				reqs, sum, err = scanSources(t, opts, src)
			})
			if err != nil || len(reqs) != 2 || sum.Requests != 2 {
				t.Fatalf("%s stdin=%v: %v %d", tc.name, stdin, err, len(reqs))
			}
			if got := find(reqs[:1], Summary{}, "line_too_large") != nil; got != tc.tooLong {
				t.Errorf("%s stdin=%v: line_too_large=%v", tc.name, stdin, got)
			}
			if !tc.tooLong && len(reqs[0].Raw) != len(body)-len(okChat)-2 {
				t.Errorf("%s stdin=%v: raw %d bytes", tc.name, stdin, len(reqs[0].Raw))
			}
			if reqs[1].CustomID != "a" && !reqs[1].Valid() {
				t.Errorf("next line: %+v", reqs[1])
			}
			t.Logf("%s stdin=%v: allocated %.1f MB for a %d MB line", tc.name, stdin, float64(alloc)/(1<<20), lineLen>>20)
			if alloc > tc.limit {
				t.Errorf("%s stdin=%v: allocated %.1f MB, want ≤ %.1f MB", tc.name, stdin, float64(alloc)/(1<<20), float64(tc.limit)/(1<<20))
			}
		}
	}
}

package runner

import (
	"hash/maphash"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/extsort"
)

func TestParseResultState(t *testing.T) {
	tests := []struct {
		line string
		want recState
		ok   bool
	}{
		{`{"id":"x","custom_id":"a","response":{"status_code":200,"request_id":"r","body":{}},"error":null}`, recSucceeded, true},
		{`{"id":"x","custom_id":"a","response":{"status_code":500,"request_id":"r","body":{"error":{"message":"boom","type":"server_error"}}},"error":{"code":"server_error","message":"boom"}}`, recRetryable, true},
		{`{"id":"x","custom_id":"a","response":{"status_code":429,"request_id":"r","body":{"error":{"message":"Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 30000, Requested 10.","type":"tokens","code":"rate_limit_exceeded"}}},"error":{"code":"rate_limit_exceeded","message":"m"}}`, recRetryable, true},
		{`{"id":"x","custom_id":"a","response":{"status_code":429,"request_id":"r","body":{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}},"error":{"code":"insufficient_quota","message":"m"}}`, recFailed, true},
		{`{"id":"x","custom_id":"a","response":{"status_code":400,"request_id":"r","body":{"error":{"message":"bad","type":"invalid_request_error"}}},"error":{"code":"invalid_value","message":"bad"}}`, recFailed, true},
		{`{"id":"x","custom_id":"a","response":null,"error":{"code":"network_error","message":"reset"}}`, recRetryable, true},
		{`{"id":"x","custom_id":"a","response":null,"error":{"code":"request_too_large","message":"big"}}`, recFailed, true},
		// Batch API output lines are read too (run and batch are interchangeable).
		{`{"id":"batch_req_1","custom_id":"a","response":{"status_code":200,"request_id":"r","body":{"id":"chatcmpl"}},"error":null}`, recSucceeded, true},
		{`{"custom_id":""}`, 0, false},
		{`{"id":"x","custom_id":"a","respo`, 0, false},
	}
	for _, tt := range tests {
		_, got, _, ok := parseResultState([]byte(tt.line))
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: got %v %v, want %v %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLoadAndRewrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.jsonl")
	lines := []string{
		`{"id":"1","custom_id":"c","response":{"status_code":200,"request_id":"r","body":{}},"error":null}`,
		`garbage`,
		`{"id":"2","custom_id":"a","response":null,"error":{"code":"network_error","message":"reset"}}`,
		`{"id":"3","custom_id":"zz","response":{"status_code":200,"request_id":"r","body":{}},"error":null}`,
		`{"id":"4","custom_id":"b","response":{"status_code":200,"request_id":"r","body":{}},"error":null}`,
	}
	torn := `{"id":"5","custom_id":"d","resp`
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"+torn), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := loadResults(p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TornBytes != int64(len(torn)) || len(rep.BadLines) != 1 || rep.BadLines[0] != 2 || rep.Lines != 4 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Index.state("a") != recRetryable || rep.Index.state("b") != recSucceeded || rep.Index.state("d") != 0 {
		t.Fatalf("states a=%v b=%v d=%v", rep.Index.state("a"), rep.Index.state("b"), rep.Index.state("d"))
	}
	// Nothing changed by loading.
	if b, _ := os.ReadFile(p); !strings.HasSuffix(string(b), torn) {
		t.Fatal("loadResults changed the file")
	}
	rf, err := openResults(p, &rep, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Dropped != 1 || rep.Index.state("a") != 0 {
		t.Errorf("--retry-failed dropped %d, state of a %v", rep.Dropped, rep.Index.state("a"))
	}
	if err := rf.write(&Result{CustomID: "a", Response: &ResultResponse{StatusCode: 200, RequestID: "r", Body: compactBody([]byte("{\n  \"x\": 1\n}"))}}); err != nil {
		t.Fatal(err)
	}
	if err := rf.write(&Result{CustomID: "e", Response: &ResultResponse{StatusCode: 502, Body: compactBody([]byte("<html>bad gateway</html>"))}, Error: &ResultError{Code: "server_error", Message: "m"}}); err != nil {
		t.Fatal(err)
	}
	rf.close()
	seed := maphash.MakeSeed()
	if err := rewriteOrdered(p, testOrder(t, dir, seed, []string{"a", "b", "c", "d", "e"}, nil), seed); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var ids []string
	for _, l := range got {
		id, _, _, ok := parseResultState([]byte(l))
		if !ok {
			id = l
		}
		ids = append(ids, id)
	}
	// input order first, then what the input does not name (file order).
	if strings.Join(ids, ",") != "a,b,c,e,garbage,zz" {
		t.Errorf("order %v", ids)
	}
	if !strings.Contains(string(b), `"body":{"x":1}`) || !strings.Contains(string(b), `"body":"\u003chtml\u003ebad gateway\u003c/html\u003e"`) && !strings.Contains(string(b), `"body":"<html>bad gateway</html>"`) {
		t.Errorf("bodies not one-line JSON:\n%s", b)
	}
}

// Re-check: --ordered leaves exactly one line per input custom_id: the one
// for the current body, else the best state, else the latest; the others go
// to PATH.superseded.jsonl, never dropped.
func TestRewriteOrderedOneLinePerID(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.jsonl")
	lines := []string{
		`{"id":"1","custom_id":"a","response":{"status_code":400,"request_id":"r","body":{}},"error":{"code":"x","message":"m"}}`,
		`{"id":"2","custom_id":"b","response":{"status_code":200,"request_id":"r","body":{"v":"old"}},"error":null,"oairl_body_sha256":"old"}`,
		`{"id":"3","custom_id":"a","response":{"status_code":200,"request_id":"r","body":{}},"error":null}`,
		`{"id":"4","custom_id":"b","response":{"status_code":200,"request_id":"r","body":{"v":"new"}},"error":null,"oairl_body_sha256":"new"}`,
		`{"id":"5","custom_id":"a","response":{"status_code":500,"request_id":"r","body":{}},"error":{"code":"server_error","message":"m"}}`,
	}
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := maphash.MakeSeed()
	if err := rewriteOrdered(p, testOrder(t, dir, seed, []string{"b", "a"}, map[string]string{"b": "new"}), seed); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(got) != 2 || !strings.Contains(got[0], `"id":"4"`) || !strings.Contains(got[1], `"id":"3"`) {
		t.Fatalf("ordered file:\n%s", b)
	}
	sup, _ := os.ReadFile(p + ".superseded.jsonl")
	if n := strings.Count(string(sup), "\n"); n != 3 {
		t.Fatalf("superseded lines = %d, want 3:\n%s", n, sup)
	}
}

// testOrder is the --ordered input log of ids (in that order) with their
// current fingerprints fps (missing: none).
func testOrder(t *testing.T, dir string, seed maphash.Seed, ids []string, fps map[string]string) *extsort.Sorter[orderEntry] {
	t.Helper()
	o := newOrderLog(dir)
	t.Cleanup(o.Close)
	for i, id := range ids {
		if err := o.Add(orderEntry{id: maphash.String(seed, id), pos: uint64(i), fp: fpNum(seed, fps[id])}); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

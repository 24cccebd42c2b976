package diagnose

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden files")

// assertGolden compares got with testdata/NAME.golden; -update rewrites it.
func assertGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./diagnose -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// goldenReport is a saved-mode report over several case files plus an
// Anthropic, an Azure and a live-style OK entry.
func goldenReport(t *testing.T) Report {
	t.Helper()
	rep := Report{Mode: "saved"}
	for _, name := range []string{"B16.http", "B17b_zero_and_ms.http", "B19.http", "B21c_429_concurrency.http", "B10.batch_failed.json"} {
		fh, err := os.Open(filepath.Join("testdata", "cases", name))
		if err != nil {
			t.Fatal(err)
		}
		caps, err := ParseSaved(fh)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range caps {
			rep.Findings = append(rep.Findings, Entry{Finding: Classify(c.Status, c.Header, c.Body, testNow),
				Origin: name + ":" + itoa(c.Line), Format: c.Source})
		}
	}
	ok := Classify(200, hdr("x-ratelimit-limit-requests: 200", "x-ratelimit-remaining-requests: 150",
		"x-ratelimit-reset-requests: 6h0m0s", "x-ratelimit-limit-tokens: 40000", "x-ratelimit-remaining-tokens: 39990",
		"x-ratelimit-reset-tokens: 15ms", "openai-organization: org-abcdef123456", "openai-project: proj_abcdef123456",
		"x-request-id: req_42"), []byte(`{"object":"chat.completion"}`), testNow)
	rep.Findings = append(rep.Findings, Entry{Finding: ok, Origin: "POST /v1/chat/completions", Format: "live", UsageTier: "free"})
	return rep
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestReportGolden(t *testing.T) {
	rep := goldenReport(t)
	var text, tsv, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteTSV(&tsv); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	assertGolden(t, "TestReportGolden.text", text.Bytes())
	assertGolden(t, "TestReportGolden.tsv", tsv.Bytes())
	assertGolden(t, "TestReportGolden.json", js.Bytes())
	if rep.ExitCode() != 5 {
		t.Errorf("exit = %d, want 5 (quota is the worst)", rep.ExitCode())
	}
	for i, line := range strings.Split(strings.TrimSpace(tsv.String()), "\n") {
		if n := len(strings.Split(line, "\t")); n != len(TSVColumns) {
			t.Errorf("tsv row %d has %d columns, want %d", i, n, len(TSVColumns))
		}
	}
}

// TestJSONFields pins the JSON field set: adding a field means updating
// this list and JSONSchemaHelp; removing one breaks users.
func TestJSONFields(t *testing.T) {
	var js bytes.Buffer
	rep := goldenReport(t)
	p := ProbeResult{Requests: 2, OK: 1, Verdicts: map[Verdict]int{OK: 1, ConcurrencyLimited: 1}, Bites: true}
	rep.Probe = &p
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) string {
		m := v.(map[string]any)
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return strings.Join(ks, ",")
	}
	f0 := doc["findings"].([]any)[0].(map[string]any)
	rl := f0["rate_limits"].(map[string]any)
	for _, c := range []struct{ what, got, want string }{
		{"top", keys(doc), "findings,mode,probe,schema_version,summary"},
		{"finding", keys(f0), "code,content_type,exit_code,fixes,format,limit,limit_kind,message,model,organization,origin,project,provider,rate_limits,request_id,requested,retryable,scope,status,summary,truncated,type,usage_tier,used,verdict,wait_seconds,wait_source"},
		{"rate_limits", keys(rl), "binding,input_tokens,output_tokens,project_requests,project_tokens,provider,requests,tokens"},
		{"window", keys(rl["requests"]), "daily,known,limit,remaining,reset,reset_seconds,utilization"},
		{"fix", keys(f0["fixes"].([]any)[0]), "code,text"},
		{"probe", keys(doc["probe"]), "concurrency_limit_bites,ok,requests,verdicts"},
		{"summary", keys(doc["summary"]), "exit_code,total,verdicts,worst_verdict"},
	} {
		if c.got != c.want {
			t.Errorf("%s fields = %s\nwant %s", c.what, c.got, c.want)
		}
		for _, k := range strings.Split(c.want, ",") {
			if !strings.Contains(JSONSchemaHelp, `"`+k+`"`) {
				t.Errorf("JSONSchemaHelp does not document %q", k)
			}
		}
	}
	// An Entry marshals to the same fields as a report's finding.
	eb, _ := json.Marshal(rep.Findings[0])
	var ent map[string]any
	_ = json.Unmarshal(eb, &ent)
	if got := keys(ent); got != keys(f0) {
		t.Errorf("Entry JSON fields = %s, want %s", got, keys(f0))
	}
	// A single Finding marshals to the same field set (minus the entry's).
	b, _ := json.Marshal(rep.Findings[0].Finding)
	var one map[string]any
	_ = json.Unmarshal(b, &one)
	if got := keys(one); got != "code,content_type,exit_code,fixes,limit,limit_kind,message,model,organization,project,provider,rate_limits,request_id,requested,retryable,scope,status,summary,truncated,type,used,verdict,wait_seconds,wait_source" {
		t.Errorf("Finding JSON fields = %s", got)
	}
}

func TestRedacted(t *testing.T) {
	rep := goldenReport(t)
	f := Classify(429, hdr("openai-organization: org-secretorg99", "openai-project: proj_secretproj99"),
		[]byte(`{"error":{"message":"Rate limit reached for gpt-4o in project proj_secretproj99 organization org-secretorg99 on tokens per min (TPM): Limit 1, Used 1, Requested 1.","type":"tokens","code":"rate_limit_exceeded"}}`), testNow)
	rep.Findings = append(rep.Findings, Entry{Finding: f, Origin: "x:1", Format: "json"})
	red := rep.Redacted()
	var all bytes.Buffer
	_ = red.WriteJSON(&all)
	_ = red.WriteText(&all)
	_ = red.WriteTSV(&all)
	for _, secret := range []string{"secretorg99", "secretproj99", "abcdef123456"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("redacted output contains %q", secret)
		}
	}
	if !strings.Contains(all.String(), "org-…") || !strings.Contains(all.String(), "proj_…") {
		t.Error("redacted ids lost their kind prefix")
	}
	// The original is untouched.
	if rep.Findings[len(rep.Findings)-1].Organization != "org-secretorg99" {
		t.Error("Redacted modified the original report")
	}
}

func TestLiveProbeGolden(t *testing.T) {
	h := hdr("x-ratelimit-limit-requests: 500", "x-ratelimit-remaining-requests: 499", "x-ratelimit-reset-requests: 120ms",
		"x-ratelimit-limit-tokens: 30000", "x-ratelimit-remaining-tokens: 29991", "x-ratelimit-reset-tokens: 18ms",
		"openai-organization: org-simulated0000", "x-request-id: req_1")
	e := Entry{Finding: Classify(200, h, []byte(`{"object":"chat.completion"}`), testNow), Origin: "POST /v1/chat/completions", Format: "live", UsageTier: "1"}
	e.Model = "gpt-4o"
	rep := Report{Mode: "live", Findings: []Entry{e},
		Probe: &ProbeResult{Requests: 8, OK: 2, Verdicts: map[Verdict]int{OK: 2, ConcurrencyLimited: 6}, Bites: true}}
	var text, tsv bytes.Buffer
	_ = rep.WriteText(&text)
	_ = rep.WriteTSV(&tsv)
	assertGolden(t, "TestLiveProbeGolden.text", text.Bytes())
	assertGolden(t, "TestLiveProbeGolden.tsv", tsv.Bytes())
}

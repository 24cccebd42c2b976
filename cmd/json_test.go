package cmd

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/sim"
)

// jsonKeys parses one JSON document and returns its sorted top-level keys.
func jsonKeys(t *testing.T, what, out string) (map[string]any, []string) {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: not one JSON document: %v\n%s", what, err, out)
	}
	if dec.More() {
		t.Fatalf("%s: more than one JSON document on stdout:\n%s", what, out)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return doc, keys
}

// TestJSONDocuments pins the top-level field set of every command's
// --format json document, checks it starts with schema_version 1, and
// that each field is named in the command's --help.
func TestJSONDocuments(t *testing.T) {
	e := newBatchEnv(t, sim.Config{BatchDuration: time.Hour})
	in := e.path("in.jsonl")
	writeRequests(t, in, 4, "gpt-4o-mini", 5)
	out, errOut, code := e.run("batch", "submit", in, "--json", "--time-scale", e.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit %d\n%s", code, errOut)
	}
	doc, _ := jsonKeys(t, "submit", out)
	job, _ := doc["id"].(string)
	if !strings.HasPrefix(job, "job_") {
		t.Fatalf("submit --json: id %v", doc["id"])
	}
	e.env["OPENAI_ADMIN_KEY"] = "sk-admin-json-0000000000000000"
	statusFields := "schema_version,id,state_file,input_sha256,endpoint,requests,rejected,shards"
	runIn := e.path("run.jsonl")
	writeRequests(t, runIn, 2, "gpt-4o-mini", 5)
	cases := []struct {
		name   string
		args   []string
		help   []string
		fields string
		code   int
	}{
		{"submit", []string{"batch", "submit", in, "--json", "--time-scale", e.scale, "--poll-interval", "2s"}, []string{"batch", "submit"}, statusFields, 0},
		{"submit dry-run", []string{"batch", "submit", in, "--dry-run", "--format", "json", "--new"}, []string{"batch", "submit"}, statusFields, 0},
		{"status", []string{"batch", "status", job, "--json"}, []string{"batch", "status"}, statusFields, 0},
		{"wait", []string{"batch", "wait", job, "--json", "--timeout", "1m", "--time-scale", e.scale, "--poll-interval", "10s"}, []string{"batch", "wait"}, statusFields, exitcode.Pending},
		{"list", []string{"batch", "list", "--json"}, []string{"batch", "list"}, "schema_version,data", 0},
		{"cancel", []string{"batch", "cancel", job, "--json"}, []string{"batch", "cancel"}, "schema_version,id,batch_ids", 0},
		{"run", []string{"run", runIn, "-o", e.path("run.out.jsonl"), "--json", "--rpm", "1000", "--tpm", "100000"}, []string{"run"},
			"schema_version,requests,invalid,skipped,to_send,sent,succeeded,failed,failed_by_kind,unsent,abandoned,no_result,skipped_failed,quota_errors,attempts,retries,rate_limited,prompt_tokens,completion_tokens,cost_usd,elapsed_seconds,active_seconds,torn_bytes,stop_reason,exit_code,server_charge,models", 0},
		{"version", []string{"version", "--json"}, []string{"version"}, "schema_version,version,commit,modified,commit_time,go_version,platform", 0},
		{"limits pull", []string{"limits", "pull", "--project", "proj_simulated0000", "-o", e.path("limits.json"), "--json"}, []string{"limits", "pull"},
			"schema_version,source,base_url,project_id,pulled_at,models", 0},
		{"count", []string{"count", in, "--json"}, []string{"count"},
			"schema_version,requests,valid_requests,prompt_tokens,output_budget,tpm_charge,cost_usd,by_model,problems,problems_total,errors,warnings,problems_by_code,assumptions", 0},
	}
	// results needs a finished job: another sim whose batches take 2 min
	// (0.1 s).
	e2 := newBatchEnv(t, sim.Config{})
	in2 := e2.path("in.jsonl")
	writeRequests(t, in2, 4, "gpt-4o-mini", 5)
	out, errOut, code = e2.run("batch", "submit", in2, "--wait", "--time-scale", e2.scale, "--poll-interval", "2s")
	if code != 0 {
		t.Fatalf("submit --wait %d\n%s", code, errOut)
	}
	cases = append(cases, struct {
		name   string
		args   []string
		help   []string
		fields string
		code   int
	}{"results", []string{"batch", "results", strings.TrimSpace(out), "-o", e2.path("res.jsonl"), "--json"}, []string{"batch", "results"},
		"schema_version,requests,succeeded,failed,failed_by_code,synthesized,unmatched,duplicates,usage,prompt_tokens,completion_tokens,cost_usd", 0})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := e
			if tc.name == "results" {
				e = e2
			}
			out, errOut, code := e.run(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			doc, keys := jsonKeys(t, tc.name, out)
			want := strings.Split(tc.fields, ",")
			sort.Strings(want)
			if !slices.Equal(keys, want) {
				t.Errorf("fields\n got %s\nwant %s", strings.Join(keys, ","), strings.Join(want, ","))
			}
			if doc["schema_version"] != float64(1) || !strings.HasPrefix(strings.TrimSpace(out), "{\n  \"schema_version\": 1,") {
				t.Errorf("schema_version is not the first key, 1:\n%.200s", out)
			}
			help, _, _ := e.run(append(tc.help, "--help")...)
			for _, k := range want {
				if !regexp.MustCompile(`\b` + k + `\b`).MatchString(help) {
					t.Errorf("field %q is not documented in 'oairl %s --help'", k, strings.Join(tc.help, " "))
				}
			}
		})
	}
}

// A failing command in JSON mode prints a JSON error document on stdout
// (and the message on stderr); one that printed its own document does not
// print a second.
func TestJSONErrorDocument(t *testing.T) {
	e := newBatchEnv(t, sim.Config{})
	cases := []struct {
		args []string
		code int
		name string
	}{
		{[]string{"batch", "status", "job_0000000000000000", "--json"}, exitcode.Failure, "failure"},
		{[]string{"count", "--json", "--format", "table", "x.jsonl"}, exitcode.Usage, "usage"},
		{[]string{"count", "--bogus", "--json"}, exitcode.Usage, "usage"},
		{[]string{"run", e.path("missing.jsonl"), "-o", e.path("o.jsonl"), "--format=json"}, exitcode.Failure, "failure"},
	}
	for _, tc := range cases {
		out, errOut, code := e.run(tc.args...)
		if code != tc.code {
			t.Fatalf("%v: exit %d, want %d\n%s", tc.args, code, tc.code, errOut)
		}
		doc, keys := jsonKeys(t, strings.Join(tc.args, " "), out)
		if !slices.Equal(keys, []string{"error", "schema_version"}) {
			t.Fatalf("%v: keys %v", tc.args, keys)
		}
		er := doc["error"].(map[string]any)
		if er["code"] != tc.name || er["exit_code"] != float64(tc.code) || er["message"] == "" || !strings.Contains(errOut, er["message"].(string)) {
			t.Fatalf("%v: error doc %v; stderr %q", tc.args, er, errOut)
		}
	}
	// Without JSON mode: nothing on stdout.
	if out, _, _ := e.run("batch", "status", "job_0000000000000000"); out != "" {
		t.Fatalf("stdout without --json: %q", out)
	}
	// The key never reaches the error document, even when the server
	// echoes it back.
	const canary = "sk-proj-CANARY0000000000000000000002"
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"message":"Incorrect API key provided: `+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")+`.","type":"invalid_request_error","code":"invalid_api_key"}}`)
	}))
	defer echo.Close()
	e.env["OPENAI_API_KEY"] = canary
	e.env["OPENAI_BASE_URL"] = echo.URL + "/v1"
	out, errOut, code := e.run("batch", "list", "--json")
	if code != exitcode.Auth || !strings.Contains(out, `"code": "auth"`) || strings.Contains(out+errOut, "CANARY") {
		t.Fatalf("exit %d; key printed or no auth error document:\n%s\n%s", code, out, errOut)
	}
}

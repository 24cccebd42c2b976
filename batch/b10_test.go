package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/clock"
)

// B10 against a fake server that serves the case's own JSON through
// go-openai: create answers "validating"; the retrieve 40 s later says
// failed with token_limit_exceeded while another batch (batch_0000) is
// in progress. The shard is not reported as submitted, the message names
// the limit, the file and the other batch, and after a backoff the same
// uploaded file is resubmitted (no second upload) and completes.
func TestOpenAIClient_B10(t *testing.T) {
	created, _ := os.ReadFile(caseFile(t, "B10.batch_created.json"))
	failed, _ := os.ReadFile(caseFile(t, "B10.batch_failed.json"))
	list, _ := os.ReadFile(caseFile(t, "B10.batches_list.json"))
	var mu sync.Mutex
	creates, uploads := 0, 0
	var createBodies []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST" && r.URL.Path == "/v1/files":
			uploads++
			if err := r.ParseMultipartForm(1 << 20); err != nil || r.FormValue("purpose") != "batch" {
				t.Errorf("upload: %v purpose %q", err, r.FormValue("purpose"))
			}
			w.Write([]byte(`{"id":"file-IN0001","object":"file","bytes":100,"created_at":1760000000,"filename":"x.jsonl","purpose":"batch","status":"processed"}`))
		case r.Method == "POST" && r.URL.Path == "/v1/batches":
			creates++
			var body map[string]any
			json.NewDecoder(r.Body).Decode(&body)
			createBodies = append(createBodies, body)
			b := created
			if creates == 2 {
				b = bytes.Replace(created, []byte(`"batch_0001"`), []byte(`"batch_0002"`), 1)
			}
			w.Write(b)
		case r.Method == "GET" && r.URL.Path == "/v1/batches/batch_0001":
			w.Write(failed)
		case r.Method == "GET" && r.URL.Path == "/v1/batches/batch_0002":
			b := bytes.Replace(created, []byte(`"batch_0001"`), []byte(`"batch_0002"`), 1)
			b = bytes.Replace(b, []byte(`"status": "validating"`), []byte(`"status": "completed"`), 1)
			b = bytes.Replace(b, []byte(`"total": 0,
    "completed": 0`), []byte(`"total": 3,
    "completed": 3`), 1)
			w.Write(b)
		case r.Method == "GET" && r.URL.Path == "/v1/batches":
			w.Write(list)
		case r.Method == "GET" && r.URL.Path == "/v1/files":
			w.Write([]byte(`{"object":"list","data":[]}`))
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	c := NewOpenAIClient(api.New(api.Options{BaseURL: srv.URL + "/v1", APIKey: "sk-test", HTTPClient: srv.Client()}))
	clk := clock.Scaled(100000)
	j := newTestJob(t, 3, 10, "gpt-4o", 30, 0)
	log := &syncBuf{}
	submitted := 0
	opts := runOpts(nil, clk, log)
	opts.Client = c
	opts.OnSubmitted = func() {
		submitted++
		if j.Shards[0].BatchID != "batch_0002" {
			t.Errorf("reported submitted while %s is %s", j.Shards[0].BatchID, j.Shards[0].Status)
		}
	}
	if err := Run(context.Background(), j, opts); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	s := j.Shards[0]
	if s.Status != StatusCompleted || s.BatchID != "batch_0002" || len(s.FailedBatches) != 1 || s.FailedBatches[0] != "batch_0001" {
		t.Errorf("shard %+v", s)
	}
	if creates != 2 || uploads != 1 || submitted != 1 {
		t.Errorf("creates %d uploads %d submitted %d", creates, uploads, submitted)
	}
	for _, want := range []string{"batch_0001 token_limit_exceeded: enqueued-token limit for gpt-4o reached", "file file-IN0001",
		"batches still queued: batch_0000 (in_progress, 120/900)", "Limit: 90,000 enqueued tokens", "resubmitted in 1m0s"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if j.QueueLimit("gpt-4o") != 90000 {
		t.Errorf("learned limit %d, want 90000", j.QueueLimit("gpt-4o"))
	}
	md := createBodies[1]["metadata"].(map[string]any)
	if createBodies[1]["completion_window"] != "24h" || createBodies[1]["input_file_id"] != "file-IN0001" || md[MetaJob] != j.ID || md[MetaShard] != "0" || md[MetaAttempt] != "2" || md[MetaInputSHA256] != j.InputSHA256 {
		t.Errorf("second create: %v", createBodies[1])
	}
}

package batch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/httpx"
)

// B13: go-openai decodes "error_file_id": "" as a non-nil pointer to "";
// it must read as absent, like null.
func TestFromOpenAIBatch_B13(t *testing.T) {
	for name, want := range map[string][2]string{
		"B13.batch_clean.json":     {"file-OUT0013", ""},
		"B13.batch_allfailed.json": {"", "file-ERR0013"},
	} {
		b, err := os.ReadFile(caseFile(t, name))
		if err != nil {
			t.Fatal(err)
		}
		var ob openai.Batch
		if err := json.Unmarshal(b, &ob); err != nil {
			t.Fatal(err)
		}
		got := fromOpenAIBatch(ob)
		if got.OutputFileID != want[0] || got.ErrorFileID != want[1] {
			t.Errorf("%s: output %q error %q, want %q %q", name, got.OutputFileID, got.ErrorFileID, want[0], want[1])
		}
		if got.Status != StatusCompleted || got.CreatedAt.IsZero() || got.ExpiresAt.IsZero() {
			t.Errorf("%s: %+v", name, got)
		}
	}
	// B10: the failed batch's error code and message survive.
	b, _ := os.ReadFile(caseFile(t, "B10.batch_failed.json"))
	var ob openai.Batch
	json.Unmarshal(b, &ob)
	got := fromOpenAIBatch(ob)
	if !hasCode(got.Errors, CodeTokenLimitExceeded) || !strings.Contains(got.Errors[0].Message, "Enqueued token limit reached") {
		t.Errorf("B10 errors: %+v", got.Errors)
	}
}

// B13: a completed batch whose every request failed is reported as such,
// not as a success: exit-worthy failures, a note, no output file request.
func TestResults_B13_AllFailed(t *testing.T) {
	clk := clock.Scaled(testScale)
	api := newFakeAPI(clk)
	api.failCustomIDs = map[string]bool{"r0": true, "r1": true, "r2": true}
	j := newTestJob(t, 3, 10, "gpt-4o", 10, 0)
	if err := Run(context.Background(), j, runOpts(api, clk, &syncBuf{})); err != nil {
		t.Fatal(err)
	}
	s := j.Shards[0]
	if s.Status != StatusCompleted || s.OutputFileID != "" || s.ErrorFileID == "" {
		t.Fatalf("shard %+v", s)
	}
	log := &syncBuf{}
	dir := t.TempDir()
	sum, err := Results(context.Background(), j, nil, ResultsOptions{Client: api, Out: filepath.Join(dir, "r.jsonl"), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != 0 || sum.Failed != 3 {
		t.Errorf("summary %+v", sum)
	}
	if !strings.Contains(log.String(), s.BatchID+" completed but 0/3 requests succeeded; see errors") {
		t.Errorf("log: %s", log)
	}
}

// go-openai's errors drop the response headers; OpenAIClient keeps the
// whole answer (api.Error), so Classify sees retry-after and the
// x-ratelimit-* headers. A wait longer than the HTTP layer's cap comes
// back to the caller with the server's wait intact.
func TestClassifyKeepsHeaders(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("retry-after", "3600")
		w.Header().Set("x-ratelimit-limit-requests", "100")
		w.Header().Set("x-ratelimit-remaining-requests", "0")
		w.WriteHeader(429)
		io.WriteString(w, `{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}`)
	}))
	defer srv.Close()
	hc := httpx.New(httpx.Options{MaxRetries: 3, Clock: clock.NewFake(time.Now())})
	c := NewOpenAIClient(api.New(api.Options{BaseURL: srv.URL + "/v1", APIKey: "sk-test-headers-0000", HTTPClient: hc}))
	_, err := c.GetBatch(context.Background(), "batch_x")
	if err == nil {
		t.Fatal("no error")
	}
	f := Classify(err, time.Now())
	if f.Verdict != diagnose.RPMLimited || f.Wait != time.Hour || f.WaitSource != "retry-after" || f.RateLimits.Requests.Limit != 100 {
		t.Fatalf("finding %+v", f)
	}
	if calls != 1 {
		t.Fatalf("%d calls: a one-hour wait is the caller's, not retried", calls)
	}
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != 429 || ae.Header.Get("retry-after") != "3600" {
		t.Fatalf("error %T %v", err, err)
	}
}

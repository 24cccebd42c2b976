package batch

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/oairl/oairl/internal/clock"
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

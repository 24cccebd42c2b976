package sim_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/sim"
)

// TestGoOpenAIClient drives the Files and Batch endpoints, a chat
// completion and a 429 through go-openai (the client run and batch use),
// so the simulator's shapes are what that library expects.
func TestGoOpenAIClient(t *testing.T) {
	srv, fc := newSim(t, sim.Config{RPM: 1, BatchDuration: time.Minute})
	c := api.New(api.Options{BaseURL: srv.URL, APIKey: testKey}).OpenAI
	ctx := context.Background()

	resp, err := c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "gpt-4o-mini", MaxTokens: 5,
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if err != nil || resp.Usage.CompletionTokens != 5 || resp.Choices[0].Message.Content == "" {
		t.Fatalf("chat: %v %+v", err, resp)
	}
	if got := resp.GetRateLimitHeaders(); got.LimitRequests != 1 || got.RemainingRequests != 0 || got.ResetRequests.String() != "1m0s" {
		t.Errorf("go-openai parsed rate-limit headers %+v", got)
	}
	_, err = c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "gpt-4o-mini", MaxTokens: 5,
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 429 || apiErr.Type != "requests" || apiErr.Code != "rate_limit_exceeded" {
		t.Errorf("429 through go-openai: %#v", err)
	}

	f, err := c.CreateFileBytes(ctx, openai.FileBytesRequest{Name: "in.jsonl", Bytes: batchLines(3, "gpt-4o-mini", 5), Purpose: openai.PurposeBatch})
	if err != nil || f.ID == "" || f.Purpose != "batch" {
		t.Fatalf("upload: %v %+v", err, f)
	}
	b, err := c.CreateBatch(ctx, openai.CreateBatchRequest{InputFileID: f.ID, Endpoint: openai.BatchEndpointChatCompletions,
		CompletionWindow: "24h", Metadata: map[string]any{"job": "j"}})
	if err != nil || b.Status != "validating" {
		t.Fatalf("create: %v %+v", err, b)
	}
	fc.Advance(2 * time.Minute)
	b, err = c.RetrieveBatch(ctx, b.ID)
	if err != nil || b.Status != "completed" || b.OutputFileID == nil || b.ErrorFileID != nil || b.RequestCounts.Completed != 3 {
		t.Fatalf("retrieve: %v %+v", err, b)
	}
	rc, err := c.GetFileContent(ctx, *b.OutputFileID)
	if err != nil {
		t.Fatal(err)
	}
	content, _ := io.ReadAll(rc)
	rc.Close()
	if strings.Count(string(content), "\n") != 3 {
		t.Errorf("output: %s", content)
	}
	list, err := c.ListBatch(ctx, nil, nil)
	if err != nil || len(list.Data) != 1 || list.Data[0].Metadata["job"] != "j" {
		t.Errorf("list: %v %+v", err, list)
	}
	if _, err := c.CancelBatch(ctx, b.ID); err == nil {
		t.Error("cancelling a completed batch succeeded")
	}
}

package tokens

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/models"
)

const casesDir = "../../shared/cases/inputs/"

func newTestCounter(t testing.TB) *Counter {
	t.Helper()
	return NewCounter(Options{Registry: models.Default(), AssumeOutput: 1024})
}

func codes(a Analysis) []string {
	var out []string
	for _, p := range a.Problems {
		out = append(out, p.Code)
	}
	return out
}

func hasCode(a Analysis, code string) *Problem {
	for i := range a.Problems {
		if a.Problems[i].Code == code {
			return &a.Problems[i]
		}
	}
	return nil
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The cookbook's example conversation ("How to count tokens with
// tiktoken", section 6) and the prompt_tokens the API reported for it.
var cookbookMessages = []map[string]string{
	{"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
	{"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
	{"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
	{"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
	{"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
	{"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
}

func TestCookbookChatExamples(t *testing.T) {
	c := newTestCounter(t)
	for _, tt := range []struct {
		model string
		want  int64
	}{
		{"gpt-3.5-turbo", 129}, {"gpt-3.5-turbo-0125", 129}, {"gpt-4-0613", 129}, {"gpt-4", 129},
		{"gpt-4o", 124}, {"gpt-4o-2024-08-06", 124}, {"gpt-4o-mini", 124}, {"gpt-4o-mini-2024-07-18", 124},
	} {
		body := mustJSON(t, map[string]any{"model": tt.model, "messages": cookbookMessages, "max_tokens": 1})
		a := c.Analyze(EndpointChat, body)
		if a.Count.PromptTokens != tt.want {
			t.Errorf("%s: prompt_tokens %d, want %d (cookbook)", tt.model, a.Count.PromptTokens, tt.want)
		}
		if a.Count.Estimated || len(a.Problems) != 0 {
			t.Errorf("%s: estimated=%v problems %v, want an exact count and no problems", tt.model, a.Count.Estimated, a.Problems)
		}
		if a.Count.TPMCharge != tt.want+1 || a.Count.OutputBudget != 1 || a.Count.N != 1 {
			t.Errorf("%s: count %+v", tt.model, a.Count)
		}
	}
}

// gpt-3.5-turbo-0301 framing: 4 per message, -1 per name (the cookbook's
// earlier edition published 127 for this example).
func TestCookbook0301Framing(t *testing.T) {
	c := newTestCounter(t)
	a := c.Analyze(EndpointChat, mustJSON(t, map[string]any{"model": "gpt-3.5-turbo-0301", "messages": cookbookMessages, "max_tokens": 1}))
	b := c.Analyze(EndpointChat, mustJSON(t, map[string]any{"model": "gpt-3.5-turbo-0125", "messages": cookbookMessages, "max_tokens": 1}))
	// 6 messages × (4-3) and 4 names × (-1-1)
	if want := b.Count.PromptTokens + 6 - 8; a.Count.PromptTokens != want {
		t.Fatalf("0301: %d, want %d", a.Count.PromptTokens, want)
	}
	if a.Count.PromptTokens != 127 {
		t.Fatalf("0301: %d, want 127 (cookbook, first edition)", a.Count.PromptTokens)
	}
}

// Section 7 of the cookbook: tools; published 105 (gpt-3.5-turbo, gpt-4)
// and 101 (gpt-4o, gpt-4o-mini).
func TestCookbookToolsExample(t *testing.T) {
	tools := []any{map[string]any{
		"type": "function",
		"function": map[string]any{
			"name":        "get_current_weather",
			"description": "Get the current weather in a given location",
			"parameters": map[string]any{
				"type": "object",
				"properties": map[string]any{
					"location": map[string]any{"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
					"unit":     map[string]any{"type": "string", "description": "The unit of temperature to return", "enum": []string{"celsius", "fahrenheit"}},
				},
				"required": []string{"location"},
			},
		},
	}}
	msgs := []map[string]string{
		{"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
		{"role": "user", "content": "What's the weather like in San Francisco?"},
	}
	c := newTestCounter(t)
	for _, tt := range []struct {
		model string
		want  int64
	}{{"gpt-3.5-turbo", 105}, {"gpt-4", 105}, {"gpt-4o", 101}, {"gpt-4o-mini", 101}} {
		a := c.Analyze(EndpointChat, mustJSON(t, map[string]any{"model": tt.model, "messages": msgs, "tools": tools, "max_tokens": 10}))
		if a.Count.PromptTokens != tt.want {
			t.Errorf("%s: %d, want %d", tt.model, a.Count.PromptTokens, tt.want)
		}
		// Matching the cookbook's example does not make the recipe the
		// API's: a request with tools is labelled an estimate (issue 14 §6).
		if !a.Count.Estimated {
			t.Errorf("%s: tools counted as exact: %v", tt.model, a.Problems)
		}
		// the legacy "functions" shape counts the same
		fa := c.Analyze(EndpointChat, mustJSON(t, map[string]any{"model": tt.model, "messages": msgs,
			"functions": []any{tools[0].(map[string]any)["function"]}, "max_tokens": 10}))
		if fa.Count.PromptTokens != tt.want {
			t.Errorf("%s functions: %d, want %d", tt.model, fa.Count.PromptTokens, tt.want)
		}
	}
}

func readLines(t *testing.T, name string) [][]byte {
	t.Helper()
	f, err := os.Open(casesDir + name)
	if err != nil {
		t.Skipf("case file: %v", err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

// batchLine splits a Batch API input line into url and body.
func batchLine(t *testing.T, line []byte) (string, string, []byte) {
	t.Helper()
	var l struct {
		CustomID string          `json:"custom_id"`
		URL      string          `json:"url"`
		Body     json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(line, &l); err != nil {
		t.Fatal(err)
	}
	return l.CustomID, l.URL, l.Body
}

// Case B25: special-token literals are ordinary text; no panic, no error.
func TestB25SpecialTokenLiterals(t *testing.T) {
	c := newTestCounter(t)
	want := []int64{25, 32, 36}
	for i, line := range readLines(t, "B25.jsonl") {
		a := c.Analyze(EndpointChat, line)
		if a.Count.PromptTokens != want[i] {
			t.Errorf("line %d: %d, want %d", i+1, a.Count.PromptTokens, want[i])
		}
		for _, p := range a.Problems {
			if p.Severity == Error {
				t.Errorf("line %d: error %v", i+1, p)
			}
		}
	}
	for _, enc := range []string{"o200k_base", "cl100k_base"} {
		n, err := c.CountText(enc, "<|endoftext|>")
		if err != nil || n != 7 {
			t.Errorf("%s <|endoftext|> = %d, %v; want 7 tokens of text", enc, n, err)
		}
	}
}

// Case B24: the model → encoding table.
func TestB24Encodings(t *testing.T) {
	want := map[string]string{
		"o1": "o200k_base", "o3": "o200k_base", "o3-mini": "o200k_base", "o4-mini": "o200k_base", "gpt-5": "o200k_base",
		"gpt-5-mini": "o200k_base", "gpt-5.1": "o200k_base", "gpt-4.1-mini": "o200k_base", "gpt-4o-mini": "o200k_base",
		"gpt-4o-2024-08-06": "o200k_base", "chatgpt-4o-latest": "o200k_base",
		"ft:gpt-4o-mini-2024-07-18:example-org::abc123": "o200k_base",
		"ft:gpt-4-0613:example-org::def456":             "cl100k_base", "gpt-4-turbo": "cl100k_base",
		"gpt-3.5-turbo-0125": "cl100k_base", "text-embedding-3-small": "cl100k_base",
		"openai/gpt-4o": "o200k_base", "my-custom-model": "o200k_base",
	}
	c := newTestCounter(t)
	seen := 0
	for _, line := range readLines(t, "B24.jsonl") {
		_, url, body := batchLine(t, line)
		a := c.Analyze(url, body)
		model := a.Count.Model
		if a.Count.Encoding != want[model] {
			t.Errorf("%s: encoding %s, want %s", model, a.Count.Encoding, want[model])
		}
		seen++
		switch model {
		case "my-custom-model":
			p := hasCode(a, CodeUnknownModel)
			if p == nil || p.Severity != Warning || !strings.Contains(p.Message, "--encoding") || !strings.Contains(p.Message, "o200k_base") {
				t.Errorf("my-custom-model: problems %v, want unknown_model naming o200k_base and --encoding", a.Problems)
			}
			if !a.Count.Estimated || a.Count.PromptTokens == 0 {
				t.Errorf("my-custom-model: count %+v, want a non-zero estimate", a.Count)
			}
		case "openai/gpt-4o":
			if hasCode(a, CodeModelResolved) == nil || a.Model.Model == nil || a.Model.Model.ID != "gpt-4o" {
				t.Errorf("openai/gpt-4o: %v %+v", a.Problems, a.Model)
			}
		default:
			for _, p := range a.Problems {
				// the reasoning models have max_completion_tokens 20 here
				if p.Severity != Note && p.Code != CodeSmallReasoningBudget {
					t.Errorf("%s: unexpected %v", model, p)
				}
			}
		}
	}
	if seen != len(want) {
		t.Errorf("saw %d lines, want %d", seen, len(want))
	}
	// --encoding overrides
	oc := NewCounter(Options{Registry: models.Default(), Encoding: "cl100k_base", AssumeOutput: 10})
	a := oc.Analyze(EndpointChat, []byte(`{"model":"my-custom-model","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
	if a.Count.Encoding != "cl100k_base" || a.Count.Estimated {
		t.Errorf("--encoding: %+v %v", a.Count, a.Problems)
	}
}

// Case B29: output budgets.
func TestB29OutputBudgets(t *testing.T) {
	c := newTestCounter(t)
	lines := readLines(t, "B29.jsonl")
	want := map[string]struct {
		code   string
		budget int64
	}{
		"r1": {CodeMaxTokensOnReasoningModel, 2000},
		"r2": {"", 2000},
		"r3": {CodeConflictingOutputBudget, 200},
		"r4": {"", 16000},
		"r5": {CodeSmallReasoningBudget, 300},
		"r6": {CodeNoOutputBudget, 1024},
	}
	for _, line := range lines {
		id, url, body := batchLine(t, line)
		a := c.Analyze(url, body)
		w := want[id]
		if w.code != "" {
			p := hasCode(a, w.code)
			if p == nil {
				t.Errorf("%s: problems %v, want %s", id, codes(a), w.code)
			} else if p.Severity != CodeSeverity[w.code] {
				t.Errorf("%s: %s severity %s", id, w.code, p.Severity)
			}
		} else if len(a.Problems) != 0 {
			t.Errorf("%s: unexpected problems %v", id, a.Problems)
		}
		if a.Count.OutputBudget != w.budget || a.Count.TPMCharge != a.Count.PromptTokens+w.budget {
			t.Errorf("%s: count %+v, want budget %d", id, a.Count, w.budget)
		}
		if id == "r1" && !strings.Contains(hasCode(a, w.code).Message, "use max_completion_tokens") {
			t.Errorf("r1 message: %q", hasCode(a, w.code).Message)
		}
		if id == "r6" && (!a.Count.BudgetAssumed || !strings.Contains(hasCode(a, w.code).Message, "1024")) {
			t.Errorf("r6: %+v %v", a.Count, a.Problems)
		}
		if id == "r4" && a.Count.TPMCharge != 16013 {
			t.Errorf("r4: TPM charge %d, want 16013 (case B29)", a.Count.TPMCharge)
		}
	}
}

// Case B03 line 6: a Responses body sent to the chat endpoint.
func TestB03BodyEndpointMismatch(t *testing.T) {
	c := newTestCounter(t)
	lines := readLines(t, "B03.jsonl")
	_, url, body := batchLine(t, lines[5])
	a := c.Analyze(url, body)
	p := hasCode(a, CodeBodyEndpointMismatch)
	if p == nil || !strings.Contains(p.Message, `body has "input" but no "messages"; that is a /v1/responses body`) {
		t.Fatalf("problems %v", a.Problems)
	}
	if a.Count.PromptTokens == 0 {
		t.Errorf("mismatched body still counted as what it is: %+v", a.Count)
	}
	_, url, body = batchLine(t, lines[4])
	if a := c.Analyze(url, body); hasCode(a, CodeBodyEndpointMismatch) != nil {
		t.Errorf("line 5 is a valid responses body: %v", a.Problems)
	}
}

// Every problem code, from a body that shows it.
func TestProblemCodes(t *testing.T) {
	c := newTestCounter(t)
	long := strings.Repeat("word ", 9000)
	many := make([]string, 2049)
	for i := range many {
		many[i] = "x"
	}
	big := make([]string, 40) // 40 × 8,000 tokens > 300,000
	for i := range big {
		big[i] = strings.Repeat(" word", 8000)
	}
	tests := []struct {
		name, endpoint, body, code string
	}{
		{"invalid json", EndpointChat, `{"model":`, CodeInvalidJSON},
		{"trailing data", EndpointChat, `{} {}`, CodeInvalidJSON},
		{"empty body", EndpointChat, ``, CodeInvalidJSON},
		{"array body", EndpointChat, `[{"model":"gpt-4o"}]`, CodeBodyNotObject},
		{"string body", EndpointChat, `"just a string"`, CodeBodyNotObject},
		{"responses body to chat", EndpointChat, `{"model":"gpt-4o","input":"hi"}`, CodeBodyEndpointMismatch},
		{"chat body to responses", EndpointResponses, `{"model":"gpt-4o","messages":[]}`, CodeBodyEndpointMismatch},
		{"chat body to embeddings", EndpointEmbeddings, `{"model":"text-embedding-3-small","messages":[]}`, CodeBodyEndpointMismatch},
		{"chat body to completions", EndpointCompletions, `{"model":"gpt-4o","messages":[]}`, CodeBodyEndpointMismatch},
		{"no model", EndpointChat, `{"messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, CodeMissingModel},
		{"empty model", EndpointChat, `{"model":"","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, CodeMissingModel},
		{"numeric model", EndpointChat, `{"model":4,"messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, CodeMissingModel},
		{"stream", EndpointChat, `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, CodeStreamNotSupported},
		{"no messages", EndpointChat, `{"model":"gpt-4o","max_tokens":5}`, CodeMessagesMissing},
		{"messages not array", EndpointChat, `{"model":"gpt-4o","messages":"hi","max_tokens":5}`, CodeMessagesMissing},
		{"messages empty", EndpointChat, `{"model":"gpt-4o","messages":[],"max_tokens":5}`, CodeMessagesEmpty},
		{"message not object", EndpointChat, `{"model":"gpt-4o","messages":["hi"],"max_tokens":5}`, CodeMessageInvalid},
		{"bad role", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"human","content":"hi"}],"max_tokens":5}`, CodeMessageInvalid},
		{"no role", EndpointChat, `{"model":"gpt-4o","messages":[{"content":"hi"}],"max_tokens":5}`, CodeMessageInvalid},
		{"content number", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":5}],"max_tokens":5}`, CodeMessageInvalid},
		{"user content null", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":null}],"max_tokens":5}`, CodeMessageInvalid},
		{"part without type", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":[{"text":"hi"}]}],"max_tokens":5}`, CodeMessageInvalid},
		{"tool without id", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"tool","content":"42"}],"max_tokens":5}`, CodeMessageInvalid},
		{"bad detail", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/a.png","detail":"ultra"}}]}],"max_tokens":5}`, CodeMessageInvalid},
		{"responses no input", EndpointResponses, `{"model":"gpt-4o","max_output_tokens":5}`, CodeInputMissing},
		{"embeddings no input", EndpointEmbeddings, `{"model":"text-embedding-3-small"}`, CodeInputMissing},
		{"moderations no input", EndpointModerations, `{"model":"omni-moderation-latest"}`, CodeInputMissing},
		{"embeddings empty string", EndpointEmbeddings, `{"model":"text-embedding-3-small","input":""}`, CodeInputInvalid},
		{"embeddings object input", EndpointEmbeddings, `{"model":"text-embedding-3-small","input":{"a":1}}`, CodeInputInvalid},
		{"responses input number", EndpointResponses, `{"model":"gpt-4o","input":3,"max_output_tokens":5}`, CodeInputInvalid},
		{"no prompt", EndpointCompletions, `{"model":"gpt-3.5-turbo-instruct","max_tokens":5}`, CodePromptMissing},
		{"max_tokens on o3-mini", EndpointChat, `{"model":"o3-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5000}`, CodeMaxTokensOnReasoningModel},
		{"max_tokens on gpt-5", EndpointChat, `{"model":"gpt-5","messages":[{"role":"user","content":"hi"}],"max_tokens":5000}`, CodeMaxTokensOnReasoningModel},
		{"both budgets", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"max_completion_tokens":6}`, CodeConflictingOutputBudget},
		{"budget zero", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":0}`, CodeInvalidOutputBudget},
		{"budget string", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":"100"}`, CodeInvalidOutputBudget},
		{"budget float", EndpointResponses, `{"model":"gpt-4o","input":"hi","max_output_tokens":1.5}`, CodeInvalidOutputBudget},
		{"context exceeded", EndpointChat, `{"model":"gpt-4","messages":[{"role":"user","content":"` + long + `"}],"max_tokens":100}`, CodeContextLengthExceeded},
		{"budget over context", EndpointChat, `{"model":"gpt-4","messages":[{"role":"user","content":"hi"}],"max_tokens":8190}`, CodeContextLengthExceeded},
		{"budget over model max", EndpointChat, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":20000}`, CodeOutputBudgetOverModelMax},
		{"n zero", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"n":0}`, CodeInvalidN},
		{"n huge", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"n":129}`, CodeInvalidN},
		{"n string", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"n":"2"}`, CodeInvalidN},
		{"embedding too long", EndpointEmbeddings, `{"model":"text-embedding-3-small","input":"` + long + `"}`, CodeEmbeddingInputTooLong},
		{"too many inputs", EndpointEmbeddings, string(mustJSON(t, map[string]any{"model": "text-embedding-3-small", "input": many})), CodeTooManyEmbeddingInputs},
		{"embedding request too large", EndpointEmbeddings, string(mustJSON(t, map[string]any{"model": "text-embedding-3-small", "input": big})), CodeEmbeddingRequestTooLarge},
		{"embedding model on chat", EndpointChat, `{"model":"text-embedding-3-small","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, CodeModelEndpointMismatch},
		{"chat model on embeddings", EndpointEmbeddings, `{"model":"gpt-4o","input":"hi"}`, CodeModelEndpointMismatch},
		{"unknown model", EndpointChat, `{"model":"my-model","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, CodeUnknownModel},
		{"no budget", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, CodeNoOutputBudget},
		{"no budget responses", EndpointResponses, `{"model":"gpt-4o","input":"hi"}`, CodeNoOutputBudget},
		{"small reasoning budget", EndpointChat, `{"model":"o4-mini","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":200}`, CodeSmallReasoningBudget},
		{"remote image", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}],"max_tokens":5}`, CodeImageSizeAssumed},
		{"estimated", EndpointResponses, `{"model":"gpt-4o","input":"hi","max_output_tokens":5}`, CodeEstimated},
		{"provider prefix", EndpointChat, `{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, CodeModelResolved},
		{"duplicate member", EndpointChat, `{"model":"gpt-4o-mini","model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, CodeDuplicateMember},
		{"model whitespace", EndpointChat, `{"model":"gpt-4o-mini ","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, CodeModelWhitespace},
		{"bad encoding", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, ""},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		if tt.code == "" {
			continue
		}
		a := c.Analyze(tt.endpoint, []byte(tt.body))
		p := hasCode(a, tt.code)
		if p == nil {
			t.Errorf("%s: problems %v, want %s", tt.name, codes(a), tt.code)
			continue
		}
		if p.Severity != CodeSeverity[tt.code] {
			t.Errorf("%s: %s has severity %s, want %s", tt.name, tt.code, p.Severity, CodeSeverity[tt.code])
		}
		if p.Message == "" {
			t.Errorf("%s: empty message", tt.name)
		}
		seen[tt.code] = true
	}
	// count_failed: an encoding the tokenizer does not have
	bad := NewCounter(Options{Registry: models.Default(), Encoding: "nope_base", AssumeOutput: 5})
	a := bad.Analyze(EndpointChat, []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
	if p := hasCode(a, CodeCountFailed); p == nil || p.Severity != Error {
		t.Errorf("unknown encoding: %v", a.Problems)
	} else {
		seen[CodeCountFailed] = true
	}
	for code := range CodeSeverity {
		if !seen[code] {
			t.Errorf("no test shows code %s", code)
		}
	}
}

func pngDataURL(t testing.TB, w, h int) string {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestImageRules(t *testing.T) {
	tests := []struct {
		model  string
		w, h   int
		detail string
		want   int64
	}{
		// gpt-4o family: the guide's examples
		{"gpt-4o", 1024, 1024, "high", 765},
		{"gpt-4o", 2048, 4096, "high", 1105},
		{"gpt-4o", 4096, 8192, "low", 85},
		{"gpt-4.1", 500, 500, "high", 255},
		{"gpt-4o", 513, 500, "high", 425},
		{"gpt-4o", 1024, 1024, "auto", 765},
		{"gpt-4o-mini", 1024, 1024, "high", 2833 + 4*5667},
		{"gpt-4o-mini", 1024, 1024, "low", 2833},
		{"o1", 1024, 1024, "high", 75 + 4*150},
		{"o3", 300, 300, "low", 75},
		{"gpt-5", 1024, 1024, "high", 70 + 4*140},
		// patch models: 1024×1024 = 1024 patches; 1800×2400 → 1452 patches (the guide's examples)
		{"gpt-4.1-mini", 1024, 1024, "high", int64(math.Ceil(1024 * 1.62))},
		{"gpt-4.1-nano", 1800, 2400, "high", int64(math.Ceil(1452 * 2.46))},
		{"o4-mini", 1024, 1024, "low", int64(math.Ceil(1024 * 1.72))},
		{"gpt-5-mini", 64, 64, "auto", int64(math.Ceil(4 * 1.62))},
	}
	for _, tt := range tests {
		got, known := ImageTokens(tt.model, tt.w, tt.h, tt.detail)
		if got != tt.want || !known {
			t.Errorf("%s %dx%d %s: %d (known %v), want %d", tt.model, tt.w, tt.h, tt.detail, got, known, tt.want)
		}
	}
	// through Analyze with data-URL images: text part + image part
	c := newTestCounter(t)
	for _, tt := range []struct {
		model, detail string
		w, h          int
		image         int64
		estimated     bool
	}{
		{"gpt-4o", "high", 1024, 1024, 765, false},
		{"gpt-4o", "low", 1024, 1024, 85, false},
		{"gpt-4o", "auto", 600, 400, 85 + 2*170, true},
		{"gpt-4o-mini", "high", 512, 512, 2833 + 5667, false},
		{"o1", "high", 2000, 500, 75 + 4*150, false},
		{"gpt-4.1-mini", "high", 320, 320, int64(math.Ceil(100 * 1.62)), true},
	} {
		mk := func(content any) Analysis {
			return c.Analyze(EndpointChat, mustJSON(t, map[string]any{"model": tt.model, "max_completion_tokens": 5000,
				"messages": []any{map[string]any{"role": "user", "content": content}}}))
		}
		text := mk("What is in this image?")
		img := mk([]any{
			map[string]any{"type": "text", "text": "What is in this image?"},
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": pngDataURL(t, tt.w, tt.h), "detail": tt.detail}},
		})
		if got := img.Count.PromptTokens - text.Count.PromptTokens; got != tt.image {
			t.Errorf("%s %s %dx%d: image adds %d tokens, want %d (%v)", tt.model, tt.detail, tt.w, tt.h, got, tt.image, img.Problems)
		}
		if img.Count.Estimated != tt.estimated {
			t.Errorf("%s %s: estimated=%v want %v (%v)", tt.model, tt.detail, img.Count.Estimated, tt.estimated, img.Problems)
		}
	}
	// a remote URL: assumed 1024×1024 high, flagged
	a := c.Analyze(EndpointChat, []byte(`{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.invalid/cat.jpg","detail":"high"}}]}]}`))
	if !a.Count.Estimated || hasCode(a, CodeImageSizeAssumed) == nil || a.Count.PromptTokens != 3+1+765+3 {
		t.Errorf("remote image: %+v %v", a.Count, a.Problems)
	}
}

func TestWebPHeader(t *testing.T) {
	// VP8X header of a 300×200 canvas
	b := make([]byte, 30)
	copy(b, "RIFF\x00\x00\x00\x00WEBPVP8X")
	b[24], b[27] = 299&0xff, 199
	b[25] = 299 >> 8
	w, h, ok := webpSize(b)
	if !ok || w != 300 || h != 200 {
		t.Fatalf("webp: %d×%d %v", w, h, ok)
	}
	url := "data:image/webp;base64," + base64.StdEncoding.EncodeToString(b)
	if w, h, ok := dataURLSize(url); !ok || w != 300 || h != 200 {
		t.Fatalf("data url webp: %d×%d %v", w, h, ok)
	}
}

func TestEmbeddingsCompletionsResponsesModerations(t *testing.T) {
	c := newTestCounter(t)
	hello, _ := c.CountText("cl100k_base", "hello world")
	hello4o, _ := c.CountText("o200k_base", "hello world")
	tests := []struct {
		name, endpoint, body string
		prompt, budget, n    int64
		estimated            bool
	}{
		{"embeddings string", EndpointEmbeddings, `{"model":"text-embedding-3-small","input":"hello world"}`, int64(hello), 0, 1, false},
		{"embeddings strings", EndpointEmbeddings, `{"model":"text-embedding-3-small","input":["hello world","hello world"]}`, 2 * int64(hello), 0, 1, false},
		{"embeddings tokens", EndpointEmbeddings, `{"model":"text-embedding-3-small","input":[1,2,3,4]}`, 4, 0, 1, false},
		{"embeddings token arrays", EndpointEmbeddings, `{"model":"text-embedding-3-small","input":[[1,2],[3,4,5]]}`, 5, 0, 1, false},
		{"completions string", EndpointCompletions, `{"model":"gpt-3.5-turbo-instruct","prompt":"hello world","max_tokens":7}`, int64(hello), 7, 1, false},
		{"completions default budget", EndpointCompletions, `{"model":"gpt-3.5-turbo-instruct","prompt":"hello world"}`, int64(hello), 16, 1, false},
		{"completions prompts × n", EndpointCompletions, `{"model":"gpt-3.5-turbo-instruct","prompt":["hello world","hello world"],"max_tokens":7,"n":3}`, 2 * int64(hello), 7, 6, false},
		{"completions token ids", EndpointCompletions, `{"model":"gpt-3.5-turbo-instruct","prompt":[15339,1917],"max_tokens":7}`, 2, 7, 1, false},
		{"responses string", EndpointResponses, `{"model":"gpt-4o","input":"hello world","max_output_tokens":9}`, 3 + 1 + int64(hello4o) + 3, 9, 1, true},
		{"responses instructions", EndpointResponses, `{"model":"gpt-4o","instructions":"hello world","input":"hello world","max_output_tokens":9}`, 2*(3+1+int64(hello4o)) + 3, 9, 1, true},
		{"responses items", EndpointResponses, `{"model":"gpt-4o","input":[{"role":"user","content":"hello world"},{"type":"message","role":"user","content":[{"type":"input_text","text":"hello world"}]}],"max_output_tokens":9}`, 2*(3+1+int64(hello4o)) + 3, 9, 1, true},
		{"moderations", EndpointModerations, `{"model":"omni-moderation-latest","input":"hello world"}`, int64(hello4o), 0, 1, false},
		{"moderations default model", EndpointModerations, `{"input":["hello world",  "hello world"]}`, 2 * int64(hello4o), 0, 1, false},
		{"moderations parts", EndpointModerations, `{"model":"omni-moderation-latest","input":[{"type":"text","text":"hello world"}]}`, int64(hello4o), 0, 1, false},
		{"chat n", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":"hello world"}],"max_completion_tokens":10,"n":3}`, 3 + 1 + int64(hello4o) + 3, 10, 3, false},
		{"chat parts", EndpointChat, `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"hello world"}]}],"max_completion_tokens":10}`, 3 + 1 + int64(hello4o) + 3, 10, 1, false},
		{"inferred endpoint", "", `{"model":"gpt-4o","messages":[{"role":"user","content":"hello world"}],"max_completion_tokens":10}`, 3 + 1 + int64(hello4o) + 3, 10, 1, false},
	}
	for _, tt := range tests {
		a := c.Analyze(tt.endpoint, []byte(tt.body))
		cnt := a.Count
		if cnt.PromptTokens != tt.prompt || cnt.OutputBudget != tt.budget || cnt.N != tt.n || cnt.Estimated != tt.estimated {
			t.Errorf("%s: %+v, want prompt %d budget %d n %d estimated %v (%v)", tt.name, cnt, tt.prompt, tt.budget, tt.n, tt.estimated, a.Problems)
		}
		if cnt.TPMCharge != cnt.PromptTokens+cnt.OutputBudget*cnt.N {
			t.Errorf("%s: TPM charge %d", tt.name, cnt.TPMCharge)
		}
		for _, p := range a.Problems {
			if p.Severity == Error {
				t.Errorf("%s: %v", tt.name, p)
			}
		}
	}
}

func TestToolCallsAndToolMessagesAreEstimates(t *testing.T) {
	c := newTestCounter(t)
	body := `{"model":"gpt-4o","max_tokens":50,"messages":[
	 {"role":"user","content":"weather in Paris?"},
	 {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
	 {"role":"tool","tool_call_id":"call_1","content":"18C"}],
	 "response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object","properties":{"t":{"type":"number"}}}}}}`
	a := c.Analyze(EndpointChat, []byte(body))
	if !a.Count.Estimated || hasCode(a, CodeEstimated) == nil {
		t.Fatalf("want an estimate: %+v %v", a.Count, a.Problems)
	}
	for _, p := range a.Problems {
		if p.Severity == Error {
			t.Errorf("valid body: %v", p)
		}
	}
	plain := c.Analyze(EndpointChat, []byte(`{"model":"gpt-4o","max_tokens":50,"messages":[{"role":"user","content":"weather in Paris?"}]}`))
	if a.Count.PromptTokens <= plain.Count.PromptTokens+10 {
		t.Errorf("tool calls, tool message and schema add too little: %d vs %d", a.Count.PromptTokens, plain.Count.PromptTokens)
	}
}

func TestCost(t *testing.T) {
	reg := models.Default()
	m := reg.Lookup("gpt-4o-mini").Model
	std, batch := Cost(m, 1_000_000, 1_000_000)
	if math.Abs(std-(m.Price.Input+m.Price.Output)) > 1e-9 || math.Abs(batch-(m.Price.BatchInput+m.Price.BatchOutput)) > 1e-9 {
		t.Errorf("gpt-4o-mini: %v %v", std, batch)
	}
	noBatch := &models.Model{Price: models.Prices{Input: 2, Output: 8}}
	std, batch = Cost(noBatch, 500_000, 250_000)
	if math.Abs(std-3) > 1e-9 || math.Abs(batch-1.5) > 1e-9 {
		t.Errorf("fallback: %v %v", std, batch)
	}
	if s, b := Cost(nil, 10, 10); s != 0 || b != 0 {
		t.Errorf("nil model: %v %v", s, b)
	}
}

// Case B27: one chat line of 1,000,000 × "a" is counted (exactly: the heap
// merge equals the quadratic one), not hung. No wall-clock assertion.
func TestB27LongWordLine(t *testing.T) {
	c := newTestCounter(t)
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("a", 1_000_000) + `"}],"max_tokens":5}`
	a := c.Analyze(EndpointChat, []byte(body))
	if a.Count.PromptTokens < 100_000 || a.Count.Estimated || len(a.Problems) != 0 {
		t.Fatalf("%+v %v", a.Count, a.Problems)
	}
}

func TestCountTextCacheAndConcurrency(t *testing.T) {
	c := newTestCounter(t)
	text := strings.Repeat("You are a careful assistant. ", 40)
	want := len(fast(t, "o200k_base").encode(text))
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 50; i++ {
				n, err := c.CountText("o200k_base", text)
				if err != nil || n != want {
					done <- fmt.Errorf("got %d, %v; want %d", n, err, want)
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CountText("nope", "x"); err == nil {
		t.Fatal("unknown encoding: no error")
	}
	ref := NewCounter(Options{Reference: true})
	if n, err := ref.CountText("o200k_base", text); err != nil || n != want {
		t.Fatalf("reference: %d %v", n, err)
	}
}

func FuzzAnalyze(f *testing.F) {
	seeds := []string{
		`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}`,
		`{"model":"text-embedding-3-small","input":[[1,2],[3]]}`,
		`{"model":"gpt-4o","input":[{"type":"function_call","name":"f","arguments":"{}"},{"role":"user","content":[{"type":"input_image","image_url":"https://x"}]}],"tools":[{"type":"function","name":"f","parameters":{"properties":{"a":{"type":["string","null"],"enum":[1,null]}}}}]}`,
		`{"model":"o3","messages":[{"role":"assistant","tool_calls":[{"function":{}}]}],"n":-1,"max_tokens":1e99}`,
		`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"max_tokens":-5,"n":128}`,
		`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"max_tokens":9223372036854775807,"n":128}`,
		`[]`, `null`, `{"model":null}`, `{"prompt":[[1],["x"]]}`, "\xff",
	}
	for _, s := range seeds {
		f.Add(s, EndpointChat)
		f.Add(s, EndpointResponses)
		f.Add(s, "")
	}
	c := NewCounter(Options{Registry: models.Default(), AssumeOutput: 100})
	f.Fuzz(func(t *testing.T, body, endpoint string) {
		a := c.Analyze(endpoint, []byte(body))
		for _, p := range a.Problems {
			if p.Code == CodeCountFailed {
				t.Fatalf("internal failure on %q: %v", body, p)
			}
			if CodeSeverity[p.Code] != p.Severity {
				t.Fatalf("code %s with severity %s", p.Code, p.Severity)
			}
		}
		if a.Count.PromptTokens < 0 || a.Count.N < 1 || a.Count.OutputBudget < 0 || a.Count.TPMCharge < a.Count.PromptTokens {
			t.Fatalf("count %+v", a.Count)
		}
	})
}

// Invalid UTF-8 inside a JSON string counts as one U+FFFD per bad byte.
func TestInvalidUTF8CountsReplacementPerByte(t *testing.T) {
	c := newTestCounter(t)
	bad := c.Analyze(EndpointChat, []byte("{\"model\":\"gpt-4o\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"ab\xff\xfecd\"}]}"))
	good := c.Analyze(EndpointChat, []byte(`{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"ab\ufffd\ufffdcd"}]}`))
	if bad.Count.PromptTokens != good.Count.PromptTokens || bad.Count.PromptTokens == 0 {
		t.Fatalf("invalid UTF-8: %d, with U+FFFD per byte: %d", bad.Count.PromptTokens, good.Count.PromptTokens)
	}
	n1, _ := c.CountText("o200k_base", "ab\xff\xfecd")
	n2, _ := c.CountText("o200k_base", "ab\ufffd\ufffdcd")
	if n1 != n2 {
		t.Fatalf("CountText: %d vs %d", n1, n2)
	}
}

func TestBuiltinToolsAreEstimatesNotErrors(t *testing.T) {
	c := newTestCounter(t)
	a := c.Analyze(EndpointResponses, []byte(`{"model":"gpt-4o","input":"hi","max_output_tokens":50,"tools":[{"type":"web_search"},{"type":"function","name":"f","description":"d","parameters":{"type":"object","properties":{"x":{"type":"string","description":"y"}}}}]}`))
	if !strings.Contains(hasCode(a, CodeEstimated).Message, "web_search") {
		t.Fatalf("%v", a.Problems)
	}
	plain := c.Analyze(EndpointResponses, []byte(`{"model":"gpt-4o","input":"hi","max_output_tokens":50}`))
	if d := a.Count.PromptTokens - plain.Count.PromptTokens; d < 7+3+3+12 {
		t.Fatalf("function tool adds %d tokens", d)
	}
}

func TestEncodingsList(t *testing.T) {
	got := strings.Join(Encodings(), ",")
	if got != "cl100k_base,o200k_base,p50k_base,p50k_edit,r50k_base" {
		t.Fatalf("Encodings() = %s", got)
	}
	c := newTestCounter(t)
	for _, e := range Encodings() {
		if n, err := c.CountText(e, "hello world"); err != nil || n != 2 {
			t.Errorf("%s: %d %v", e, n, err)
		}
	}
}

package tokens

import (
	"strings"
	"testing"
)

// TestUnknownModelAlwaysWarned (defect 4): a name the tiktoken prefix table
// resolves but the registry does not still gets unknown_model, saying cost
// and limits are unknown, with a suggestion when one is close.
func TestUnknownModelAlwaysWarned(t *testing.T) {
	c := newTestCounter(t)
	tests := []struct{ model, suggest string }{
		{"gpt-4o-mnii", "gpt-4o-mini"},
		{"gpt-4oXYZ", ""},
		{"gpt-4.1-minii", "gpt-4.1-mini"},
		{"o3-mini-high", ""},
		{"gpt-5-turbo", ""},
		{"gpt-4-1106-preview", ""},
		{"gpt-3.5-turbo-16k", ""},
	}
	for _, tt := range tests {
		a := c.Analyze(EndpointChat, []byte(`{"model":"`+tt.model+`","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
		p := hasCode(a, CodeUnknownModel)
		if p == nil || p.Severity != Warning || !strings.Contains(p.Message, "cost and limits unknown") {
			t.Errorf("%q: problems %v", tt.model, a.Problems)
			continue
		}
		if tt.suggest != "" && !strings.Contains(p.Message, "did you mean "+tt.suggest+"?") {
			t.Errorf("%q: no suggestion %s: %s", tt.model, tt.suggest, p.Message)
		}
		if tt.model == "o3-mini-high" && strings.Contains(p.Message, "did you mean") {
			t.Errorf("%q: suggestion too far away: %s", tt.model, p.Message)
		}
	}
	// A registry model and a dated snapshot: no warning.
	for _, m := range []string{"gpt-4o-mini", "gpt-4o-2024-08-06"} {
		if a := c.Analyze(EndpointChat, []byte(`{"model":"`+m+`","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`)); hasCode(a, CodeUnknownModel) != nil {
			t.Errorf("%s: %v", m, a.Problems)
		}
	}
}

// TestModelEndpointTable (defect 10): chat-only, completions-only and
// embedding models on the wrong endpoint.
func TestModelEndpointTable(t *testing.T) {
	c := newTestCounter(t)
	tests := []struct {
		endpoint, body string
		want           bool
	}{
		{EndpointCompletions, `{"model":"gpt-4o-mini","prompt":"hi","max_tokens":5}`, true},
		{EndpointChat, `{"model":"davinci-002","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, true},
		{EndpointChat, `{"model":"babbage-002","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, true},
		{EndpointResponses, `{"model":"gpt-3.5-turbo-instruct","input":"hi","max_output_tokens":5}`, true},
		{EndpointEmbeddings, `{"model":"gpt-4o","input":"hi"}`, true},
		{EndpointChat, `{"model":"text-embedding-3-small","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, true},
		{EndpointCompletions, `{"model":"gpt-3.5-turbo-instruct","prompt":"hi","max_tokens":5}`, false},
		{EndpointCompletions, `{"model":"davinci-002","prompt":"hi","max_tokens":5}`, false},
		{EndpointChat, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`, false},
		{EndpointEmbeddings, `{"model":"text-embedding-3-small","input":"hi"}`, false},
	}
	for _, tt := range tests {
		a := c.Analyze(tt.endpoint, []byte(tt.body))
		if got := hasCode(a, CodeModelEndpointMismatch) != nil; got != tt.want {
			t.Errorf("%s %s: mismatch=%v, want %v (%v)", tt.endpoint, tt.body, got, tt.want, a.Problems)
		}
	}
}

// TestResponsesPromptReference (defect 11): a prompt template reference is
// a valid Responses request, its count an estimate, its budget as given.
func TestResponsesPromptReference(t *testing.T) {
	c := newTestCounter(t)
	a := c.Analyze(EndpointResponses, []byte(`{"model":"gpt-4o","prompt":{"id":"pmpt_1"},"max_output_tokens":10}`))
	for _, p := range a.Problems {
		if p.Severity == Error {
			t.Errorf("error %v", p)
		}
	}
	if a.Count.OutputBudget != 10 || !a.Count.Estimated {
		t.Errorf("count %+v", a.Count)
	}
	// Inferred from the body alone.
	if a := c.Analyze("", []byte(`{"model":"gpt-4o","prompt":{"id":"pmpt_1"},"max_output_tokens":10}`)); a.Count.OutputBudget != 10 || hasCode(a, CodePromptMissing) != nil {
		t.Errorf("inferred: %+v %v", a.Count, a.Problems)
	}
	// No id: invalid.
	if a := c.Analyze(EndpointResponses, []byte(`{"model":"gpt-4o","prompt":{},"max_output_tokens":10}`)); hasCode(a, CodeInputInvalid) == nil {
		t.Errorf("no id: %v", a.Problems)
	}
}

// TestInvalidBudgetNotContradicted (defect 21): an invalid budget is
// reported once (no "no max_output_tokens" warning beside it); a huge one
// is capped so totals stay sane; stream as a string, token ids out of
// range and tool_calls without id are errors.
func TestInvalidBudgetNotContradicted(t *testing.T) {
	c := newTestCounter(t)
	for _, v := range []string{"-5", "1e2", `"10"`, "0", "100000000000000000000000000000"} {
		a := c.Analyze(EndpointResponses, []byte(`{"model":"gpt-4o","input":"x","max_output_tokens":`+v+`}`))
		if hasCode(a, CodeInvalidOutputBudget) == nil || hasCode(a, CodeNoOutputBudget) != nil {
			t.Errorf("%s: %v", v, codes(a))
		}
	}
	a := c.Analyze(EndpointChat, []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":9223372036854775807}`))
	if a.Count.OutputBudget != 16384 || !strings.Contains(hasCode(a, CodeOutputBudgetOverModelMax).Message, "9223372036854775807") {
		t.Errorf("huge budget: %+v %v", a.Count, a.Problems)
	}
	a = c.Analyze(EndpointChat, []byte(`{"model":"my-model","messages":[{"role":"user","content":"hi"}],"max_tokens":9223372036854775807}`))
	if a.Count.OutputBudget > 1<<20 {
		t.Errorf("unknown model huge budget not capped: %+v", a.Count)
	}
	if a := c.Analyze(EndpointChat, []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":"true","max_tokens":1}`)); hasCode(a, CodeStreamNotSupported) == nil {
		t.Errorf("stream string: %v", a.Problems)
	}
	if a := c.Analyze(EndpointChat, []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":false,"max_tokens":1}`)); hasCode(a, CodeStreamNotSupported) != nil {
		t.Errorf("stream false: %v", a.Problems)
	}
	for _, in := range []string{`[-1]`, `[9999999999]`, `[[1,2],[200019]]`} {
		if a := c.Analyze(EndpointEmbeddings, []byte(`{"model":"text-embedding-3-small","input":`+in+`}`)); hasCode(a, CodeInputInvalid) == nil {
			t.Errorf("token ids %s: %v", in, a.Problems)
		}
	}
	if a := c.Analyze(EndpointEmbeddings, []byte(`{"model":"text-embedding-3-small","input":[0,100276]}`)); hasCode(a, CodeInputInvalid) != nil {
		t.Errorf("valid cl100k ids: %v", a.Problems)
	}
	a = c.Analyze(EndpointChat, []byte(`{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"x","content":"1"}]}`))
	if p := hasCode(a, CodeMessageInvalid); p == nil || !strings.Contains(p.Message, `"id"`) {
		t.Errorf("tool_calls without id: %v", a.Problems)
	}
}

// TestDuplicateMembersNested (defect 14): duplicates in the body's top
// level and inside messages items, naming the value likely used.
func TestDuplicateMembersNested(t *testing.T) {
	c := newTestCounter(t)
	a := c.Analyze(EndpointChat, []byte(`{"model":"gpt-4o-mini","model":"gpt-4o","messages":[{"role":"user","role":"system","content":"hi"}],"max_tokens":5}`))
	var msgs []string
	for _, p := range a.Problems {
		if p.Code == CodeDuplicateMember {
			msgs = append(msgs, p.Message)
		}
	}
	if len(msgs) != 2 || !strings.Contains(msgs[0], `"model"`) || !strings.Contains(msgs[0], `likely use "gpt-4o"`) ||
		!strings.Contains(msgs[1], "messages[0]") || !strings.Contains(msgs[1], `likely use "system"`) {
		t.Errorf("%q", msgs)
	}
	if a.Model.Model == nil || a.Model.Model.ID != "gpt-4o" {
		t.Errorf("last model not used: %+v", a.Model)
	}
}

// TestDecodeBodyMatchesEncodingJSON: the zero-copy decoder gives what
// encoding/json with UseNumber gives.
func TestDecodeBodyMatchesEncodingJSON(t *testing.T) {
	long := strings.Repeat("abc ", 2000)
	for _, body := range []string{
		`{"a":1,"b":[true,false,null,-1.5e3,"x\u00e9\n"],"c":{"d":"` + long + `"},"e":"` + long + `\"q"}`,
		` { "x" : [ ] , "y" : { } } `,
		"{\"bad\":\"\xff\xfe\"}",
	} {
		want, err1 := decodeJSON([]byte(body))
		got, _, err2 := decodeBody([]byte(body))
		if (err1 == nil) != (err2 == nil) || jsonValue(want) != jsonValue(got) && mustString(t, want) != mustString(t, got) {
			t.Errorf("%.60q: got %v (%v), want %v (%v)", body, got, err2, want, err1)
		}
	}
	if _, _, err := decodeBody([]byte(`{"a":`)); err == nil {
		t.Error("invalid JSON accepted")
	}
}

func mustString(t *testing.T, v any) string {
	t.Helper()
	b := mustJSON(t, v)
	return string(b)
}

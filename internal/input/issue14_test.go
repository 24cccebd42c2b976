package input

import (
	"strings"
	"testing"

	"github.com/oairl/oairl/tokens"
)

// Issue 14 §4: a lone UTF-16 surrogate escape passed validation (Go's
// decoder turns it into U+FFFD); the API rejects the line. It is an error
// naming the line and custom_id; a full pair, an escaped backslash
// followed by "ud83d", and other escapes are fine.
func TestLoneSurrogate(t *testing.T) {
	body := func(content string) string {
		return `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "` + content + `"}]}`
	}
	cases := []struct {
		content string
		lone    bool
	}{
		{`hi \ud83d`, true},             // high surrogate, nothing after
		{`\ud83d x \ude00`, true},       // high, then text: both halves alone
		{`\ude00`, true},                // low surrogate alone
		{`\ud83d\u0041`, true},          // high followed by a non-surrogate escape
		{`\ud83d\ude00 ok`, false},      // a full pair (😀)
		{`\uD83D\uDE00`, false},         // upper-case hex
		{`\\ud83d`, false},              // a backslash, then the text "ud83d"
		{`tab\t quote\" \u00e9`, false}, // other escapes
	}
	var in strings.Builder
	for i, c := range cases {
		in.WriteString(line(`"id-`+string(rune('a'+i))+`"`, `"POST"`, `"/v1/chat/completions"`, body(c.content)) + "\n")
	}
	reqs, _ := scanOne(t, in.String())
	for i, c := range cases {
		p := find(reqs[i:i+1], Summary{}, "lone_surrogate")
		if (p != nil) != c.lone {
			t.Errorf("line %d %s: lone_surrogate %+v, want %v", i+1, c.content, p, c.lone)
			continue
		}
		if p == nil {
			continue
		}
		if p.Severity != tokens.Error || p.Line != i+1 || p.CustomID != "id-"+string(rune('a'+i)) || reqs[i].Valid() {
			t.Errorf("line %d: %+v", i+1, p)
		}
		if !strings.Contains(p.Message, `\u`) {
			t.Errorf("line %d: message does not quote the escape: %s", i+1, p.Message)
		}
	}
	// In a member name and in a bare body too.
	reqs, _ = scanOne(t, `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x", "\udfff": 1}]}`+"\n")
	if find(reqs, Summary{}, "lone_surrogate") == nil {
		t.Errorf("bare body, lone surrogate in a key: %v", codes(reqs, Summary{}))
	}
}

// Issue 14 §4: a line in another provider's batch format got only
// "missing method / url / body"; it now gets one error saying what it
// looks like.
func TestOtherProviderFormat(t *testing.T) {
	in := `{"custom_id": "a1", "params": {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello"}]}}
{"key": "g1", "request": {"contents": [{"parts": [{"text": "Hello"}], "role": "user"}]}}
{"recordId": "r1", "modelInput": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": []}}
{"custom_id": "ok", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}}
`
	reqs, _ := scanOne(t, in)
	for i, want := range []string{"Anthropic Message Batches", "Gemini / Vertex AI", "Amazon Bedrock", ""} {
		p := find(reqs[i:i+1], Summary{}, "other_provider_format")
		if want == "" {
			if p != nil {
				t.Errorf("line %d: %+v", i+1, p)
			}
			continue
		}
		if p == nil || p.Severity != tokens.Error || !strings.Contains(p.Message, want) || !strings.Contains(p.Message, `"body"`) {
			t.Errorf("line %d: %v, want other_provider_format naming %s", i+1, reqs[i].Problems, want)
			continue
		}
		for _, c := range []string{"missing_method", "missing_url", "missing_body", "missing_custom_id"} {
			if find(reqs[i:i+1], Summary{}, c) != nil {
				t.Errorf("line %d: also %s: %v", i+1, c, reqs[i].Problems)
			}
		}
	}
	if reqs[0].CustomID != "a1" {
		t.Errorf("custom_id of the Anthropic line: %q", reqs[0].CustomID)
	}
}

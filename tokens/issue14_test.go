package tokens

import (
	"strings"
	"testing"
)

// Issue 14 §4: a model name with leading or trailing whitespace was only an
// unknown_model warning; the API answers model_not_found, so it is an
// error (and not also an unknown_model warning).
func TestModelWhitespaceIsError(t *testing.T) {
	c := newTestCounter(t)
	for _, m := range []string{"gpt-4o-mini ", " gpt-4o-mini", "gpt-4o\t", "\ngpt-4o", "gpt-4o-mnii "} {
		a := c.Analyze(EndpointChat, []byte(`{"model":`+jsonQuote(m)+`,"messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
		p := hasCode(a, CodeModelWhitespace)
		if p == nil || p.Severity != Error || !strings.Contains(p.Message, "model_not_found") || !strings.Contains(p.Message, `write "`+strings.TrimSpace(m)+`"`) {
			t.Errorf("%q: problems %v", m, a.Problems)
		}
		if hasCode(a, CodeUnknownModel) != nil {
			t.Errorf("%q: also unknown_model: %v", m, a.Problems)
		}
	}
	if a := c.Analyze(EndpointChat, []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`)); hasCode(a, CodeModelWhitespace) != nil {
		t.Errorf("clean name: %v", a.Problems)
	}
	if CodeSeverity[CodeModelWhitespace] != Error {
		t.Errorf("CodeSeverity: %v", CodeSeverity[CodeModelWhitespace])
	}
}

func jsonQuote(s string) string {
	r := strings.NewReplacer(`"`, `\"`, "\t", `\t`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

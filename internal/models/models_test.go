package models

import (
	"strings"
	"testing"
)

func TestBuiltinLoads(t *testing.T) {
	r, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	ms := r.Models()
	if len(ms) < 40 {
		t.Fatalf("registry has %d models, want the ~47 of the research table", len(ms))
	}
	for _, m := range ms {
		if m.Encoding == "" {
			t.Errorf("%s: no encoding", m.ID)
		}
		if m.Source.Prices == "" && m.Source.Limits == "" {
			t.Errorf("%s: no source", m.ID)
		}
		if m.ContextWindow == 0 {
			t.Errorf("%s: no context window", m.ID)
		}
	}
}

// Case B24: the model → encoding table, deterministic (longest prefix).
func TestLookupEncodings(t *testing.T) {
	r := Default()
	cases := []struct {
		name, enc string
		known     bool
		modelID   string
	}{
		{"o1", "o200k_base", true, "o1"},
		{"o3", "o200k_base", true, "o3"},
		{"o3-mini", "o200k_base", true, "o3-mini"},
		{"o4-mini", "o200k_base", true, "o4-mini"},
		{"gpt-5", "o200k_base", true, "gpt-5"},
		{"gpt-5-mini", "o200k_base", true, "gpt-5-mini"},
		{"gpt-5.1", "o200k_base", true, "gpt-5.1"},
		{"gpt-4.1-mini", "o200k_base", true, "gpt-4.1-mini"},
		{"gpt-4o-mini", "o200k_base", true, "gpt-4o-mini"},
		{"gpt-4o-2024-08-06", "o200k_base", true, "gpt-4o"},
		{"gpt-4o-2024-05-13", "o200k_base", true, "gpt-4o"},
		{"gpt-4o-mini-2024-07-18", "o200k_base", true, "gpt-4o-mini"},
		{"chatgpt-4o-latest", "o200k_base", true, "chatgpt-4o-latest"},
		{"ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base", true, "gpt-4o-mini"},
		{"ft:gpt-4-0613:acme::xyz", "cl100k_base", true, "gpt-4"},
		{"gpt-4-turbo", "cl100k_base", true, "gpt-4-turbo"},
		{"gpt-4-turbo-2024-04-09", "cl100k_base", true, "gpt-4-turbo"},
		{"gpt-3.5-turbo-0125", "cl100k_base", true, "gpt-3.5-turbo"},
		{"gpt-3.5-turbo-0301", "cl100k_base", true, "gpt-3.5-turbo"},
		{"text-embedding-3-small", "cl100k_base", true, "text-embedding-3-small"},
		{"openai/gpt-4o", "o200k_base", true, "gpt-4o"},
		{"gpt-4-32k-0314", "cl100k_base", true, ""},
		{"text-davinci-003", "p50k_base", true, ""},
		{"my-custom-model", "o200k_base", false, ""},
	}
	for i := 0; i < 20; i++ { // map order must not matter
		for _, c := range cases {
			res := r.Lookup(c.name)
			if res.Encoding != c.enc || res.Known != c.known {
				t.Fatalf("Lookup(%q) = %s known=%v, want %s known=%v", c.name, res.Encoding, res.Known, c.enc, c.known)
			}
			got := ""
			if res.Model != nil {
				got = res.Model.ID
			}
			if got != c.modelID {
				t.Fatalf("Lookup(%q).Model = %q, want %q", c.name, got, c.modelID)
			}
		}
	}
	if n := r.Lookup("openai/gpt-4o").Note; !strings.Contains(n, "provider prefix") {
		t.Errorf("provider prefix note = %q", n)
	}
}

func TestTierLimitsAndMatch(t *testing.T) {
	m := Default().Lookup("gpt-4o").Model
	l, ok := m.TierLimits("tier1")
	if !ok || l.RPM != 500 || l.TPM != 30000 || l.BatchQueueTokens != 90000 {
		t.Fatalf("gpt-4o tier 1 = %+v", l)
	}
	if got := m.MatchTier(500, 30000); got != "1" {
		t.Errorf("MatchTier(500, 30000) = %q, want 1", got)
	}
	if got := m.MatchTier(123, 456); got != "" {
		t.Errorf("MatchTier(custom) = %q, want \"\"", got)
	}
	if _, ok := m.TierLimits("7"); ok {
		t.Error("tier 7 should not exist")
	}
}

func TestOverrides(t *testing.T) {
	r, err := Load(strings.NewReader(`{"models":[{"id":"gpt-4o","encoding":"o200k_base","context_window":1000,"price_per_1m":{"input":1},"source":{}},{"id":"my-model","encoding":"cl100k_base","context_window":4096,"price_per_1m":{},"source":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Lookup("gpt-4o").Model.ContextWindow; got != 1000 {
		t.Errorf("override context window = %d, want 1000", got)
	}
	if res := r.Lookup("my-model"); !res.Known || res.Encoding != "cl100k_base" {
		t.Errorf("added model = %+v", res)
	}
	if _, err := Load(strings.NewReader(`{"models":[{"idd":"x"}]}`)); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestLongContextLimits(t *testing.T) {
	m := Default().Lookup("gpt-4.1").Model
	if th := m.LongContextThreshold(); th != 128000 {
		t.Fatalf("threshold = %d", th)
	}
	l, lc, ok := m.LimitsFor("1", 150000)
	if !ok || !lc || l.TPM != 200000 {
		t.Fatalf("long prompt limits = %+v lc=%v ok=%v", l, lc, ok)
	}
	l, lc, ok = m.LimitsFor("1", 1000)
	if !ok || lc || l.TPM != 30000 {
		t.Fatalf("short prompt limits = %+v lc=%v ok=%v", l, lc, ok)
	}
	if th := Default().Lookup("gpt-4o").Model.LongContextThreshold(); th != 0 {
		t.Fatalf("gpt-4o has no long context bucket, got %d", th)
	}
}

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

// Shared-limit groups: members map to the group's key (so pacing, sim and
// count keep one pool), dated snapshots to their model's id, unknown names
// to themselves; a group lends its first known member's tier limits.
func TestLimitKeyAndGroups(t *testing.T) {
	r := Default()
	for name, want := range map[string]string{
		"gpt-realtime-mini":            "gpt-4o-mini-realtime", // built-in group (observed 429 names the pool)
		"gpt-4o-mini-realtime-preview": "gpt-4o-mini-realtime",
		"gpt-4o-2024-08-06":            "gpt-4o",
		"openai/gpt-4o-mini":           "gpt-4o-mini",
		"my-local-llama":               "my-local-llama",
		"":                             "",
	} {
		if got := r.LimitKey(name); got != want {
			t.Errorf("LimitKey(%q) = %q, want %q", name, got, want)
		}
	}
	for _, g := range r.Groups() {
		if g.Source == "" || g.Date == "" || len(g.Members) == 0 {
			t.Errorf("group %s lacks source, date or members", g.ID)
		}
	}
	over := `{"shared_limit_groups": [{"id": "mini-pool", "members": ["gpt-4o-mini", "gpt-4.1-mini"], "source": "test", "date": "2026-12-04"}]}`
	r2, err := Load(strings.NewReader(over))
	if err != nil {
		t.Fatal(err)
	}
	if k1, k2 := r2.LimitKey("gpt-4o-mini-2024-07-18"), r2.LimitKey("gpt-4.1-mini"); k1 != "mini-pool" || k2 != "mini-pool" {
		t.Errorf("keys %q %q, want mini-pool", k1, k2)
	}
	l, ok := r2.KeyLimits("mini-pool", "1")
	want, _ := r2.Lookup("gpt-4o-mini").Model.TierLimits("1")
	if !ok || l != want {
		t.Errorf("KeyLimits = %+v %v, want gpt-4o-mini's %+v", l, ok, want)
	}
	if l, ok := r2.KeyLimits("gpt-4o", "1"); !ok || l.TPM != 30000 {
		t.Errorf("plain model KeyLimits = %+v %v", l, ok)
	}
	if _, err := Load(strings.NewReader(`{"shared_limit_groups": [{"id": "x", "members": ["gpt-4o"]}]}`)); err == nil || !strings.Contains(err.Error(), "source and date") {
		t.Errorf("group without evidence: err = %v", err)
	}
}

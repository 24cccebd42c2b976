package redact

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	const key = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
	cases := []string{
		"Incorrect API key provided: " + key + ". You can find your API key at ...",
		`{"Authorization": "Bearer ` + key + `"}`,
		"Authorization: Bearer " + key,
		"post http://x/v1?key=" + key + ": connection refused",
	}
	for _, c := range cases {
		got := String(c, key)
		if strings.Contains(got, key) || strings.Contains(got, "AbCdEfGhIjKl") {
			t.Errorf("String(%q) = %q still holds the key", c, got)
		}
	}
	// An unknown key-looking token is masked too.
	if got := String("key sk-svcacct-zzzzzzzzzzzzzzzz9999 bad"); strings.Contains(got, "zzzzzzzz") {
		t.Errorf("unlisted key kept: %q", got)
	}
	// Ordinary text is untouched.
	if got := String("rate limit reached for gpt-4o"); got != "rate limit reached for gpt-4o" {
		t.Errorf("changed ordinary text: %q", got)
	}
	if Key("") != "" || Key("short") != "***" || Key(key) != "sk-…6789" {
		t.Errorf("Key forms: %q %q %q", Key(""), Key("short"), Key(key))
	}
}

func TestIDs(t *testing.T) {
	got := IDs("Rate limit reached for gpt-4o in organization org-AbC123xyz789 on tokens; project proj_QwErTy123456")
	if strings.Contains(got, "AbC123xyz789") || strings.Contains(got, "QwErTy123456") {
		t.Errorf("IDs left an id: %q", got)
	}
	if !strings.Contains(got, "gpt-4o") {
		t.Errorf("IDs changed the model: %q", got)
	}
}

// TestStringProviders: keys of every supported provider are masked without
// being listed (breaker defect 6: a Groq key in a 401 message was printed).
func TestStringProviders(t *testing.T) {
	for _, tc := range []struct{ in, secret string }{
		{"Incorrect API key provided: gsk_GROQSECRETKEY1234567890abcdefghijkl", "GROQSECRETKEY"},
		{"invalid x-api-key sk-ant-api03-ANTHROPICSECRET1234567890", "ANTHROPICSECRET"},
		{"key sk-or-v1-0123456789abcdefOPENROUTERSECRET", "OPENROUTERSECRET"},
		{"sk-proj-PROJSECRET0123456789 and sk-svcacct-SVCSECRET0123456789", "SECRET0123"},
		{"Access denied: invalid subscription key 0123456789abcdef0123456789abcdef.", "0123456789abcdef0123456789ab"},
		{"Incorrect API key provided: 0123456789ABCDEF0123456789ABCDEF", "0123456789ABCDEF0123456789AB"},
		{"api-key: fedcba9876543210fedcba9876543210", "fedcba9876543210fedcba987654"},
		{"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGci"},
	} {
		if got := String(tc.in); strings.Contains(got, tc.secret) {
			t.Errorf("String(%q) = %q still holds %q", tc.in, got, tc.secret)
		}
	}
	// A 32-hex request id that does not follow "key" is kept.
	const rid = "request id 500d9fff0123456789abcdef01234567 failed"
	if got := String(rid); got != rid {
		t.Errorf("request id changed: %q", got)
	}
}

// TestIDsForms: every organization/project id form in wire-formats.md is
// masked under --redact (breaker defect 6: Anthropic's 2026 wording).
func TestIDsForms(t *testing.T) {
	in := "This request would exceed the rate limit for your organization (0dccdde6-aaaa-bbbb-cccc-123456789abc) of 30,000 input tokens per minute (org: 8016abcd-1111-2222-3333-444455556666, model: claude-opus-4-6). " +
		"Groq organization `org_01kesabcdef` project proj_AbC123456 user-XyZ987654321 organization_id: 1a2b3c4d5e6f"
	got := IDs(in)
	for _, secret := range []string{"0dccdde6", "8016abcd", "01kesabcdef", "AbC123456", "XyZ987654321", "1a2b3c4d5e6f"} {
		if strings.Contains(got, secret) {
			t.Errorf("IDs left %q: %q", secret, got)
		}
	}
	for _, keep := range []string{"30,000", "claude-opus-4-6", "org_…", "proj_…", "user-…"} {
		if !strings.Contains(got, keep) {
			t.Errorf("IDs lost %q: %q", keep, got)
		}
	}
}

// TestStringEscapedForms (issue 14 §0): a key echoed with JSON \u escapes,
// with doubled backslashes (a body quoted inside a JSON report) or without
// its kind prefix is masked, JSON stays valid, and text without a key is
// returned byte for byte.
func TestStringEscapedForms(t *testing.T) {
	const key = "sk-proj-SECRETabcdef123456789"
	for _, in := range []string{
		`{"message":"Incorrect API key provided: \u0073k-proj-SECRETabcdef123456789."}`,
		`{"message":"key \u0073\u006B\u002d\u0070roj-SECRET\u0061bcdef123456789"}`,
		`{"body":"{\"message\":\"key \\u0073k-proj-SECRETabcdef123456789\"}"}`,
		`{"message":"Incorrect API key provided: proj-SECRETabcdef123456789"}`,
	} {
		got := String(in, key)
		if strings.Contains(got, "SECRET") {
			t.Errorf("String(%s) = %s keeps the key", in, got)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("String(%s) = %s is not JSON", in, got)
		}
		if b := Body([]byte(in), key); strings.Contains(string(b), "SECRET") || !json.Valid(b) {
			t.Errorf("Body(%s) = %s", in, b)
		}
	}
	// An unlisted key-shaped token written with escapes is masked too.
	if got := String(`"\u0073k-svcacct-zzzzzzzzzzzzzzzz9999"`); strings.Contains(got, "zzzzzzzz") {
		t.Errorf("escaped unlisted key kept: %s", got)
	}
	// Escapes with no key behind them are left as they are.
	for _, in := range []string{`{"a":"\u0041\u00e9\u0022 \\u0073"}`, `caf\u00e9`} {
		if got := String(in, key); got != in {
			t.Errorf("String(%s) changed it to %s", in, got)
		}
	}
	// Body leaves "Bearer …" in model output alone; String masks it.
	const out = `{"content":"the bearer bonds were sold"}`
	if got := string(Body([]byte(out), key)); got != out {
		t.Errorf("Body changed model output: %s", got)
	}
}

// Base URLs are printed and stored without a key in them (breaker1 F7),
// and a key glued to a word by "_" (x-request-id "req_sk-…") is masked
// even when it is not a known secret (F4).
func TestURLAndGluedKey(t *testing.T) {
	const k = "sk-proj-CANARY1234567890abcdefghij"
	for _, u := range []string{
		"http://127.0.0.1:1/v1?api-key=" + k,
		"http://127.0.0.1:1/v1?key=0123456789abcdef0123456789abcdef",
		"http://" + k + "@127.0.0.1:1/v1",
		"http://:" + k + "@127.0.0.1:1/v1",
		"http://user:hunter2hunter2@127.0.0.1:1/v1",
	} {
		got := URL(u, k)
		if strings.Contains(got, "CANARY") || strings.Contains(got, "0123456789abcdef0123") || strings.Contains(got, "hunter2") {
			t.Errorf("URL(%q) = %q: a secret is left", u, got)
		}
		if !strings.Contains(got, "127.0.0.1:1/v1") {
			t.Errorf("URL(%q) = %q: the server is gone", u, got)
		}
	}
	if got := URL("https://api.openai.com/v1"); got != "https://api.openai.com/v1" {
		t.Errorf("plain URL changed: %q", got)
	}
	if got := String("X-Request-Id: req_sk-proj-APPKEYZZ1234567890abcdefghij"); strings.Contains(got, "APPKEYZZ") || !strings.Contains(got, "req_sk-") {
		t.Errorf("glued key: %q", got)
	}
}

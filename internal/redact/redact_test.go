package redact

import (
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

// Package redact removes secrets (API keys, and on request organization and
// project ids) from text before it is printed or logged.
package redact

import (
	"regexp"
	"strings"
)

// keyPattern matches OpenAI-style secret keys (sk-..., sk-proj-..., sk-svcacct-...)
// and Anthropic keys (sk-ant-...), whatever the surrounding text.
var keyPattern = regexp.MustCompile(`\bsk-[A-Za-z0-9_\-]{8,}`)

// bearerPattern matches an Authorization header value.
var bearerPattern = regexp.MustCompile(`(?i)(bearer\s+)[^\s"',]+`)

var idPattern = regexp.MustCompile(`\b(org|proj)[-_][A-Za-z0-9]{6,}`)

// Key returns a display form of a key that keeps only its kind and last
// four characters ("sk-…abcd"); an empty key stays empty.
func Key(key string) string {
	if key == "" {
		return ""
	}
	if len(key) <= 8 {
		return "***"
	}
	return key[:3] + "…" + key[len(key)-4:]
}

// String replaces every given secret, and anything that looks like an API
// key or a bearer token, with a redacted form.
func String(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, Key(sec))
		}
	}
	s = keyPattern.ReplaceAllStringFunc(s, Key)
	s = bearerPattern.ReplaceAllString(s, "${1}***")
	return s
}

// IDs masks organization and project ids (org-…, proj_…) for output meant
// to be pasted publicly (diagnose --redact).
func IDs(s string) string {
	return idPattern.ReplaceAllStringFunc(s, func(m string) string {
		return m[:5] + "…"
	})
}

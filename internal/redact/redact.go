// Package redact removes secrets (API keys, and on request organization and
// project ids) from text before it is printed or logged.
package redact

import (
	"regexp"
	"strings"
)

// keyPattern matches the secret keys of every provider oairl talks to,
// whatever the surrounding text: OpenAI (sk-…, sk-proj-…, sk-svcacct-…,
// sk-admin-…), Anthropic (sk-ant-…), OpenRouter (sk-or-v1-…), DeepSeek and
// most OpenAI-compatible servers (sk-…) and Groq (gsk_…).
var keyPattern = regexp.MustCompile(`\b(?:sk-|gsk_)[A-Za-z0-9_\-]{8,}`)

// azureKeyPattern matches an Azure OpenAI / Cognitive Services key (32 hex
// digits) where it follows the word "key" ("Incorrect API key provided:
// 0123…", "api-key: 0123…", "subscription key 0123…", "?key=0123…"). A bare
// 32-hex string elsewhere is left alone: old OpenAI request ids look the same.
var azureKeyPattern = regexp.MustCompile(`(?i)(key[^\n]{0,30}?)\b([0-9a-f]{32})\b`)

// bearerPattern matches an Authorization header value.
var bearerPattern = regexp.MustCompile(`(?i)(bearer\s+)[^\s"',]+`)

// idPattern matches OpenAI-style organization, project and user ids
// (org-…, org_… (Groq), proj_…, user-…).
var idPattern = regexp.MustCompile(`\b(org|proj|user)[-_][A-Za-z0-9]{6,}`)

// uuidIDPattern matches a hex id (an Anthropic organization UUID, whole or
// shortened) after the words org, organization or project: "organization
// (0dccdde6-…)", "(org: 8016abcd-…, model: …)", "project `1a2b3c4d…`".
var uuidIDPattern = regexp.MustCompile("(?i)(\\b(?:org|organization|organisation|project|workspace)(?:[ _-]?id)?[\\s:=(`'\"]{1,4})([0-9a-f]{6,}(?:-[0-9a-f]{2,})*)\\b")

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
// key (see keyPattern; Azure's 32-hex keys after the word "key") or a
// bearer token, with a redacted form.
func String(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, Key(sec))
		}
	}
	s = keyPattern.ReplaceAllStringFunc(s, Key)
	s = azureKeyPattern.ReplaceAllStringFunc(s, func(m string) string {
		sm := azureKeyPattern.FindStringSubmatch(m)
		return sm[1] + "…" + sm[2][len(sm[2])-4:]
	})
	s = bearerPattern.ReplaceAllString(s, "${1}***")
	return s
}

// IDs masks organization and project ids for output meant to be pasted
// publicly (diagnose --redact): org-…, org_…, proj_…, user-… keep their
// kind prefix; hex ids and UUIDs after "org", "organization" or "project"
// (Anthropic's organization UUIDs) become "…".
func IDs(s string) string {
	s = idPattern.ReplaceAllStringFunc(s, func(m string) string {
		return m[:strings.IndexAny(m, "-_")+1] + "…"
	})
	return uuidIDPattern.ReplaceAllString(s, "${1}…")
}

// Package redact removes secrets (API keys, and on request organization and
// project ids) from text before it is printed or logged.
package redact

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// keyPattern matches the secret keys of every provider oairl talks to,
// whatever the surrounding text: OpenAI (sk-…, sk-proj-…, sk-svcacct-…,
// sk-admin-…), Anthropic (sk-ant-…), OpenRouter (sk-or-v1-…), DeepSeek and
// most OpenAI-compatible servers (sk-…) and Groq (gsk_…).
var keyPattern = regexp.MustCompile(`(?:\b|_)(?:sk-|gsk_)[A-Za-z0-9_\-]{8,}`)

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
//
// It works on the decoded text: a key written with JSON escapes
// ("\u0073k-…", as a server echoing the request may return it, doubled
// backslashes included) is found and masked too, and so is a given secret
// without its kind prefix ("proj-AbCd…" for "sk-proj-AbCd…"). When nothing
// is masked, s comes back unchanged (escapes and all); when something is,
// the escaped key characters are written decoded, which keeps JSON valid
// (only letters, digits, '-' and '_' are decoded).
func String(s string, secrets ...string) string {
	return mask(s, true, secrets)
}

// Body is String for a stored API response body (run's results file):
// it masks the given secrets and key-shaped tokens in any of the forms
// String finds, but leaves the words "key" and "Bearer" in model output
// alone. The result is valid JSON when b is.
func Body(b []byte, secrets ...string) []byte {
	out := mask(string(b), false, secrets)
	if len(out) == len(b) && out == string(b) {
		return b
	}
	return []byte(out)
}

func mask(orig string, prose bool, secrets []string) string {
	s := unescapeKeyChars(orig)
	decoded := s
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, Key(sec))
		}
		if bare := unprefixed(sec); bare != "" {
			s = strings.ReplaceAll(s, bare, Key(sec))
		}
	}
	// Each pattern runs only when a cheap test says it may match: the
	// regexps cost ~100 ns per byte, and diagnose masks every finding of
	// a 100,000-response log.
	if strings.Contains(s, "sk-") || strings.Contains(s, "gsk_") {
		s = keyPattern.ReplaceAllStringFunc(s, func(m string) string {
			// A key glued to a word by "_" (x-request-id "req_sk-…") keeps the "_".
			if strings.HasPrefix(m, "_") {
				return "_" + Key(m[1:])
			}
			return Key(m)
		})
	}
	if prose {
		if hexRun(s, 32) {
			s = azureKeyPattern.ReplaceAllStringFunc(s, func(m string) string {
				sm := azureKeyPattern.FindStringSubmatch(m)
				return sm[1] + "…" + sm[2][len(sm[2])-4:]
			})
		}
		if strings.Contains(s, "earer") || strings.Contains(s, "EARER") {
			s = bearerPattern.ReplaceAllString(s, "${1}***")
		}
	}
	if s == decoded {
		return orig
	}
	return s
}

// keyPrefixes are the kind prefixes a key may be echoed without, longest
// first.
var keyPrefixes = []string{"sk-svcacct-", "sk-admin-", "sk-proj-", "sk-ant-", "sk-or-v1-", "sk-", "gsk_"}

// unprefixed returns secret without its kind prefix when what is left is
// long enough to be unmistakably the key (16 characters), else "".
func unprefixed(secret string) string {
	for _, p := range keyPrefixes {
		if rest, ok := strings.CutPrefix(secret, p); ok {
			if len(rest) >= 16 {
				return rest
			}
			return ""
		}
	}
	return ""
}

// escapedChar matches a JSON \uXXXX escape of an ASCII character, with
// any number of backslashes before it (a body quoted inside another JSON
// text, such as a diagnose report or a trace, doubles them).
var escapedChar = regexp.MustCompile(`\\+u00([0-7][0-9a-fA-F])`)

// unescapeKeyChars decodes the JSON \uXXXX escapes that stand for a
// character keys are made of (ASCII letters, digits, '-' and '_'), so that
// an escaped key reads as the key. Every other escape is left alone.
// Replacing a whole backslash run and its escape by one letter keeps a
// JSON text valid (the run is escaped backslashes plus at most one escape).
func unescapeKeyChars(s string) string {
	if !strings.Contains(s, `\u00`) {
		return s
	}
	return escapedChar.ReplaceAllStringFunc(s, func(m string) string {
		v, _ := strconv.ParseUint(m[len(m)-2:], 16, 8)
		if !isKeyChar(rune(v)) {
			return m
		}
		return string(rune(v))
	})
}

// hexRun reports whether s holds n hex digits in a row.
func hexRun(s string, n int) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' {
			if run++; run >= n {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

func isKeyChar(r rune) bool {
	return r < 128 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
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

// URL returns u fit to print or store: a password in its userinfo
// replaced by url.Redacted's "xxxxx" (a user name that is itself a key,
// "http://KEY@host", masked too), the values of query parameters that
// carry keys or tokens ("?api-key=…", "key", "token", "sig", …) masked,
// and every given secret and key-shaped token masked (String). A u that
// does not parse is masked with String only.
func URL(u string, secrets ...string) string {
	p, err := url.Parse(u)
	if err == nil {
		if p.User != nil {
			if _, ok := p.User.Password(); !ok {
				p.User = url.User("xxxxx")
			}
		}
		if p.RawQuery != "" {
			q := p.Query()
			for k, vv := range q {
				lk := strings.ToLower(k)
				if strings.Contains(lk, "key") || strings.Contains(lk, "token") || strings.Contains(lk, "secret") || lk == "sig" || strings.Contains(lk, "auth") {
					for i := range vv {
						vv[i] = "xxxxx"
					}
				}
			}
			p.RawQuery = q.Encode()
		}
		u = p.Redacted()
	}
	return String(u, secrets...)
}

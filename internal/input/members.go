package input

import (
	"encoding/json"
	"unicode/utf8"
)

// objectMembers splits the top level of a JSON object into its members,
// without copying or decoding the values: each value is a subslice of obj,
// exactly as written. obj must be valid JSON text whose first non-space
// byte is '{' (check with json.Valid first); on anything else it returns
// what it could read, never panicking. When a name repeats, the last value
// wins (as in encoding/json and Python's json), and dups lists the name
// with the value it replaced.
//
// It exists for speed: json.Unmarshal into map[string]json.RawMessage
// validates the line twice and copies every value; this reads it once.
func objectMembers(obj []byte) (m map[string]json.RawMessage, dups []memberDup) {
	m = make(map[string]json.RawMessage, 8)
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return m, nil
	}
	i++
	for {
		i = skipWS(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return m, dups
		}
		if obj[i] == ',' {
			i++
			continue
		}
		if obj[i] != '"' {
			return m, dups
		}
		end := skipString(obj, i)
		if end-1 <= i || end > len(obj) || obj[end-1] != '"' {
			return m, dups // an unterminated name: invalid JSON
		}
		key := string(obj[i+1 : end-1])
		if containsByte(obj[i:end], '\\') || !utf8.Valid(obj[i:end]) {
			var s string
			if json.Unmarshal(obj[i:end], &s) == nil {
				key = s
			}
		}
		i = skipWS(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return m, dups
		}
		i = skipWS(obj, i+1)
		vend := skipValue(obj, i)
		if prev, seen := m[key]; seen {
			dups = append(dups, memberDup{name: key, prev: prev})
		}
		m[key] = json.RawMessage(obj[i:vend:vend])
		i = vend
	}
}

// memberDup is a repeated member name and the earlier value it had.
type memberDup struct {
	name string
	prev json.RawMessage
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] ('"'),
// or len(b) when it is not terminated.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

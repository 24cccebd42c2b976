package tokens

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
	"unsafe"
)

// bigString is the length (bytes) from which a JSON string without
// escapes is not copied: the decoded value is a view of the body's bytes
// (image data URLs and long texts of many MB would otherwise be held
// twice). Shorter strings are copied, so nothing small that a caller may
// keep (the model name) pins the body.
const bigString = 4096

// dupKey is a member name that repeats in one object of the body.
type dupKey struct {
	path        string // "body", "messages[0]", ...
	name        string
	first, last []byte // the values as written
}

// fastDecoder decodes a body that json.Valid accepted into the shapes of
// encoding/json with UseNumber (map[string]any, []any, string,
// json.Number, bool, nil), without copying long strings, and records
// duplicate member names (the last value wins, as in encoding/json).
type fastDecoder struct {
	b     []byte
	i     int
	dups  []dupKey
	stack []pathSeg // where the decoder is, for dupKey.path
}

// pathSeg is one step of a path: a member name, or an array index.
type pathSeg struct {
	name string
	idx  int
}

// path renders the stack as "body", "messages[0]", "messages[0].content".
func (d *fastDecoder) path() string {
	if len(d.stack) == 0 {
		return "body"
	}
	var s string
	for i, g := range d.stack {
		switch {
		case g.name == "":
			s += fmt.Sprintf("[%d]", g.idx)
		case i == 0:
			s = g.name
		default:
			s += "." + g.name
		}
	}
	return s
}

// decodeBody decodes body: the fast path for valid JSON, decodeJSON (for
// its error message) otherwise.
func decodeBody(body []byte) (any, []dupKey, error) {
	if !json.Valid(body) {
		v, err := decodeJSON(body)
		if err == nil { // cannot happen; be safe
			return v, nil, nil
		}
		return nil, nil, err
	}
	d := &fastDecoder{b: body}
	v, err := d.value()
	return v, d.dups, err
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) value() (any, error) {
	d.ws()
	if d.i >= len(d.b) {
		return nil, fmt.Errorf("unexpected end of JSON")
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == 't':
		d.i += 4
		return true, nil
	case c == 'f':
		d.i += 5
		return false, nil
	case c == 'n':
		d.i += 4
		return nil, nil
	default:
		start := d.i
		for d.i < len(d.b) {
			c := d.b[d.i]
			if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
				d.i++
				continue
			}
			break
		}
		return json.Number(string(d.b[start:d.i])), nil
	}
}

func (d *fastDecoder) str() (string, error) {
	start := d.i // at '"'
	esc := false
	j := start + 1
	for ; j < len(d.b); j++ {
		c := d.b[j]
		if c == '\\' {
			esc = true
			j++
			continue
		}
		if c == '"' {
			break
		}
	}
	if j >= len(d.b) {
		return "", fmt.Errorf("unterminated string")
	}
	d.i = j + 1
	raw := d.b[start+1 : j]
	if !esc && utf8.Valid(raw) {
		if len(raw) >= bigString {
			return unsafe.String(unsafe.SliceData(raw), len(raw)), nil
		}
		return string(raw), nil
	}
	var s string
	if err := json.Unmarshal(d.b[start:j+1], &s); err != nil {
		return "", err
	}
	return s, nil
}

// maxDups bounds the duplicate names recorded per body.
const maxDups = 10

func (d *fastDecoder) object() (any, error) {
	objStart := d.i
	d.i++ // '{'
	m := make(map[string]any, 8)
	for {
		d.ws()
		if d.i >= len(d.b) {
			return nil, fmt.Errorf("unexpected end of JSON")
		}
		if d.b[d.i] == '}' {
			d.i++
			return m, nil
		}
		if d.b[d.i] == ',' {
			d.i++
			continue
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		if len(k) >= bigString {
			k = string([]byte(k)) // never keep a view as a map key
		}
		d.ws()
		d.i++ // ':'
		d.ws()
		vstart := d.i
		d.stack = append(d.stack, pathSeg{name: k})
		v, err := d.value()
		d.stack = d.stack[:len(d.stack)-1]
		if err != nil {
			return nil, err
		}
		if _, seen := m[k]; seen && len(d.dups) < maxDups {
			d.dups = append(d.dups, dupKey{path: d.path(), name: k, first: firstValue(d.b[objStart:], k), last: d.b[vstart:d.i]})
		}
		m[k] = v
	}
}

func (d *fastDecoder) array() (any, error) {
	d.i++ // '['
	a := []any{}
	for {
		d.ws()
		if d.i >= len(d.b) {
			return nil, fmt.Errorf("unexpected end of JSON")
		}
		if d.b[d.i] == ']' {
			d.i++
			return a, nil
		}
		if d.b[d.i] == ',' {
			d.i++
			continue
		}
		d.stack = append(d.stack, pathSeg{idx: len(a)})
		v, err := d.value()
		d.stack = d.stack[:len(d.stack)-1]
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
}

// firstValue returns the first value of member name in the object that
// obj starts with, as written (only called when a name repeats).
func firstValue(obj []byte, name string) []byte {
	d := &fastDecoder{b: obj, i: 1}
	for {
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] == '}' {
			return nil
		}
		if d.b[d.i] == ',' {
			d.i++
			continue
		}
		k, err := d.str()
		if err != nil {
			return nil
		}
		d.ws()
		d.i++
		d.ws()
		start := d.i
		if _, err := d.value(); err != nil {
			return nil
		}
		if k == name {
			return d.b[start:d.i]
		}
	}
}

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
		var v any
		if len(d.stack) == 1 && k == "messages" && d.i < len(d.b) && d.b[d.i] == '[' {
			// The chat messages are decoded one at a time when counted
			// (lazyArray): a line of 1.6 M tiny messages would otherwise
			// hold 1.6 M maps (~500 bytes each) at once.
			v, err = d.lazy()
		} else {
			v, err = d.value()
		}
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

// lazyArray is a top-level array member of the body ("messages") kept as
// the offsets of its elements in the body, 4 bytes each, and decoded one
// element at a time by At: memory is bounded by the line's bytes, not by
// how many objects it holds.
type lazyArray struct {
	body   []byte
	name   string
	starts []int32
}

// Len is the number of elements.
func (a *lazyArray) Len() int { return len(a.starts) }

// At decodes element i, with the duplicate member names inside it (paths
// "messages[i]…").
func (a *lazyArray) At(i int) (any, []dupKey, error) {
	d := &fastDecoder{b: a.body, i: int(a.starts[i]), stack: []pathSeg{{name: a.name}, {idx: i}}}
	v, err := d.value()
	return v, d.dups, err
}

// lazy records the element offsets of the array at d.i and skips it.
func (d *fastDecoder) lazy() (any, error) {
	a := &lazyArray{body: d.b, name: d.stack[len(d.stack)-1].name}
	d.i++ // '['
	for {
		d.ws()
		if d.i >= len(d.b) {
			return nil, fmt.Errorf("unexpected end of JSON")
		}
		switch d.b[d.i] {
		case ']':
			d.i++
			return a, nil
		case ',':
			d.i++
			continue
		}
		a.starts = append(a.starts, int32(d.i))
		if err := d.skip(); err != nil {
			return nil, err
		}
	}
}

// skip moves past one value without decoding it (the body is valid JSON).
func (d *fastDecoder) skip() error {
	depth := 0
	for d.i < len(d.b) {
		switch c := d.b[d.i]; c {
		case '"':
			j := d.i + 1
			for ; j < len(d.b) && d.b[j] != '"'; j++ {
				if d.b[j] == '\\' {
					j++
				}
			}
			d.i = j + 1
		case '{', '[':
			depth++
			d.i++
		case '}', ']':
			if depth == 0 {
				return nil // the end of the enclosing array
			}
			depth--
			d.i++
		default:
			if depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
				return nil
			}
			d.i++
			continue
		}
		if depth == 0 {
			return nil
		}
	}
	if depth != 0 {
		return fmt.Errorf("unexpected end of JSON")
	}
	return nil
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

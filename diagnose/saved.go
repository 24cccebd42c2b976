package diagnose

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
)

// Saved-response formats (Capture.Source).
const (
	SourceCurl     = "curl -i"
	SourceJSON     = "json"
	SourcePython   = "python-sdk"
	SourceGoOpenAI = "go-openai"
	SourceNode     = "node-sdk"
)

// ErrNoResponse is returned (wrapped) by ParseSaved when the input holds
// nothing it recognises.
var ErrNoResponse = errors.New("no HTTP response, error body or SDK error line found")

var (
	reStatusLine = regexp.MustCompile(`^(?:< )?HTTP/(?:\d(?:\.\d)?) (\d{3})(?:\s.*)?$`)
	rePython     = regexp.MustCompile(`Error code: (\d{3}) - (.*)$`)
	rePyBatchErr = regexp.MustCompile(`BatchError\((.*)\)`)
	rePyKwarg    = regexp.MustCompile(`(\w+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|None|\d+)`)
	reGoOpenAI   = regexp.MustCompile(`error, status code: (\d{3}), status: ([^,]*), message: (.*?)(?:, body: (.*))?$`)
	reNode       = regexp.MustCompile(`^(?:[\w.]*(?:Error|Exception):? )?([45]\d\d) (.+)$`)
	// openai-python < 1.0 (and LangChain retry logs quoting it) print the
	// exception class and the message, without a status.
	rePyOld = regexp.MustCompile(`\b(RateLimitError|InvalidRequestError|AuthenticationError|PermissionError|ServiceUnavailableError|APIError|NotFoundError|BadRequestError|InternalServerError|APIConnectionError|APITimeoutError|Timeout): (.+)$`)
)

// pyOldStatus maps openai-python 0.x/1.x exception classes to statuses.
var pyOldStatus = map[string]int{
	"RateLimitError": 429, "InvalidRequestError": 400, "BadRequestError": 400, "AuthenticationError": 401,
	"PermissionError": 403, "NotFoundError": 404, "ServiceUnavailableError": 503, "APIError": 500,
	"InternalServerError": 500,
}

// ParseSaved reads saved responses for `oairl diagnose --from`. It accepts,
// in any mix and any number:
//
//   - curl -i (or curl -v "< "-prefixed) output: a status line (HTTP/1.1,
//     HTTP/2 or HTTP/3), headers, a blank line, then the body (one JSON
//     value, or text up to the next status line); 1xx interim responses are
//     skipped;
//   - a raw JSON error body ({"error":{...}}, Anthropic's, vLLM's flat one),
//     a Batch object whose errors.data lists errors, a Batch output/error
//     file line ({"custom_id","response":{"status_code","body"},"error"}),
//     or a bare Batch error {"code","message"}; the status is inferred from
//     error.code/type when the body does not carry it (0 when unknown);
//   - Python SDK lines "Error code: 429 - {'error': {...}}" (a Python dict
//     repr: single quotes, None/True/False), BatchError(code='…', …) reprs,
//     and the pre-1.0 form "openai.error.RateLimitError: Rate limit reached
//     …" (also quoted by LangChain's retry logs), status from the class;
//   - go-openai errors "error, status code: 429, status: 429 Too Many
//     Requests, message: …";
//   - Node SDK errors "429 Rate limit reached for …" (optionally prefixed by
//     the error class, "RateLimitError: 429 …").
//
// Each Capture records its format and 1-based starting line. Lines that
// match nothing are skipped. It fails (wrapping ErrNoResponse) when nothing
// is recognised, and on a read error.
func ParseSaved(r io.Reader) ([]Capture, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading saved response: %w", err)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	p := &savedParser{data: data}
	p.split()
	if err := p.run(); err != nil {
		return nil, err
	}
	if len(p.out) == 0 {
		if p.jsonErr != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoResponse, p.jsonErr)
		}
		return nil, ErrNoResponse
	}
	return p.out, nil
}

type savedParser struct {
	data    []byte
	starts  []int // byte offset of each line
	out     []Capture
	jsonErr error
}

func (p *savedParser) split() {
	p.starts = []int{0}
	for i, c := range p.data {
		if c == '\n' && i+1 < len(p.data) {
			p.starts = append(p.starts, i+1)
		}
	}
	if len(p.data) == 0 {
		p.starts = nil
	}
}

// line returns line i (0-based) without its line ending.
func (p *savedParser) line(i int) string {
	end := len(p.data)
	if i+1 < len(p.starts) {
		end = p.starts[i+1]
	}
	return strings.TrimRight(string(p.data[p.starts[i]:end]), "\r\n")
}

// lineAt returns the index of the line containing byte offset off.
func (p *savedParser) lineAt(off int) int {
	lo, hi := 0, len(p.starts)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if p.starts[mid] <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

func (p *savedParser) run() error {
	n := len(p.starts)
	for i := 0; i < n; {
		ln := p.line(i)
		t := strings.TrimSpace(ln)
		switch {
		case reStatusLine.MatchString(t):
			i = p.curl(i)
		case strings.HasPrefix(t, "{"):
			i = p.jsonAt(i)
		default:
			p.logLine(i, t)
			i++
		}
	}
	return nil
}

// curl parses a response starting at status line i and returns the index
// of the first line after it.
func (p *savedParser) curl(i int) int {
	first := strings.TrimSpace(p.line(i))
	m := reStatusLine.FindStringSubmatch(first)
	status, _ := strconv.Atoi(m[1])
	prefixed := strings.HasPrefix(first, "< ")
	h := http.Header{}
	j := i + 1
	for ; j < len(p.starts); j++ {
		ln := strings.TrimRight(p.line(j), " \t")
		if prefixed {
			if !strings.HasPrefix(ln, "<") {
				break
			}
			ln = strings.TrimSpace(strings.TrimPrefix(ln, "<"))
		}
		if strings.TrimSpace(ln) == "" {
			j++
			break
		}
		k, v, ok := strings.Cut(ln, ":")
		if !ok {
			break
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)), strings.TrimSpace(v))
	}
	if status >= 100 && status < 200 || status == 200 && strings.Contains(strings.ToLower(first), "connection established") {
		// Interim responses, and an HTTPS proxy's CONNECT answer that
		// curl -i prints before the real response.
		return j
	}
	// Body: one JSON value, else text up to the next status line.
	k := j
	for k < len(p.starts) && strings.TrimSpace(p.line(k)) == "" {
		k++
	}
	var body []byte
	next := k
	if k < len(p.starts) && strings.HasPrefix(strings.TrimSpace(p.line(k)), "{") {
		raw, end, err := p.decodeJSON(p.starts[k])
		if err == nil {
			body = raw
			next = p.lineAt(end-1) + 1
		} else {
			p.jsonErr = err
		}
	}
	if body == nil && next == k {
		var lines []string
		for ; next < len(p.starts); next++ {
			ln := p.line(next)
			if reStatusLine.MatchString(strings.TrimSpace(ln)) {
				break
			}
			lines = append(lines, ln)
		}
		body = []byte(strings.TrimSpace(strings.Join(lines, "\n")))
	}
	p.out = append(p.out, Capture{Status: status, Header: h, Body: body, Source: SourceCurl, Line: i + 1})
	return next
}

// decodeJSON decodes one JSON value at byte offset off and returns it and
// the offset just after it.
func (p *savedParser) decodeJSON(off int) ([]byte, int, error) {
	dec := json.NewDecoder(bytes.NewReader(p.data[off:]))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, off, fmt.Errorf("line %d: %w", p.lineAt(off)+1, err)
	}
	return raw, off + int(dec.InputOffset()), nil
}

// jsonAt reads a JSON value (or a Python dict repr) starting on line i.
func (p *savedParser) jsonAt(i int) int {
	off := p.starts[i] + strings.Index(p.line(i), "{")
	raw, end, err := p.decodeJSON(off)
	if err != nil {
		// A Python dict pasted on its own: {'error': {...}}.
		if js, ok := pythonToJSON(strings.TrimSpace(p.line(i))); ok {
			p.addBody(0, []byte(js), SourcePython, i+1)
			return i + 1
		}
		p.jsonErr = err
		return i + 1
	}
	p.addJSONValue(raw, i+1)
	return p.lineAt(end-1) + 1
}

// addJSONValue turns one JSON value into zero or more captures.
func (p *savedParser) addJSONValue(raw []byte, line int) {
	var probe struct {
		Object   string          `json:"object"`
		Errors   json.RawMessage `json:"errors"`
		CustomID *string         `json:"custom_id"`
		Response *struct {
			StatusCode int             `json:"status_code"`
			Body       json.RawMessage `json:"body"`
		} `json:"response"`
		Error   json.RawMessage `json:"error"`
		Code    json.RawMessage `json:"code"`
		Message *string         `json:"message"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return
	}
	switch {
	case probe.Object == "batch":
		var errs struct {
			Data []json.RawMessage `json:"data"`
		}
		_ = json.Unmarshal(probe.Errors, &errs)
		for _, e := range errs.Data {
			p.addBody(0, wrapError(e), SourceJSON, line)
		}
	case probe.CustomID != nil:
		if probe.Response != nil && probe.Response.StatusCode != 0 {
			p.out = append(p.out, Capture{Status: probe.Response.StatusCode, Header: http.Header{},
				Body: []byte(probe.Response.Body), Source: SourceJSON, Line: line})
		} else if len(probe.Error) > 0 && string(probe.Error) != "null" {
			p.addBody(0, wrapError(probe.Error), SourceJSON, line)
		}
	case len(probe.Error) == 0 && probe.Message != nil && len(probe.Code) > 0 && !bytes.Contains(raw, []byte(`"object":"error"`)) &&
		!bytes.Contains(raw, []byte(`"object": "error"`)):
		// A bare Batch error {"code":…, "message":…, "line":…}.
		p.addBody(0, wrapError(raw), SourceJSON, line)
	default:
		p.addBody(0, raw, SourceJSON, line)
	}
}

func wrapError(e []byte) []byte {
	return append(append([]byte(`{"error":`), e...), '}')
}

// addBody appends a capture, inferring the status from the body when it is
// not known.
func (p *savedParser) addBody(status int, body []byte, source string, line int) {
	if status == 0 {
		status = inferStatus(body)
	}
	p.out = append(p.out, Capture{Status: status, Header: http.Header{}, Body: body, Source: source, Line: line})
}

// inferStatus guesses the HTTP status of a saved body without one, from
// error.code/type (0 when nothing says).
func inferStatus(body []byte) int {
	pb := parseBody(body)
	if !pb.isJSON {
		return 0
	}
	if !pb.hasError {
		return 200
	}
	if pb.codeIsInt {
		if n, err := strconv.Atoi(pb.code); err == nil && n >= 100 && n < 600 {
			return n
		}
	}
	code, typ, msg := strings.ToLower(pb.code), strings.ToLower(pb.typ), strings.ToLower(pb.message)
	switch {
	case code == "429":
		return 429
	case billingCodes[code] || typ == "insufficient_quota" || code == "rate_limit_exceeded" || code == "slow_down" ||
		typ == "requests" || typ == "tokens" || typ == "rate_limit_error" || code == "rate_limit_error" ||
		strings.Contains(msg, "rate limit reached") || strings.Contains(msg, "exceeded your current quota"):
		return 429
	case code == "token_limit_exceeded":
		return 0
	case code == "model_not_found" || typ == "not_found_error":
		return 404
	case code == "invalid_api_key" || typ == "authentication_error":
		return 401
	case code == "unsupported_country_region_territory" || typ == "permission_error":
		return 403
	case code == "context_length_exceeded" || typ == "invalid_request_error":
		return 400
	case typ == "overloaded_error":
		return 529
	case code == "server_is_overloaded":
		return 503
	case typ == "server_error" || typ == "api_error":
		return 500
	}
	return 0
}

// logLine recognises one SDK log line.
func (p *savedParser) logLine(i int, t string) {
	if t == "" || strings.HasPrefix(t, "#") {
		return
	}
	if m := rePython.FindStringSubmatch(t); m != nil {
		status, _ := strconv.Atoi(m[1])
		rest := strings.TrimSpace(m[2])
		var body []byte
		if json.Valid([]byte(rest)) {
			body = []byte(rest)
		} else if js, ok := pythonToJSON(rest); ok {
			body = []byte(js)
		} else {
			body = messageBody(rest)
		}
		p.out = append(p.out, Capture{Status: status, Header: http.Header{}, Body: body, Source: SourcePython, Line: i + 1})
		return
	}
	if m := rePyBatchErr.FindStringSubmatch(t); m != nil {
		obj := map[string]any{}
		for _, kv := range rePyKwarg.FindAllStringSubmatch(m[1], -1) {
			if js, ok := pythonToJSON(kv[2]); ok {
				var v any
				if json.Unmarshal([]byte(js), &v) == nil {
					obj[kv[1]] = v
				}
			}
		}
		if len(obj) > 0 {
			e, _ := json.Marshal(obj)
			p.addBody(0, wrapError(e), SourcePython, i+1)
			return
		}
	}
	if m := reGoOpenAI.FindStringSubmatch(t); m != nil {
		status, _ := strconv.Atoi(m[1])
		body := messageBody(m[3])
		if b := strings.TrimSpace(m[4]); b != "" && json.Valid([]byte(b)) {
			body = []byte(b)
		}
		p.out = append(p.out, Capture{Status: status, Header: http.Header{}, Body: body, Source: SourceGoOpenAI, Line: i + 1})
		return
	}
	if m := reNode.FindStringSubmatch(t); m == nil {
		if m := rePyOld.FindStringSubmatch(t); m != nil {
			if st, ok := pyOldStatus[m[1]]; ok {
				msg := strings.TrimSpace(m[2])
				if i := strings.Index(msg, " {"); i > 0 && strings.HasSuffix(msg, "}") {
					// 0.x appends the headers dict after the message.
					msg = strings.TrimSpace(msg[:i])
				}
				p.out = append(p.out, Capture{Status: st, Header: http.Header{}, Body: messageBody(msg), Source: SourcePython, Line: i + 1})
			}
			return
		}
	}
	if m := reNode.FindStringSubmatch(t); m != nil {
		status, _ := strconv.Atoi(m[1])
		msg := strings.TrimSpace(m[2])
		body := messageBody(msg)
		if msg == "status code (no body)" {
			body = nil
		}
		p.out = append(p.out, Capture{Status: status, Header: http.Header{}, Body: body, Source: SourceNode, Line: i + 1})
	}
}

// messageBody wraps a bare message in OpenAI's error envelope.
func messageBody(msg string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg}})
	return b
}

// pythonToJSON converts a Python literal (a dict/list repr with single- or
// double-quoted strings, None, True, False) to JSON. It reports false when
// s is not such a literal.
func pythonToJSON(s string) (string, bool) {
	var b strings.Builder
	r := bufio.NewReader(strings.NewReader(s))
	for {
		c, _, err := r.ReadRune()
		if err != nil {
			break
		}
		switch {
		case c == '\'' || c == '"':
			var sb strings.Builder
			closed := false
			for {
				d, _, err := r.ReadRune()
				if err != nil {
					break
				}
				if d == c {
					closed = true
					break
				}
				if d == '\\' {
					e, _, err := r.ReadRune()
					if err != nil {
						break
					}
					switch e {
					case 'n':
						sb.WriteByte('\n')
					case 't':
						sb.WriteByte('\t')
					case 'r':
						sb.WriteByte('\r')
					case 'x', 'u':
						nd := 2
						if e == 'u' {
							nd = 4
						}
						hex := make([]rune, 0, nd)
						for k := 0; k < nd; k++ {
							h, _, err := r.ReadRune()
							if err != nil {
								break
							}
							hex = append(hex, h)
						}
						if v, err := strconv.ParseUint(string(hex), 16, 32); err == nil {
							sb.WriteRune(rune(v))
						}
					default:
						sb.WriteRune(e)
					}
					continue
				}
				sb.WriteRune(d)
			}
			if !closed {
				return "", false
			}
			q, _ := json.Marshal(sb.String())
			b.Write(q)
		case c == 'N' || c == 'T' || c == 'F':
			word := string(c)
			for {
				d, _, err := r.ReadRune()
				if err != nil {
					break
				}
				if !(d >= 'a' && d <= 'z' || d >= 'A' && d <= 'Z') {
					_ = r.UnreadRune()
					break
				}
				word += string(d)
			}
			switch word {
			case "None":
				b.WriteString("null")
			case "True":
				b.WriteString("true")
			case "False":
				b.WriteString("false")
			default:
				return "", false
			}
		default:
			b.WriteRune(c)
		}
	}
	out := b.String()
	// Python reprs may end a container with ", }" – not here; but tuples
	// and trailing text are not JSON: check.
	if !json.Valid([]byte(out)) {
		return "", false
	}
	return out, true
}

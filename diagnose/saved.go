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
	"unicode/utf16"
)

// Saved-response formats (Capture.Source).
const (
	SourceCurl     = "curl -i"
	SourceJSON     = "json"
	SourcePython   = "python-sdk"
	SourceGoOpenAI = "go-openai"
	SourceNode     = "node-sdk"
	SourceSSE      = "sse"
)

// decodeUTF16 converts UTF-16 text (a BOM FF FE or FE FF, as PowerShell's
// ">" writes, or NUL bytes in every other position) to UTF-8. It reports
// whether it did.
func decodeUTF16(b []byte) ([]byte, bool) {
	var be bool
	switch {
	case len(b) >= 2 && b[0] == 0xFF && b[1] == 0xFE:
		b = b[2:]
	case len(b) >= 2 && b[0] == 0xFE && b[1] == 0xFF:
		b, be = b[2:], true
	default:
		n := min(len(b), 512) &^ 1
		if n < 8 {
			return b, false
		}
		var evenNUL, oddNUL int
		for i := 0; i < n; i += 2 {
			if b[i] == 0 {
				evenNUL++
			}
			if b[i+1] == 0 {
				oddNUL++
			}
		}
		switch half := n / 2; {
		case oddNUL*10 >= half*9 && evenNUL == 0:
		case evenNUL*10 >= half*9 && oddNUL == 0:
			be = true
		default:
			return b, false
		}
	}
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		if be {
			u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
		} else {
			u = append(u, uint16(b[i+1])<<8|uint16(b[i]))
		}
	}
	return []byte(string(utf16.Decode(u))), true
}

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
//   - a raw JSON error body ({"error":{...}}, Anthropic's, vLLM's and
//     Mistral's flat ones), a Responses API object or event, a Realtime
//     event, a Batch object whose errors.data lists errors, a Batch
//     output/error file line ({"custom_id","response":{"status_code",
//     "body"},"error"}: batch_expired, batch_cancelled, request_timeout or
//     the response inside), or a bare Batch error {"code","message"}; the
//     capture's Status is 0 unless the input states one (never guessed). A
//     JSON object that is neither an error nor an API response (an
//     application log line, a request body, {}) is skipped, and a JSON
//     value followed by other text on its line is unreadable;
//   - server-sent event streams ("data: {...}" lines, with event:/id:
//     lines), one capture per stream, Source "sse";
//   - Python SDK lines "Error code: 429 - {'error': {...}}" (a Python dict
//     repr: single quotes, None/True/False), BatchError(code='…', …) reprs,
//     and the pre-1.0 form "openai.error.RateLimitError: Rate limit reached
//     …" (also quoted by LangChain's retry logs), status from the class;
//   - go-openai errors "error, status code: 429, status: 429 Too Many
//     Requests, message: …";
//   - Node SDK errors "429 Rate limit reached for …" (optionally prefixed by
//     the error class, "RateLimitError: 429 …").
//
// UTF-16 input (a BOM, as PowerShell's ">" writes, or NULs in every other
// byte) is decoded first. A capture cut short (inside the headers, or a
// JSON body ending mid-value) is kept with Truncated set. Each Capture
// records its format and 1-based starting line. Lines that match nothing
// are skipped. It fails (wrapping ErrNoResponse) when nothing
// is recognised, and on a read error.
func ParseSaved(r io.Reader) ([]Capture, error) {
	var out []Capture
	err := parseSaved(r, nil, &out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ParseSavedFunc is ParseSaved that hands each capture to fn as soon as it
// is read, in order, instead of returning them all: memory stays that of
// the input, however many responses it holds (`oairl diagnose --from` on a
// log of 100,000 responses). fn's first error stops the parse and is
// returned. It fails like ParseSaved when nothing is recognised.
func ParseSavedFunc(r io.Reader, fn func(Capture) error) error {
	return parseSaved(r, fn, nil)
}

func parseSaved(r io.Reader, emit func(Capture) error, out *[]Capture) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading saved response: %w", err)
	}
	data, wasUTF16 := decodeUTF16(data)
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	p := &savedParser{data: data, emit: emit}
	p.split()
	if err := p.run(); err != nil {
		return err
	}
	if len(p.out) == 0 && p.emitted == 0 {
		if wasUTF16 {
			return fmt.Errorf("%w (the file was UTF-16 and was decoded; re-save it as UTF-8 if this looks wrong)", ErrNoResponse)
		}
		if p.jsonErr != nil {
			return fmt.Errorf("%w: %v", ErrNoResponse, p.jsonErr)
		}
		return ErrNoResponse
	}
	if out != nil {
		*out = p.out
	}
	return nil
}

type savedParser struct {
	data    []byte
	starts  []int // byte offset of each line
	out     []Capture
	jsonErr error
	// emit, when set, receives each capture instead of out (streaming);
	// its first error stops the parse.
	emit    func(Capture) error
	emitted int
	err     error
}

// add records one capture: to emit when streaming, else to out.
func (p *savedParser) add(c Capture) {
	if p.emit == nil {
		p.out = append(p.out, c)
		return
	}
	if p.err == nil {
		p.emitted++
		p.err = p.emit(c)
	}
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
	for i := 0; i < n && p.err == nil; {
		ln := p.line(i)
		t := strings.TrimSpace(ln)
		switch {
		case reStatusLine.MatchString(t):
			i = p.curl(i)
		case strings.HasPrefix(t, "{"):
			i = p.jsonAt(i)
		case strings.HasPrefix(t, "data:") || strings.HasPrefix(t, "event:"):
			i = p.sse(i)
		default:
			p.logLine(i, t)
			i++
		}
	}
	return p.err
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
	ended, truncated := false, false
	endsInLine := len(p.data) > 0 && p.data[len(p.data)-1] != '\n'
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
			ended = true
			break
		}
		k, v, ok := strings.Cut(ln, ":")
		if !ok {
			if j == len(p.starts)-1 && endsInLine {
				// The capture ends inside a header line: drop the piece.
				j++
				truncated = true
			}
			break
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)), strings.TrimSpace(v))
	}
	if !ended && j >= len(p.starts) && endsInLine {
		// The capture stops inside the headers (no blank line, no body).
		truncated = true
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
		switch {
		case err == nil && p.restOfLineBlank(end):
			body = raw
			next = p.lineAt(end-1) + 1
		case err != nil && errors.Is(err, io.ErrUnexpectedEOF):
			// The body is cut short: keep the text; Classify salvages
			// what it can and says so.
			truncated = true
		case err != nil:
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
	p.add(Capture{Status: status, Header: h, Body: body, Source: SourceCurl, Line: i + 1, Truncated: truncated})
	return next
}

// restOfLineBlank reports whether only white space follows byte offset off
// on its line (a JSON value followed by other text is not a JSON line).
func (p *savedParser) restOfLineBlank(off int) bool {
	rest := p.data[off:]
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i]
	}
	return len(bytes.TrimSpace(rest)) == 0
}

// sse reads a server-sent event stream starting at line i (data:, event:,
// id:, retry: and ":" comment lines, blank lines between events) as one
// capture without a status, and returns the index of the first line after
// it. A stream with neither an error nor a response event is skipped.
func (p *savedParser) sse(i int) int {
	j := i
	var lines []string
	for ; j < len(p.starts); j++ {
		t := strings.TrimSpace(p.line(j))
		if t == "" || strings.HasPrefix(t, "data:") || strings.HasPrefix(t, "event:") || strings.HasPrefix(t, "id:") ||
			strings.HasPrefix(t, "retry:") || strings.HasPrefix(t, ":") {
			lines = append(lines, t)
			continue
		}
		break
	}
	body := []byte(strings.TrimSpace(strings.Join(lines, "\n")))
	if pb := parseBody(body); pb.errorOrResponse() {
		p.add(Capture{Header: http.Header{}, Body: body, Source: SourceSSE, Line: i + 1})
	}
	return j
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
	if err == nil && !p.restOfLineBlank(end) {
		err = fmt.Errorf("line %d: text after the JSON value", p.lineAt(end)+1)
	}
	if err != nil {
		// A Python dict pasted on its own: {'error': {...}}.
		if js, ok := pythonToJSON(strings.TrimSpace(p.line(i))); ok {
			if pb := parseBody([]byte(js)); pb.errorOrResponse() {
				p.addBody(0, []byte(js), SourcePython, i+1)
			}
			return i + 1
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// A JSON body cut short at the end of the input: keep it when
			// the readable part is an error (Classify salvages it).
			rest := bytes.TrimSpace(p.data[off:])
			if pb := salvageJSON(rest); pb.hasError && pb.errObject {
				p.add(Capture{Header: http.Header{}, Body: rest, Source: SourceJSON, Line: i + 1, Truncated: true})
				return len(p.starts)
			}
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
			p.add(Capture{Status: probe.Response.StatusCode, Header: http.Header{},
				Body: []byte(probe.Response.Body), Source: SourceJSON, Line: line})
		} else if len(probe.Error) > 0 && string(probe.Error) != "null" {
			p.addBody(0, wrapError(probe.Error), SourceJSON, line)
		}
	case len(probe.Error) == 0 && probe.Message != nil && len(probe.Code) > 0 && !bytes.Contains(raw, []byte(`"object":"error"`)) &&
		!bytes.Contains(raw, []byte(`"object": "error"`)):
		// A bare Batch error {"code":…, "message":…, "line":…}.
		p.addBody(0, wrapError(raw), SourceJSON, line)
	default:
		// Only an error body or an API response; an application log line,
		// a request body or {} is not a response.
		if pb := parseBody(raw); pb.errorOrResponse() {
			p.addBody(0, raw, SourceJSON, line)
		}
	}
}

func wrapError(e []byte) []byte {
	return append(append([]byte(`{"error":`), e...), '}')
}

// addBody appends a capture. status is 0 when the capture does not say:
// it is never guessed from the body (Classify chooses the verdict from the
// body and reports status 0).
func (p *savedParser) addBody(status int, body []byte, source string, line int) {
	p.add(Capture{Status: status, Header: http.Header{}, Body: body, Source: source, Line: line})
}

// inferStatus guesses the HTTP status of a body without one, from
// error.code/type and the message (0 when nothing says). It is only used to
// choose a verdict: a capture without a status keeps Status 0 and a
// Finding reports the status it was given, never this guess.
func inferStatus(body []byte) int { return inferStatusPB(parseBody(body)) }

func inferStatusPB(pb parsedBody) int {
	if !pb.isJSON {
		return 0
	}
	if !pb.hasError {
		if pb.shape {
			return 200
		}
		return 0
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
		typ == "requests" || typ == "tokens" || typ == "tokens_usage_based" || typ == "rate_limit_error" || code == "rate_limit_error" ||
		typ == "rate_limited" || code == "rate_limit_reached" ||
		hasAny(msg, "rate limit reached", "rate limit exceeded", "rate limit is exceeded", "exceeded your current quota", "too many requests"):
		// Mistral: type rate_limited, code "1300"; its older body is only
		// {"message":"Requests rate limit exceeded"} (wire-formats.md §5).
		return 429
	case code == "token_limit_exceeded" || code == "batch_expired" || code == "batch_cancelled":
		return 0
	case code == "request_timeout":
		return 408
	case code == "model_not_found" || typ == "not_found_error":
		return 404
	case code == "invalid_api_key" || typ == "authentication_error":
		return 401
	case code == "unsupported_country_region_territory" || typ == "permission_error":
		return 403
	case typ == "request_too_large":
		return 413
	case code == "context_length_exceeded" || typ == "invalid_request_error":
		return 400
	case typ == "overloaded_error":
		return 529
	case code == "server_is_overloaded":
		return 503
	case typ == "server_error" || typ == "api_error" || code == "server_error":
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
		} else if strings.HasPrefix(rest, "{") {
			// A dict repr cut short (a truncated log line): Classify
			// salvages its fields from the JSON-quoted text.
			body = []byte(strings.ReplaceAll(rest, "'", `"`))
		} else {
			body = messageBody(rest)
		}
		p.add(Capture{Status: status, Header: http.Header{}, Body: body, Source: SourcePython, Line: i + 1})
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
		p.add(Capture{Status: status, Header: http.Header{}, Body: body, Source: SourceGoOpenAI, Line: i + 1})
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
				p.add(Capture{Status: st, Header: http.Header{}, Body: messageBody(msg), Source: SourcePython, Line: i + 1})
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
		p.add(Capture{Status: status, Header: http.Header{}, Body: body, Source: SourceNode, Line: i + 1})
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

package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/oairl/oairl/tokens"
)

// envelopeKeys are the members of a Batch API input line.
var envelopeKeys = map[string]bool{"custom_id": true, "method": true, "url": true, "body": true}

// bodyKeys mark a bare request body (no envelope).
var bodyKeys = []string{"model", "messages", "input", "prompt"}

// parser turns one item into a Request. Safe for concurrent use.
type parser struct {
	opts    Options
	sources []Source
}

func (p *parser) fileName(it *item) string {
	if it.file >= 0 && it.file < len(p.sources) {
		return p.sources[it.file].Name
	}
	return ""
}

// process fills it.req. It never panics: a panic in counting fails only
// this line, with a count_failed problem.
func (p *parser) process(it *item) {
	req := &Request{File: p.fileName(it), Line: it.line, EndLine: it.endLine, Raw: it.raw, Method: "",
		Source: it.file, Offset: it.off, Size: it.size}
	it.req = req
	defer func() {
		if r := recover(); r != nil {
			req.Problems = append(req.Problems, Problem{File: req.File, Line: req.Line, CustomID: req.CustomID,
				Severity: tokens.Error, Code: "count_failed",
				Message: fmt.Sprintf("internal error while reading this line (%v); the rest of the file is unaffected — please report it", r)})
		}
		for i := range req.Problems {
			req.Problems[i].CustomID = req.CustomID
		}
	}()
	p.parse(it, req)
}

func (p *parser) parse(it *item, req *Request) {
	add := func(sev Severity, code, msg string) {
		req.Problems = append(req.Problems, Problem{File: req.File, Line: req.Line, Severity: sev, Code: code, Message: msg})
	}
	if it.tooLong {
		max := p.opts.MaxLineBytes
		if max <= 0 {
			max = DefaultMaxLineBytes
		}
		add(tokens.Error, "line_too_large", fmt.Sprintf(
			"line is longer than %s bytes; a Batch input file holds at most 200 MB, so it can never be sent (skipped, not counted)",
			Thousands(int64(max))))
		return
	}
	if it.unterm {
		add(tokens.Error, "invalid_json", fmt.Sprintf(
			"unexpected end of file inside an object: the object that starts on line %d is never closed (lines %d–%d)",
			it.line, it.line, it.endLine))
		return
	}
	if it.pretty {
		add(tokens.Error, "pretty_printed", fmt.Sprintf(
			"unexpected end of line inside an object — the file looks pretty-printed (one object spread over lines %d–%d); write one object per line",
			it.line, it.endLine))
	}
	raw := bytes.TrimLeft(it.raw, " \t")
	if bytes.HasPrefix(raw, bom) {
		add(tokens.Error, "bom_inside", "line starts with a UTF-8 byte-order mark; only byte 0 of a file may carry one (were files concatenated?)")
		raw = raw[len(bom):]
	}
	if !utf8.Valid(raw) {
		add(tokens.Error, "invalid_utf8", fmt.Sprintf(
			"invalid UTF-8 at byte %d of the line; the API rejects a body that is not valid UTF-8 (counted with U+FFFD in place of each bad byte)",
			badUTF8(it.raw)+1))
	}
	if len(raw) == 0 {
		add(tokens.Error, "invalid_json", "line holds only a byte-order mark")
		return
	}
	if raw[0] != '{' {
		p.notObject(it, raw, add)
		return
	}
	if !json.Valid(raw) {
		var v struct{}
		err := json.Unmarshal(raw, &v) // fails in its validity check: the message and offset
		if err == nil {
			err = errors.New("invalid JSON")
		}
		add(tokens.Error, "invalid_json", jsonErrMessage(err, raw, it))
		return
	}
	if at, esc := loneSurrogate(raw); at >= 0 {
		// encoding/json accepts it (decoding it to U+FFFD); the API
		// rejects the line.
		add(tokens.Error, "lone_surrogate", fmt.Sprintf(
			"a string holds the lone UTF-16 surrogate escape %s at byte %d (half of a pair, e.g. an emoji cut in two); the API rejects it as invalid JSON — write the whole pair or the character itself",
			esc, at+1))
	}
	top, dups := objectMembers(raw)
	envelope := false
	for k := range top {
		if envelopeKeys[k] {
			envelope = true
		}
	}
	if !envelope {
		bare := false
		for _, k := range bodyKeys {
			if _, ok := top[k]; ok {
				bare = true
			}
		}
		envelope = !bare
	}
	it.envelope = envelope
	// Repeated names in the line's own object. For a bare body the line
	// is the body, whose repeats (at any depth) the Counter reports.
	if len(dups) > 0 && (envelope || p.opts.Counter == nil) {
		d := dups[0]
		last := top[d.name]
		add(tokens.Warning, "duplicate_member", fmt.Sprintf(
			"member %s appears more than once in the line (%s, then %s); JSON parsers keep the last, so the API would likely use %s",
			quote(d.name), clip(d.prev), clip(last), clip(last)))
	}
	var body json.RawMessage
	endpoint := ""
	if envelope {
		body, endpoint = p.envelope(it, req, top, add)
	} else {
		req.Bare = true
		req.CustomID = AutoID(p.sources, it.file, it.line)
		it.idKind = idAuto
		req.Method = "POST"
		body = raw
		endpoint = p.infer(top)
		req.URL = endpoint
		it.endpoint = endpoint // one endpoint per file applies to bare bodies too
	}
	if body == nil {
		return
	}
	req.Body = body
	// The model, and --model for a body that names none.
	var name string
	bm := top
	if envelope {
		bm, _ = objectMembers(body)
	}
	model, hasModel := bm["model"]
	if hasModel && len(model) > 0 && model[0] == '"' {
		_ = json.Unmarshal(model, &name)
	}
	if !hasModel && p.opts.Model != "" {
		req.Body = injectModel(body, p.opts.Model)
		name = p.opts.Model
		add(tokens.Note, "model_from_flag", fmt.Sprintf("the body names no model; using %s (--model)", quote(p.opts.Model)))
	}
	req.Model = name
	if p.opts.Registry != nil && name != "" {
		req.Resolution = p.opts.Registry.Lookup(name)
	}
	if endpoint == "" {
		return
	}
	if e, ok := LookupEndpoint(endpoint); ok && !e.Counted {
		add(tokens.Note, "not_counted", fmt.Sprintf("oairl does not count %s requests; the line is checked but not counted", endpoint))
		return
	}
	if p.opts.Counter == nil {
		return
	}
	a := p.analyze(endpoint, req.Body, add)
	req.Count = a.Count
	if a.Model.Name != "" || a.Model.Model != nil {
		req.Resolution = a.Model
	}
	if req.Count.Model == "" {
		req.Count.Model = name
	}
	if req.Count.Encoding == "" {
		req.Count.Encoding = req.Resolution.Encoding
	}
	for _, pr := range a.Problems {
		add(pr.Severity, pr.Code, pr.Message)
	}
	p.checkTPM(req, add)
}

// analyze calls the counter, turning a panic into a problem for this line.
func (p *parser) analyze(endpoint string, body []byte, add func(Severity, string, string)) (a tokens.Analysis) {
	defer func() {
		if r := recover(); r != nil {
			a = tokens.Analysis{}
			add(tokens.Error, "count_failed", fmt.Sprintf("counting this line failed (%v); the rest of the file is unaffected — please report it", r))
		}
	}()
	return p.opts.Counter.Analyze(endpoint, body)
}

// envelope checks the members of a Batch API line and returns its body
// (nil when unusable) and the endpoint to count it against ("" if none).
func (p *parser) envelope(it *item, req *Request, top map[string]json.RawMessage, add func(Severity, string, string)) (json.RawMessage, string) {
	if what := otherProvider(top); what != "" {
		// One clear error instead of missing method, url and body.
		if v, ok := top["custom_id"]; ok && len(v) > 0 && v[0] == '"' {
			_ = json.Unmarshal(v, &req.CustomID)
			it.idKind = idString
		}
		add(tokens.Error, "other_provider_format", what+`; an OpenAI Batch line is {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {the request}} (or a bare request body)`)
		return nil, ""
	}
	// custom_id
	if v, ok := top["custom_id"]; !ok {
		add(tokens.Error, "missing_custom_id", "missing custom_id: every Batch line needs a unique, non-empty custom_id string")
	} else if len(v) > 0 && v[0] == '"' {
		var s string
		_ = json.Unmarshal(v, &s)
		req.CustomID = s
		switch {
		case s == "":
			add(tokens.Error, "empty_custom_id", "custom_id must be a non-empty string")
		case strings.TrimSpace(s) == "":
			add(tokens.Warning, "custom_id_lookalike", fmt.Sprintf("custom_id %s is only whitespace", quote(s)))
			it.idKind = idString
		case idOddities(s, true) != "":
			add(tokens.Warning, "custom_id_lookalike", fmt.Sprintf(
				"custom_id %s has %s; ids are compared byte-exactly, so it differs from %s",
				quote(s), idOddities(s, true), quote(foldForMessage(s))))
			it.idKind = idString
		default:
			it.idKind = idString
		}
	} else {
		kind := jsonKind(v)
		msg := "custom_id must be a non-empty string, got " + kind
		if kind == "number" {
			req.CustomID = string(v)
			msg += fmt.Sprintf(" %s (write %s)", v, quote(string(v)))
		}
		add(tokens.Error, "custom_id_not_string", msg)
	}
	// method
	if v, ok := top["method"]; !ok {
		add(tokens.Error, "missing_method", `missing method: it must be "POST"`)
	} else {
		var s string
		if json.Unmarshal(v, &s) != nil {
			add(tokens.Error, "method_not_post", `method must be "POST", got `+jsonKind(v))
		} else if s != "POST" {
			req.Method = s
			add(tokens.Error, "method_not_post", fmt.Sprintf(`method must be "POST" (got %s)`, quote(s)))
		} else {
			req.Method = s
		}
	}
	// url
	endpoint := ""
	if v, ok := top["url"]; !ok {
		add(tokens.Error, "missing_url", `missing url, e.g. "/v1/chat/completions"`)
	} else {
		var s string
		if json.Unmarshal(v, &s) != nil {
			add(tokens.Error, "url_not_string", `url must be a string such as "/v1/chat/completions", got `+jsonKind(v))
		} else {
			req.URL = s
			uc := checkURL(s)
			if uc.code != "" {
				add(tokens.Error, uc.code, uc.message)
			}
			it.endpoint = uc.endpoint
			endpoint = uc.endpoint
			if endpoint == "" {
				endpoint = uc.meant
			}
		}
	}
	// unknown members
	var unknown []string
	for k := range top {
		if !envelopeKeys[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	// body
	v, ok := top["body"]
	if !ok {
		var misplaced []string
		for _, k := range bodyKeys {
			if _, ok := top[k]; ok {
				misplaced = append(misplaced, quote(k))
			}
		}
		if len(misplaced) > 0 {
			add(tokens.Error, "missing_body", fmt.Sprintf(
				"missing body: %s %s at the top level of the line; put the request inside \"body\"",
				strings.Join(misplaced, ", "), isAre(len(misplaced))))
		} else {
			add(tokens.Error, "missing_body", "missing body: the request object goes in \"body\"")
		}
	}
	if len(unknown) > 0 && ok {
		q := make([]string, len(unknown))
		for i, k := range unknown {
			q[i] = quote(k)
		}
		add(tokens.Warning, "unknown_field", fmt.Sprintf(
			"unknown member%s %s in the request line; a Batch line has custom_id, method, url and body, and nothing outside body is sent",
			plural(len(unknown)), strings.Join(q, ", ")))
	}
	if !ok {
		return nil, ""
	}
	if len(v) == 0 || v[0] != '{' {
		kind := jsonKind(v)
		msg := "body must be a JSON object, got " + kind
		if kind == "string" {
			var s string
			if json.Unmarshal(v, &s) == nil && strings.HasPrefix(strings.TrimSpace(s), "{") && json.Valid([]byte(s)) {
				msg = "body must be a JSON object, got a string holding encoded JSON; put the object itself, not a string"
			}
		}
		add(tokens.Error, "body_not_object", msg)
		return nil, ""
	}
	if endpoint == "" {
		b, _ := objectMembers(v)
		endpoint = p.infer(b)
	}
	return v, endpoint
}

// AutoID is the custom_id given to the bare body on physical line line of
// sources[file]: "line-N" in the first source, "BASE:line-N" in later ones
// (BASE the file name without directories; "stdin" for "-"), so ids stay
// unique across files. Scan still checks them for duplicates (with each
// other and with explicit custom_ids).
func AutoID(sources []Source, file, line int) string {
	if file <= 0 || file >= len(sources) {
		return fmt.Sprintf("line-%d", line)
	}
	base := filepath.Base(sources[file].Name)
	if sources[file].Name == "-" {
		base = "stdin"
	}
	return fmt.Sprintf("%s:line-%d", base, line)
}

// infer returns the endpoint a bare body is meant for: messages → chat
// completions; input → embeddings (embedding models), moderations
// (moderation models) or responses; prompt → completions.
func (p *parser) infer(b map[string]json.RawMessage) string {
	if _, ok := b["messages"]; ok {
		return "/v1/chat/completions"
	}
	if _, ok := b["input"]; ok {
		var name string
		if raw, ok := b["model"]; ok {
			_ = json.Unmarshal(raw, &name)
		}
		if name == "" {
			name = p.opts.Model
		}
		if strings.Contains(name, "moderation") {
			return "/v1/moderations"
		}
		if p.opts.Registry != nil && name != "" {
			if r := p.opts.Registry.Lookup(name); r.Model != nil && r.Model.Kind == "embedding" {
				return "/v1/embeddings"
			}
		}
		if strings.Contains(name, "embedding") {
			return "/v1/embeddings"
		}
		return "/v1/responses"
	}
	if v, ok := b["prompt"]; ok {
		if len(v) > 0 && v[0] == '{' { // a Responses prompt template reference
			return "/v1/responses"
		}
		return "/v1/completions"
	}
	return "/v1/chat/completions"
}

// notObject explains a line whose JSON value is not an object.
func (p *parser) notObject(it *item, raw []byte, add func(Severity, string, string)) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		add(tokens.Error, "invalid_json", jsonErrMessage(err, raw, it))
		return
	}
	switch x := v.(type) {
	case []any:
		add(tokens.Error, "not_an_object", fmt.Sprintf(
			"line is a JSON array (%d item%s); JSONL needs one request object per line", len(x), plural(len(x))))
	case string:
		msg := "line is a JSON string, expected an object"
		if strings.HasPrefix(strings.TrimSpace(x), "{") && json.Valid([]byte(x)) {
			msg = "line is a JSON string holding encoded JSON, expected the object itself (was it encoded twice?)"
		}
		add(tokens.Error, "not_an_object", msg)
	case nil:
		add(tokens.Error, "not_an_object", "line is null, expected an object")
	case bool:
		add(tokens.Error, "not_an_object", "line is a JSON boolean, expected an object")
	default:
		add(tokens.Error, "not_an_object", "line is a JSON number, expected an object")
	}
}

// jsonErrMessage turns a decoder error into a located message.
func jsonErrMessage(err error, raw []byte, it *item) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off := int(se.Offset) // bytes read when the error was found
		where := fmt.Sprintf("column %d", off)
		if it.pretty {
			line, col := it.line, off
			if off <= len(raw) {
				before := raw[:max(off-1, 0)]
				line += bytes.Count(before, []byte("\n"))
				col = off - (bytes.LastIndexByte(before, '\n') + 1)
			}
			where = fmt.Sprintf("line %d column %d", line, col)
		}
		msg := se.Error()
		switch {
		case off >= 1 && off <= len(raw) && raw[off-1] == 0:
			return fmt.Sprintf("invalid JSON: NUL byte at %s (binary data, or a UTF-16 file?)", where)
		case strings.Contains(msg, "after top-level value") && off <= len(raw) && bytes.IndexByte(raw[:off], '\r') >= 0:
			return fmt.Sprintf("invalid JSON: unexpected data after the object at %s; the file seems to end lines with a bare CR (classic Mac line endings): use LF", where)
		case strings.Contains(msg, "after top-level value"):
			return fmt.Sprintf("invalid JSON: unexpected data after the object at %s (two objects on one line, or stray text? write exactly one object per line)", where)
		case strings.Contains(msg, "unexpected end of JSON input"):
			return "unexpected end of line inside an object (the line is cut short, or the object continues on the next line)"
		}
		return fmt.Sprintf("invalid JSON at %s: %s", where, msg)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected end of JSON input") {
		return "unexpected end of line inside an object (the line is cut short, or the object continues on the next line)"
	}
	return "invalid JSON: " + err.Error()
}

// checkTPM adds request_too_large when the request's TPM charge exceeds the
// limit: a request bigger than the whole per-minute bucket can never be
// admitted (OpenAI answers 429 "Request too large").
func (p *parser) checkTPM(req *Request, add func(Severity, string, string)) {
	limit, name := p.opts.TPMLimit, p.opts.TPMLimitName
	if name == "" {
		name = "the TPM limit"
	}
	if limit <= 0 && p.opts.Tier != "" && req.Resolution.Model != nil {
		// A prompt above the model's long-context threshold (gpt-4.1: >128k
		// input tokens) is charged to the long-context bucket, whose TPM
		// is larger (models.Model.LimitsFor).
		if l, lc, ok := req.Resolution.Model.LimitsFor(p.opts.Tier, req.Count.PromptTokens); ok && l.TPM > 0 {
			limit = l.TPM
			name = fmt.Sprintf("the tier %s TPM limit for %s", strings.TrimPrefix(strings.ToLower(p.opts.Tier), "tier"), req.Resolution.Model.ID)
			if lc {
				name = fmt.Sprintf("the tier %s long-context TPM limit for %s (%s)", strings.TrimPrefix(strings.ToLower(p.opts.Tier), "tier"), req.Resolution.Model.ID, req.Resolution.Model.LongContext.AppliesWhen)
			}
		}
	}
	c := req.Count
	if limit <= 0 || c.TPMCharge <= limit {
		return
	}
	field := budgetField(req.Body)
	if c.BudgetAssumed || field == "" {
		field = "assumed output"
	}
	out := fmt.Sprintf("%s %s", field, Thousands(c.OutputBudget))
	if c.N > 1 {
		out += fmt.Sprintf(" × n %d", c.N)
	}
	who := req.CustomID
	if who == "" {
		who = "this request"
	}
	lower := field
	if field == "assumed output" {
		lower = "--assume-output or set max_completion_tokens"
	}
	add(tokens.Error, "request_too_large", fmt.Sprintf(
		"%s needs ~%s rate-limit tokens per request (prompt ~%s + %s) which exceeds %s %s; it can never be sent. Lower %s or raise the limit",
		who, Thousands(c.TPMCharge), Thousands(c.PromptTokens), out, name, Thousands(limit), lower))
}

// budgetField names the output-budget member a body sets.
func budgetField(body []byte) string {
	var b struct {
		MaxCompletion json.RawMessage `json:"max_completion_tokens"`
		MaxOutput     json.RawMessage `json:"max_output_tokens"`
		MaxTokens     json.RawMessage `json:"max_tokens"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	switch {
	case len(b.MaxCompletion) > 0 && string(b.MaxCompletion) != "null":
		return "max_completion_tokens"
	case len(b.MaxOutput) > 0 && string(b.MaxOutput) != "null":
		return "max_output_tokens"
	case len(b.MaxTokens) > 0 && string(b.MaxTokens) != "null":
		return "max_tokens"
	}
	return ""
}

// injectModel inserts "model": name as the first member of an object,
// leaving every other byte as written.
func injectModel(body []byte, name string) json.RawMessage {
	i := bytes.IndexByte(body, '{')
	enc, _ := json.Marshal(name)
	rest := bytes.TrimLeft(body[i+1:], " \t\r\n")
	out := make([]byte, 0, len(body)+len(enc)+10)
	out = append(out, body[:i+1]...)
	out = append(out, `"model":`...)
	out = append(out, enc...)
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	out = append(out, body[i+1:]...)
	return out
}

// foldForMessage is s without what idOddities names, case kept: the id
// the user probably meant.
func foldForMessage(s string) string {
	var b strings.Builder
	for _, c := range strings.TrimSpace(s) {
		if c == '\u00AD' || unicode.Is(unicode.Cf, c) {
			continue
		}
		if m, ok := confusables[c]; ok && !(c >= 0xC0 && c <= 0x17F) {
			c = m
		}
		if c >= 0xFF01 && c <= 0xFF5E {
			c -= 0xFEE0
		}
		b.WriteRune(c)
	}
	return b.String()
}

// clip shortens a raw JSON value to 40 bytes for a message.
func clip(v []byte) string {
	if len(v) > 40 {
		return string(v[:37]) + "..."
	}
	return string(v)
}

// jsonKind names the JSON type of a raw value.
func jsonKind(v []byte) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

// badUTF8 returns the byte offset of the first invalid UTF-8 sequence.
func badUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// quote writes s as a JSON string, without escaping <, > and &.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// loneSurrogate returns the byte offset and text of the first \uXXXX
// escape in a JSON string of raw (valid JSON) that is a UTF-16 surrogate
// without its other half (a high surrogate not followed by a \u escape of
// a low one, or a low one alone), or -1.
func loneSurrogate(raw []byte) (int, string) {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		var r rune
		for _, c := range raw[i+2 : i+6] {
			switch {
			case c >= '0' && c <= '9':
				r = r<<4 | rune(c-'0')
			case c >= 'a' && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case c >= 'A' && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return -1, ""
	}
	in := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !in {
			if c == '"' {
				in = true
			}
			continue
		}
		switch c {
		case '"':
			in = false
		case '\\':
			r, ok := hex4(i)
			if !ok {
				i++ // a two-character escape
				continue
			}
			switch {
			case r >= 0xD800 && r <= 0xDBFF:
				if lo, ok := hex4(i + 6); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 11
					continue
				}
				return i, string(raw[i : i+6])
			case r >= 0xDC00 && r <= 0xDFFF:
				return i, string(raw[i : i+6])
			}
			i += 5
		}
	}
	return -1, ""
}

// otherProvider says which other provider's batch format a line without
// a body looks like ("" when none): Anthropic Message Batches
// ({"custom_id", "params"}), Gemini/Vertex AI batch prediction
// ({"key"?, "request": {"contents"}}), Amazon Bedrock batch inference
// ({"recordId", "modelInput"}).
func otherProvider(top map[string]json.RawMessage) string {
	if _, ok := top["body"]; ok {
		return ""
	}
	if _, ok := top["params"]; ok {
		return `the line looks like an Anthropic Message Batches request ("params" instead of "body"): move the request into "body", add "method" and "url", and use an OpenAI model`
	}
	if r, ok := top["request"]; ok {
		if m, _ := objectMembers(r); m != nil {
			if _, ok := m["contents"]; ok {
				return `the line looks like a Gemini / Vertex AI batch request ("request" with "contents")`
			}
		}
		return `the line has "request" instead of "body" (another provider's batch format?)`
	}
	if _, ok := top["modelInput"]; ok {
		return `the line looks like an Amazon Bedrock batch inference record ("recordId"/"modelInput")`
	}
	return ""
}

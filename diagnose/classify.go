package diagnose

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// envelope is the union of the error bodies we meet: OpenAI/Azure/Groq/
// OpenRouter/vLLM {"error":{...}}, Anthropic {"type":"error","error":{...},
// "request_id":...}, older vLLM and Mistral flat {"object":"error",
// "message":...,"type":...,"code":...}, and a bare Batch error
// {"code":...,"message":...}. code is decoded as raw JSON because it may be
// a string, null or an integer (wire-formats.md §7.2). Object, Choices,
// CustomID and Response tell a response (a completion, a Responses API
// object or stream event, a Realtime event, a Batch output line) from an
// unrelated JSON object such as an application log line or a request body.
type envelope struct {
	Error     json.RawMessage `json:"error"`
	Message   *string         `json:"message"`
	Type      string          `json:"type"`
	Code      json.RawMessage `json:"code"`
	RequestID string          `json:"request_id"`
	Detail    json.RawMessage `json:"detail"` // FastAPI-style servers

	Object   string          `json:"object"`
	Choices  json.RawMessage `json:"choices"`
	CustomID *string         `json:"custom_id"`
	Response json.RawMessage `json:"response"`
}

type errBody struct {
	Message  string          `json:"message"`
	Type     string          `json:"type"`
	Code     json.RawMessage `json:"code"`
	Param    json.RawMessage `json:"param"`
	Metadata json.RawMessage `json:"metadata"`
}

// parsedBody is what classify knows about the body.
type parsedBody struct {
	isJSON    bool // the body is a JSON object (or JSON-looking, see truncated)
	hasError  bool // it carries an error object or message
	errObject bool // it carries a non-null "error" object
	code      string
	codeIsInt bool
	typ       string
	message   string
	requestID string
	anthropic bool
	metadata  bool
	// shape is true when the body is recognisably an API response (an
	// "object" field, choices, a Responses/Realtime event, a Batch output
	// line) even without an error.
	shape bool
	// truncated is true when the body looked like the API's JSON but did
	// not parse (cut mid-value): the fields were salvaged by pattern.
	truncated bool
	// sse is true when the body was a server-sent event stream.
	sse bool
	// loose is true when the error is only a top-level "message" in an
	// object with keys no error body has (an application log line): an
	// error when the HTTP status says so, not enough to make a saved
	// object without a status a finding.
	loose bool
}

// errorOrResponse reports whether a body without a status is worth a
// finding: an error body or an API response.
func (pb parsedBody) errorOrResponse() bool {
	return pb.hasError && !pb.loose || pb.shape
}

func rawCode(r json.RawMessage) (string, bool) {
	r = bytes.TrimSpace(r)
	if len(r) == 0 || string(r) == "null" {
		return "", false
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s, false
	}
	var n json.Number
	if json.Unmarshal(r, &n) == nil {
		return n.String(), true
	}
	return string(r), false
}

// parseBody reads an error body: one JSON object (errors at the top level,
// or nested in a Responses API event's response.error or a Realtime
// response.done's response.status_details.error, wire-formats.md §1.3), a
// server-sent event stream (the first event carrying an error wins), or a
// JSON body cut short (fields salvaged by pattern, truncated set).
func parseBody(body []byte) parsedBody {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return parsedBody{}
	}
	if b[0] != '{' {
		if isSSE(b) {
			return parseSSE(b)
		}
		return parsedBody{}
	}
	if pb, ok := parseJSONBody(b); ok {
		return pb
	}
	return salvageJSON(b)
}

// parseJSONBody decodes one JSON object; false when it is not valid JSON.
func parseJSONBody(b []byte) (parsedBody, bool) {
	var pb parsedBody
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return pb, false
	}
	pb.isJSON = true
	pb.requestID = env.RequestID
	resp := bytes.TrimSpace(env.Response)
	pb.shape = env.Object != "" && env.Object != "error" || len(bytes.TrimSpace(env.Choices)) > 0 || env.CustomID != nil ||
		len(resp) > 0 && resp[0] == '{' || strings.HasPrefix(env.Type, "response.")
	if pb.fromErrorValue(env.Error) {
		pb.anthropic = pb.errObject && env.Type == "error"
		return pb, true
	}
	switch {
	case env.Message != nil:
		pb.hasError = true
		pb.loose = !flatError(b, env)
		pb.message, pb.typ = *env.Message, env.Type
		pb.code, pb.codeIsInt = rawCode(env.Code)
		return pb, true
	case len(env.Detail) > 0 && env.Detail[0] == '"':
		var s string
		_ = json.Unmarshal(env.Detail, &s)
		pb.hasError, pb.message = true, s
		return pb, true
	}
	// A failure inside a response: Responses API response.failed events
	// carry response.error, Realtime response.done events
	// response.status_details.error.
	if len(resp) > 0 && resp[0] == '{' {
		var inner struct {
			Error         json.RawMessage `json:"error"`
			StatusDetails *struct {
				Error json.RawMessage `json:"error"`
			} `json:"status_details"`
		}
		if json.Unmarshal(resp, &inner) == nil {
			if pb.fromErrorValue(inner.Error) {
				return pb, true
			}
			if inner.StatusDetails != nil && pb.fromErrorValue(inner.StatusDetails.Error) {
				return pb, true
			}
		}
	}
	return pb, true
}

// flatErrorKeys are the keys a flat error body may carry (vLLM's and
// Mistral's {"object":"error","message","type","param","code"}, Mistral's
// older {"message"}, Azure APIM's {"statusCode","message"}).
var flatErrorKeys = map[string]bool{
	"message": true, "type": true, "code": true, "param": true, "object": true, "request_id": true,
	"statusCode": true, "status": true, "status_code": true, "detail": true, "details": true, "line": true,
	"error_code": true, "error_type": true, "metadata": true, "id": true,
}

// flatError reports whether an object with a top-level "message" is an
// error body rather than, say, an application log line
// ({"level":"info","message":"starting worker"}): it says "object":"error"
// or carries a code, or has no key an error body would not have.
func flatError(b []byte, env envelope) bool {
	if env.Object == "error" || len(bytes.TrimSpace(env.Code)) > 0 && string(bytes.TrimSpace(env.Code)) != "null" {
		return true
	}
	var keys map[string]json.RawMessage
	if json.Unmarshal(b, &keys) != nil {
		return false
	}
	for k := range keys {
		if !flatErrorKeys[k] {
			return false
		}
	}
	return true
}

// fromErrorValue fills pb from an "error" value: an object
// {message,type,code,...} or a bare string (some proxies). It reports
// whether the value was an error.
func (pb *parsedBody) fromErrorValue(raw json.RawMessage) bool {
	e := bytes.TrimSpace(raw)
	switch {
	case len(e) > 0 && e[0] == '{':
		var eb errBody
		if json.Unmarshal(e, &eb) != nil {
			return false
		}
		pb.hasError, pb.errObject = true, true
		pb.message, pb.typ = eb.Message, eb.Type
		pb.code, pb.codeIsInt = rawCode(eb.Code)
		md := bytes.TrimSpace(eb.Metadata)
		pb.metadata = len(md) > 0 && string(md) != "null"
		return true
	case len(e) > 0 && e[0] == '"':
		var s string
		_ = json.Unmarshal(e, &s)
		pb.hasError, pb.message = true, s
		return true
	}
	return false
}

// isSSE reports whether b is a server-sent event stream (its first
// non-empty line is an "event:", "data:", "id:" or ":" comment line).
func isSSE(b []byte) bool {
	line := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line = b[:i]
	}
	line = bytes.TrimSpace(line)
	for _, p := range []string{"data:", "event:", "id:", ":"} {
		if bytes.HasPrefix(line, []byte(p)) {
			return true
		}
	}
	return false
}

// parseSSE reads the data lines of an event stream: the first event with
// an error wins (a response.failed event, an error event, an OpenRouter
// mid-stream error), else the stream is a response when any event is.
func parseSSE(b []byte) parsedBody {
	var first parsedBody
	for _, ln := range bytes.Split(b, []byte("\n")) {
		ln = bytes.TrimSpace(ln)
		if !bytes.HasPrefix(ln, []byte("data:")) {
			continue
		}
		d := bytes.TrimSpace(ln[len("data:"):])
		if len(d) == 0 || d[0] != '{' {
			continue
		}
		pb, ok := parseJSONBody(d)
		if !ok {
			pb = salvageJSON(d)
		}
		pb.sse = true
		if pb.hasError {
			return pb
		}
		if !first.isJSON {
			first = pb
		}
	}
	first.sse = true
	return first
}

var (
	reSalvageMsg  = regexp.MustCompile(`"message"\s*:\s*"((?:[^"\\]|\\.)*)("?)`)
	reSalvageCode = regexp.MustCompile(`"code"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)`)
	reSalvageType = regexp.MustCompile(`"type"\s*:\s*"((?:[^"\\]|\\.)*)"`)
	reSalvageReq  = regexp.MustCompile(`"request_id"\s*:\s*"([^"\\]*)"`)
)

// salvageJSON reads what it can from a JSON body cut short (a truncated
// capture or a body read interrupted): "message" (up to the cut), "code"
// and the error "type" by pattern. The result is marked truncated; it is
// JSON-looking, so never mistaken for a CDN page.
func salvageJSON(b []byte) parsedBody {
	pb := parsedBody{isJSON: true, truncated: true}
	pb.errObject = bytes.Contains(b, []byte(`"error"`))
	if m := reSalvageMsg.FindSubmatch(b); m != nil {
		s := strings.TrimRight(string(m[1]), `\`)
		var dec string
		if json.Unmarshal([]byte(`"`+s+`"`), &dec) == nil {
			s = dec
		}
		if len(m[2]) == 0 {
			// Cut mid-string: drop the last, possibly partial, word so
			// that a cut figure ("Used 29" of "Used 29937") is not read.
			if i := strings.LastIndexAny(s, " \t\n"); i >= 0 {
				s = s[:i]
			}
			s = strings.TrimRight(s, " ,;:") + "…"
		}
		pb.message = s
		pb.hasError = true
	}
	if m := reSalvageCode.FindSubmatch(b); m != nil {
		pb.code, pb.codeIsInt = rawCode(m[1])
		pb.hasError = true
	}
	for _, m := range reSalvageType.FindAllSubmatch(b, -1) {
		if t := string(m[1]); t != "error" && !strings.HasPrefix(t, "response.") {
			pb.typ = t
			break
		}
	}
	pb.anthropic = bytes.HasPrefix(bytes.TrimSpace(b), []byte(`{"type":"error"`)) || bytes.Contains(b, []byte(`"type": "error"`))
	if m := reSalvageReq.FindSubmatch(b); m != nil {
		pb.requestID = string(m[1])
	}
	pb.hasError = pb.hasError || pb.typ != "" && pb.errObject
	return pb
}

// billingCodes are error.code values that mean "no money", never "wait":
// help.openai.com/en/articles/6614457 and wire-formats.md §1.4.
var billingCodes = map[string]bool{
	"insufficient_quota":                true,
	"credit_balance_exhausted":          true,
	"organization_spend_limit_exceeded": true,
	"project_spend_limit_exceeded":      true,
	"organization_usage_limit_exceeded": true,
	"billing_hard_limit_reached":        true,
	"billing_not_active":                true,
}

// authCodes are error.code values that mean the key, organization, project
// or region is wrong (developers.openai.com/api/docs/guides/error-codes).
var authCodes = map[string]bool{
	"invalid_api_key":                      true,
	"invalid_organization":                 true,
	"invalid_project":                      true,
	"no_organization":                      true,
	"mismatched_organization":              true,
	"mismatched_project":                   true,
	"unsupported_country_region_territory": true,
	"access_terminated":                    true,
	"account_deactivated":                  true,
	"ip_not_authorized":                    true,
}

var (
	reDim           = regexp.MustCompile(`(?i)\bon (requests|tokens|tokens_usage_based|images|input tokens|output tokens) per (min|minute|day)\b(?: \((RPM|TPM|RPD|TPD|IPM)\))?`)
	reImages        = regexp.MustCompile(`(?i)\bfor images per (minute|min|day)\b`)
	reLimit         = regexp.MustCompile(`(?i)\bLimit:? ?(\d[\d,]*(?:\.\d+)?)`)
	reUsed          = regexp.MustCompile(`(?i)\b(?:Used|Current):? ?(\d[\d,]*(?:\.\d+)?)`)
	reRequested     = regexp.MustCompile(`(?i)\bRequested:? ?~?(\d[\d,]*(?:\.\d+)?)`) // Groq: "Requested ~1523" (case B33b)
	reAfford        = regexp.MustCompile(`(?i)requested up to (\d[\d,]*) tokens, but can only afford (\d[\d,]*)`)
	reMaxPerRequest = regexp.MustCompile(`(?i)Requested (\d[\d,]*) tokens, max (\d[\d,]*) tokens per request`)
	reModel         = regexp.MustCompile("(?i)(?:rate limit reached|request too large|enqueued token limit reached|rate limit exceeded) for (?:model )?`?([A-Za-z0-9][\\w.:/-]*)`? in (?:project|organization)")
	reModel2        = regexp.MustCompile("(?i)\\bmodel(?::\\s*|\\s+[`'\"])([A-Za-z0-9][\\w.:/-]*[A-Za-z0-9])")
	reAzureModel    = regexp.MustCompile(`(?i)requests to ([A-Za-z0-9][\w.-]*) for`)
	reOrg           = regexp.MustCompile("(?i)\\borganization `?((?:org|user)[-_][^\\s`.,]*[^\\s`.,]|\\([^)\\s]+\\))`?")
	reOrg2          = regexp.MustCompile(`(?i)\(org: ([^,)\s]+)`)
	reProject       = regexp.MustCompile("(?i)\\bproject `?(proj_[^\\s`.,]+)`?")
	reTryAgain      = regexp.MustCompile(`(?i)try again in ((?:\d+(?:\.\d+)?(?:h|ms|m|s))+)`)
	reTrySeconds    = regexp.MustCompile(`(?i)(?:try again in|retry after) (\d+(?:\.\d+)?) ?(?:seconds?|secs?)\b`)
	reOldRPM        = regexp.MustCompile(`(?i)exceeded the (\d+) request/min rate limit`)
	reAnthropic     = regexp.MustCompile(`(?i)rate limit (?:for your organization \([^)]*\) )?of (\d[\d,]*) (input |output )?(tokens|requests) per minute`)
	reCtxLimit      = regexp.MustCompile(`(?i)maximum context length is (\d[\d,]*) tokens`)
	reCtxReq        = regexp.MustCompile(`(?i)(?:resulted in|you requested|your request has) (\d[\d,]*) (?:input )?tokens`)
	reCtxMaxTok     = regexp.MustCompile(`(?i)'max_(?:completion_)?tokens'.{0,40}? is too large: (\d[\d,]*)`)
	reCtxTotal      = regexp.MustCompile(`(?i)for a total of (?:at least )?(\d[\d,]*) tokens`)
	reCtxAnthropic  = regexp.MustCompile(`(?i)(?:prompt is too long|exceed context limit): (\d[\d,]*)(?: tokens)?(?: \+ (\d[\d,]*))? > (\d[\d,]*)`)
	reCtxInput      = regexp.MustCompile(`(?i)your request has \d[\d,]* input tokens`)
	reModelNF       = regexp.MustCompile("(?i)the model `([^`]+)`")
)

func parseNum(s string) int64 {
	s = strings.ReplaceAll(s, ",", "")
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return int64(f)
}

func submatch(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

func hasAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// messageFacts are the figures parsed out of an error message.
type messageFacts struct {
	kind                   string // RPM TPM RPD TPD or ""
	limit, used, requested int64
	hasLimit, hasUsed      bool
	model, org, project    string
	wait                   time.Duration
}

func parseMessage(msg string) messageFacts {
	var mf messageFacts
	if m := reDim.FindStringSubmatch(msg); m != nil {
		dim, per, abbr := strings.ToLower(m[1]), strings.ToLower(m[2]), strings.ToUpper(m[3])
		switch {
		case abbr == "IPM":
			mf.kind = "RPM"
		case abbr != "":
			mf.kind = abbr
		case dim == "requests" || dim == "images":
			mf.kind = "RPM"
			if per == "day" {
				mf.kind = "RPD"
			}
		default:
			mf.kind = "TPM"
			if per == "day" {
				mf.kind = "TPD"
			}
		}
	} else if m := reImages.FindStringSubmatch(msg); m != nil {
		mf.kind = "RPM"
		if strings.EqualFold(m[1], "day") {
			mf.kind = "RPD"
		}
	}
	if v := submatch(reLimit, msg); v != "" {
		mf.limit, mf.hasLimit = parseNum(v), true
	}
	if v := submatch(reUsed, msg); v != "" {
		mf.used, mf.hasUsed = parseNum(v), true
	}
	if v := submatch(reRequested, msg); v != "" {
		mf.requested = parseNum(v)
	}
	if v := submatch(reOldRPM, msg); v != "" {
		mf.kind, mf.limit, mf.hasLimit = "RPM", parseNum(v), true
	}
	if m := reAnthropic.FindStringSubmatch(msg); m != nil {
		mf.kind, mf.limit, mf.hasLimit = "TPM", parseNum(m[1]), true
		if strings.EqualFold(m[3], "requests") {
			mf.kind = "RPM" // "of 50 requests per minute" (case B31a)
		}
	}
	mf.model = submatch(reModel, msg)
	if mf.model == "" {
		mf.model = submatch(reAzureModel, msg)
	}
	if mf.model == "" {
		mf.model = submatch(reModelNF, msg)
	}
	if mf.model == "" {
		mf.model = submatch(reModel2, msg)
	}
	if o := submatch(reOrg, msg); o != "" {
		mf.org = strings.Trim(o, "()")
	} else {
		mf.org = submatch(reOrg2, msg)
	}
	mf.project = submatch(reProject, msg)
	if v := submatch(reTrySeconds, msg); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 && f < 1e9 {
			mf.wait = max(time.Millisecond, time.Duration(f*float64(time.Second)))
		}
	} else if v := submatch(reTryAgain, msg); v != "" {
		if d, ok := ParseDuration(v); ok && d > 0 {
			mf.wait = d
		}
	}
	return mf
}

// detectProvider names who answered, from headers and body.
func detectProvider(h http.Header, pb parsedBody, rl RateLimits) string {
	msg := strings.ToLower(pb.message)
	switch {
	case rl.Provider == "anthropic" || pb.anthropic || h.Get("anthropic-organization-id") != "" ||
		strings.HasPrefix(pb.typ, "overloaded_error") || strings.Contains(msg, "docs.anthropic.com"):
		return "anthropic"
	case rl.Provider == "azure" || pb.code == "429" && !pb.codeIsInt || strings.Contains(msg, "azure"):
		return "azure"
	case rl.Provider == "groq" || strings.Contains(msg, "groq"):
		return "groq"
	case rl.Provider == "mistral" || pb.typ == "rate_limited" && pb.code == "1300":
		return "mistral"
	case pb.metadata || strings.Contains(msg, "openrouter"):
		return "openrouter"
	case pb.codeIsInt && strings.HasSuffix(pb.typ, "Error"):
		return "vllm"
	case pb.codeIsInt:
		return "openai-compatible"
	case h.Get("cf-ray") != "" && !pb.isJSON:
		return "cloudflare"
	case rl.Provider != "" || pb.hasError || h.Get("openai-organization") != "" || h.Get("openai-version") != "" ||
		h.Get("x-request-id") != "":
		return "openai"
	}
	return ""
}

func classify(status int, h http.Header, body []byte, now time.Time, hint string) Finding {
	if h == nil {
		h = http.Header{}
	}
	var pb parsedBody
	success := status >= 200 && status < 300
	if !success || bytes.Contains(body, []byte(`"error"`)) {
		// A success body is only decoded when it may hide an error (a
		// Responses API failure inside a 200): the hot path of oairl run.
		pb = parseBody(body)
	}
	// What a success body is, from its first bytes (cheap): the API's
	// JSON, an event stream (complete or cut), or something else.
	shape := successShape(status, body)
	rl := parseRateLimits(h, now)
	if hint != "" && hint != "openai" && rl.Provider == "openai" {
		rl.Provider = hint
	}
	f := Finding{
		Status:     status,
		Code:       pb.code,
		Type:       pb.typ,
		Message:    pb.message,
		RateLimits: rl,
	}
	f.Provider = detectProvider(h, pb, rl)
	if hint != "" && f.Provider != hint && (f.Provider == "openai" || f.Provider == "openai-compatible" || f.Provider == "") {
		f.Provider = hint
	}
	if (f.Provider == "groq" || f.Provider == "azure") && rl.Provider == "openai" {
		// Same header names, different meaning: Groq's request window is a
		// day; Azure's resets are bare seconds (already parsed).
		f.RateLimits.Provider = f.Provider
	}
	if f.Provider == "groq" || f.Provider == "azure" {
		if rl.Provider == "openai" || rl.Provider == f.Provider {
			f.RateLimits.Provider = f.Provider
		}
	}
	if f.Provider == "groq" {
		f.RateLimits.Requests.Daily = f.RateLimits.Requests.Known
	}
	rl = f.RateLimits
	f.RequestID = firstNonEmpty(h.Get("x-request-id"), h.Get("request-id"), pb.requestID, h.Get("apim-request-id"))
	f.ContentType = mediaType(h)
	f.Organization = firstNonEmpty(h.Get("openai-organization"), h.Get("anthropic-organization-id"))
	f.Project = h.Get("openai-project")
	f.Model = h.Get("openai-model")

	mf := parseMessage(pb.message)
	if f.Model == "" {
		f.Model = mf.model
	}
	if f.Organization == "" {
		f.Organization = mf.org
	}
	if f.Project == "" {
		f.Project = mf.project
	}
	f.LimitKind = mf.kind
	f.Limit, f.Used, f.Requested = mf.limit, mf.used, mf.requested
	if reAfford.MatchString(pb.message) {
		// OpenRouter: "You requested up to 16384 tokens, but can only
		// afford 3919" (case B41b).
		m := reAfford.FindStringSubmatch(pb.message)
		f.Requested, f.Limit = parseNum(m[1]), parseNum(m[2])
	}
	if m := reMaxPerRequest.FindStringSubmatch(pb.message); m != nil {
		// Embeddings: "Requested 320000 tokens, max 300000 tokens per
		// request" (case B36).
		f.Requested, f.Limit = parseNum(m[1]), parseNum(m[2])
	}

	if !pb.isJSON && len(bytes.TrimSpace(body)) > 0 && (status != 0 && !success || shape == shapeOther) {
		// A non-JSON page (a CDN error page, a login or proxy page): the
		// message is a one-line excerpt of what a person would read.
		f.Message = Excerpt(body, 120)
	}

	f.Truncated = pb.truncated
	effective := status
	switch {
	case status == 0:
		// No status given (a saved body, a Batch output line): the verdict
		// is chosen from what the body says, but Status stays 0; a status
		// is never invented.
		if pb.loose && !pb.shape {
			pb = parsedBody{isJSON: true}
		}
		effective = inferStatusPB(pb)
	case status >= 200 && status < 300 && pb.hasError && (pb.errObject || pb.sse) && (pb.code != "" || pb.message != ""):
		// A failure inside a 200: a Responses API object or stream event
		// with status "failed" and an error, a Realtime response.done with
		// status_details.error (wire-formats.md §1.3, §7.8). Classify the
		// error as the status it would have had.
		if effective = inferStatusPB(pb); effective == 200 {
			effective = 0
		}
	}
	f.Verdict, f.Retryable = decide(effective, h, pb, mf, rl, body)
	if f.Verdict == OK && !pb.hasError {
		switch shape {
		case shapeOther:
			// The API always answers JSON or an event stream: an HTML
			// login page or a proxy's page is the wrong endpoint, and
			// sending again gets the same page.
			f.Verdict, f.Retryable = NotAPIResponse, false
		case shapeCutStream:
			f.Verdict, f.Retryable = StreamTruncated, true
		}
	}
	if f.Verdict != RequestTooLarge && f.Verdict != ContextLengthExceeded && f.Verdict != BatchQueueFull &&
		f.Verdict != ModelUnavailable && !f.IsRateLimit() && f.LimitKind != "" && status != 429 {
		// Figures only make sense for limit verdicts; keep them anyway but
		// drop a kind that contradicts the verdict.
		f.LimitKind = ""
	}
	if f.Verdict == ContextLengthExceeded {
		f.LimitKind = ""
		if v := submatch(reCtxLimit, pb.message); v != "" {
			f.Limit = parseNum(v)
		}
		if v := submatch(reCtxReq, pb.message); v != "" {
			f.Requested = parseNum(v)
		}
		if v := submatch(reCtxMaxTok, pb.message); v != "" && reCtxInput.MatchString(pb.message) {
			// vLLM: "'max_tokens' … is too large: 8000. … your request has
			// 2778 input tokens": the request needs input + output budget.
			f.Requested += parseNum(v)
		}
		if v := submatch(reCtxTotal, pb.message); v != "" {
			// vLLM: "you requested 5000 output tokens and your prompt
			// contains at least 1 input tokens, for a total of at least
			// 5001 tokens".
			f.Requested = parseNum(v)
		}
		if m := reCtxAnthropic.FindStringSubmatch(pb.message); m != nil {
			// Anthropic: "prompt is too long: 208310 tokens > 200000
			// maximum"; "input length and `max_tokens` exceed context
			// limit: 188240 + 21333 > 200000".
			f.Requested = parseNum(m[1]) + parseNum(m[2])
			f.Limit = parseNum(m[3])
		}
		f.Used = 0
	}
	byteLimit := false
	if f.Verdict == RequestTooLarge && mf.kind == "" && !strings.Contains(strings.ToLower(pb.message), "token") {
		// A byte-size limit (Anthropic's 413 request_too_large, a proxy's
		// 413 page), not a token bucket: no limit kind.
		f.LimitKind = ""
		byteLimit = true
	}
	if f.Provider == "azure" && f.IsRateLimit() && azureDayWait(h, mf) {
		// "Please retry after 86400 seconds": the deployment's effective
		// quota is zero or a trial/free quota; a retry loop never
		// recovers (wire-formats.md §3).
		f.Verdict, f.Retryable = QuotaExhausted, false
	}
	if f.LimitKind == "" {
		switch f.Verdict {
		case RPMLimited:
			f.LimitKind = "RPM"
		case TPMLimited:
			f.LimitKind = "TPM"
		case RPDLimited:
			f.LimitKind = "RPD"
		case TPDLimited:
			f.LimitKind = "TPD"
		case RequestTooLarge:
			if !byteLimit {
				f.LimitKind = "TPM"
			}
		}
	}
	if f.Verdict == RequestTooLarge && (strings.EqualFold(pb.code, "max_tokens_per_request") || strings.EqualFold(pb.typ, "max_tokens_per_request")) {
		f.LimitKind = "" // a per-request cap, not a per-minute bucket
	}
	// The verdict may have been refined from headers (RPM → RPD when the
	// request window resets in hours): keep the kind consistent.
	switch f.Verdict {
	case RPDLimited:
		f.LimitKind = "RPD"
	case TPDLimited:
		f.LimitKind = "TPD"
	}

	if f.IsRateLimit() || f.Verdict == RequestTooLarge && f.LimitKind != "" {
		switch {
		case mf.project != "" || f.Verdict == TPMLimited && rl.ProjectTokens.Known && rl.ProjectTokens.Remaining == 0 ||
			f.Verdict == TPMLimited && rl.Binding() == "project" && !rl.Tokens.Known:
			f.Scope = "project"
		case mf.org != "" || rl.Tokens.Known || rl.Requests.Known:
			f.Scope = "organization"
		}
	}
	if xs := strings.ToLower(strings.TrimSpace(h.Get("x-should-retry"))); xs == "false" {
		// Stainless SDKs obey this server override before anything else.
		f.Retryable = false
	}
	if f.Retryable {
		f.Wait, f.WaitSource = computeWait(h, mf, rl, f.Verdict, now)
	}
	f.Summary = summarize(f)
	f.Fixes = fixesFor(f)
	return f
}

// bodyShape is what a success body looks like from its bytes.
type bodyShape int

const (
	shapeJSON      bodyShape = iota // JSON (or empty, or not a success)
	shapeStream                     // an event stream with its final event
	shapeCutStream                  // an event stream that ended before it
	shapeOther                      // neither JSON nor an event stream (HTML, text)
)

// streamEnds are the markers of a stream's last event: chat completions'
// "data: [DONE]", the Responses API's response.completed or
// response.incomplete (a success flagged truncated; response.failed and
// error events are errors, read by parseSSE), Realtime's response.done
// and Anthropic's message_stop (wire-formats.md §1.3; case B37).
var streamEnds = [][]byte{[]byte("[DONE]"), []byte("response.completed"), []byte("response.incomplete"),
	[]byte("response.done"), []byte("message_stop")}

// successShape classifies the body of a 2xx answer, or of a saved body
// without a status, from its first bytes; bodies of other statuses and
// empty bodies are shapeJSON (nothing to say). A saved body without a
// status is only judged when it is an event stream.
func successShape(status int, body []byte) bodyShape {
	if !(status >= 200 && status < 300 || status == 0) {
		return shapeJSON
	}
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] == '{' || b[0] == '[' {
		return shapeJSON
	}
	if isSSE(b) {
		for _, end := range streamEnds {
			if bytes.Contains(b, end) {
				return shapeStream
			}
		}
		return shapeCutStream
	}
	if status == 0 {
		return shapeJSON
	}
	return shapeOther
}

// mediaType is the response's content-type without parameters
// ("text/html" for "text/html; charset=utf-8"), "" when absent.
func mediaType(h http.Header) string {
	ct := strings.TrimSpace(h.Get("content-type"))
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = strings.TrimSpace(ct[:i])
	}
	return strings.ToLower(ct)
}

var (
	reTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	reTags  = regexp.MustCompile(`(?s)<!--.*?-->|<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)
	reSpace = regexp.MustCompile(`\s+`)
)

// Excerpt is a one-line excerpt of a body that is not JSON, for people: an
// HTML page's <title> (else its text without tags), whitespace collapsed,
// at most max characters (an ellipsis marks a cut). Only the first 64 KB
// are read.
func Excerpt(body []byte, max int) string {
	if len(body) > 64<<10 {
		body = body[:64<<10]
	}
	s := string(body)
	if m := reTitle.FindStringSubmatch(s); m != nil && strings.TrimSpace(m[1]) != "" {
		s = m[1]
	} else if strings.Contains(s, "<") {
		s = reTags.ReplaceAllString(s, " ")
	}
	s = strings.TrimSpace(reSpace.ReplaceAllString(html.UnescapeString(s), " "))
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "…"
	}
	return s
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x = strings.TrimSpace(x); x != "" {
			return x
		}
	}
	return ""
}

// decide picks the verdict from status, error.type/error.code and headers
// together; the message text is read last (wire-formats.md §7.1).
func decide(status int, h http.Header, pb parsedBody, mf messageFacts, rl RateLimits, body []byte) (Verdict, bool) {
	code := strings.ToLower(pb.code)
	typ := strings.ToLower(pb.typ)
	msg := strings.ToLower(pb.message)

	if status >= 200 && status < 300 {
		return OK, false
	}
	// Batch output/error lines for requests that never ran
	// (wire-formats.md §1.6): resubmitting them can succeed.
	switch code {
	case "batch_expired", "batch_cancelled":
		return NotExecuted, true
	case "request_timeout":
		return ServerError, true
	}
	// Flex capacity: not a rate limit and not billed (OpenAI flex
	// processing guide); retry later, or resend as service_tier "auto".
	if code == "resource_unavailable" {
		return FlexUnavailable, true
	}
	// The account can afford fewer output tokens than asked: this request
	// as sent, not the account (OpenRouter 402, case B41b).
	if reAfford.MatchString(pb.message) {
		return Unaffordable, false
	}
	// Embeddings' per-request token cap: a 400, not a rate limit (B36).
	if code == "max_tokens_per_request" || typ == "max_tokens_per_request" {
		return RequestTooLarge, false
	}
	// Account and request problems first: they are never fixed by waiting,
	// whatever the status (a quota error is a 429).
	switch {
	case billingCodes[code] || typ == "insufficient_quota" || typ == "billing_error" || status == 402 ||
		strings.Contains(msg, "exceeded your current quota") || strings.Contains(msg, "credit balance is too low") ||
		strings.Contains(msg, "insufficient balance"):
		return QuotaExhausted, false
	case code == "token_limit_exceeded" || strings.Contains(msg, "enqueued token limit"):
		return BatchQueueFull, true
	case code == "context_length_exceeded" || strings.Contains(msg, "maximum context length") ||
		status != 429 && strings.Contains(msg, "context window") || strings.Contains(msg, "prompt is too long") ||
		strings.Contains(msg, "exceed context limit"):
		return ContextLengthExceeded, false
	case code == "model_not_found" || typ == "not_found_error" && strings.Contains(msg, "model") ||
		(status == 404 || status == 403) && strings.Contains(msg, "model") && hasAny(msg, "does not exist", "not found", "do not have access", "does not have access", "not allowed", "not available"):
		return ModelUnavailable, false
	case authCodes[code] || status == 401 || typ == "authentication_error" || typ == "permission_error" ||
		strings.Contains(msg, "incorrect api key") || strings.Contains(msg, "region, or territory not supported"):
		return AuthFailed, false
	}
	if status == 403 {
		if strings.Contains(msg, "quota") {
			// Azure API Management's token/call quota policy answers 403
			// (wire-formats.md §3): an account limit, not a rate limit.
			return QuotaExhausted, false
		}
		return AuthFailed, false
	}
	if status == 404 {
		return InvalidRequest, false
	}

	// Overload and server errors: capacity, not your limit.
	overloaded := code == "server_is_overloaded" || typ == "overloaded_error" || typ == "service_unavailable_error" ||
		typ == "engine_overloaded_error" || strings.Contains(msg, "overloaded")
	if code == "slow_down" {
		return RampLimited, true
	}
	if status == 429 || status == 0 {
		if pb.isJSON && (overloaded || typ == "server_error") {
			return ServerOverloaded, true
		}
	}
	if status >= 500 {
		if overloaded || status == 503 || status == 529 {
			return ServerOverloaded, true
		}
		return ServerError, true
	}
	if status == 408 || status == 409 {
		return ServerError, true
	}
	if status == 413 || strings.HasPrefix(msg, "request too large") || typ == "request_too_large" {
		return RequestTooLarge, false
	}

	if status == 429 {
		if !pb.isJSON {
			if tb := bytes.TrimSpace(body); len(tb) > 0 && tb[0] != '[' && !jsonContentType(h) {
				// A CDN/proxy page; never when the response says it is
				// JSON (a cut capture of the API's own body).
				return EdgeThrottled, true
			}
			// An empty 429: only the headers can tell.
			if v, ok := verdictFromHeaders(rl); ok {
				return v, true
			}
			return Unknown, true
		}
		// A limit of zero means the model is not enabled for this tier
		// (images per minute "Limit: 0/1min", wire-formats.md §1.4).
		if mf.kind != "" && mf.hasLimit && mf.limit == 0 {
			return ModelUnavailable, false
		}
		// Request larger than the whole bucket: "Limit L, Requested R"
		// without "Used", or Requested > Limit.
		if (mf.kind == "TPM" || mf.kind == "TPD") && mf.requested > 0 && mf.hasLimit && (!mf.hasUsed || mf.requested > mf.limit) {
			return RequestTooLarge, false
		}
		if strings.Contains(msg, "concurrent") {
			return ConcurrencyLimited, true
		}
		switch mf.kind {
		case "RPD":
			return RPDLimited, true
		case "TPD":
			return TPDLimited, true
		case "RPM":
			if rl.Requests.Daily {
				return RPDLimited, true
			}
			return RPMLimited, true
		case "TPM":
			return TPMLimited, true
		}
		if strings.Contains(msg, "per day") || strings.Contains(msg, "per-day") || strings.Contains(msg, "daily") {
			if typ == "tokens" || strings.Contains(msg, "token") {
				return TPDLimited, true
			}
			return RPDLimited, true
		}
		// Azure wording: "exceeded token rate limit" / "exceeded call rate limit".
		if strings.Contains(msg, "token rate limit") || strings.Contains(msg, "tokens per min") || strings.Contains(msg, "request tokens") {
			return TPMLimited, true
		}
		if strings.Contains(msg, "call rate limit") || strings.Contains(msg, "requests per min") {
			return RPMLimited, true
		}
		// Headers together with the dimension in error.type.
		// Both windows show room (and the one error.type names is not
		// nearly drained): a concurrency cap (case B21c). Not on Azure,
		// whose request header reports a 1-10 s window (wire-formats.md §3).
		low := func(w Window) bool { return w.Limit > 0 && w.Remaining*10 < w.Limit }
		if rl.Requests.Known && rl.Tokens.Known && rl.Requests.Remaining > 0 && rl.Tokens.Remaining > 0 &&
			rl.Provider != "azure" && rl.Provider != "mistral" && !(typ == "tokens" && low(rl.Tokens)) && !(typ == "requests" && low(rl.Requests)) {
			return ConcurrencyLimited, true
		}
		switch typ {
		case "requests":
			if rl.Requests.Daily {
				return RPDLimited, true
			}
			return RPMLimited, true
		case "tokens", "tokens_usage_based":
			if rl.Tokens.Daily {
				return TPDLimited, true
			}
			return TPMLimited, true
		}
		if v, ok := verdictFromHeaders(rl); ok {
			return v, true
		}
		if code == "rate_limit_exceeded" || typ == "rate_limit_error" || code == "rate_limit_error" ||
			strings.Contains(msg, "rate limit") || typ == "rate_limited" || pb.codeIsInt || code == "429" {
			return RPMLimited, true
		}
		return Unknown, true
	}
	if status == 0 {
		return Unknown, false
	}
	if status >= 400 {
		return InvalidRequest, false
	}
	return Unknown, false
}

// verdictFromHeaders reads the exhausted dimension from the headers alone.
func verdictFromHeaders(rl RateLimits) (Verdict, bool) {
	switch {
	case rl.Requests.Known && rl.Requests.Remaining == 0:
		if rl.Requests.Daily {
			return RPDLimited, true
		}
		return RPMLimited, true
	case rl.Tokens.Known && rl.Tokens.Remaining == 0:
		if rl.Tokens.Daily {
			return TPDLimited, true
		}
		return TPMLimited, true
	case rl.Requests.Known && rl.Tokens.Known && rl.Requests.Remaining > 0 && rl.Tokens.Remaining > 0 && rl.Provider != "azure" && rl.Provider != "mistral":
		return ConcurrencyLimited, true
	}
	return "", false
}

// computeWait applies the trust order: retry-after-ms, retry-after
// (seconds, decimals allowed, or an HTTP-date taken against the response's
// Date header), the "try again in" text, then the reset header of the
// window the verdict names (tokens for TPM/TPD, requests otherwise),
// whatever its spelling (x-ratelimit-reset-tokens, Azure's
// x-rate-limit-reset-tokens, x-ratelimit-reset-tokens_usage_based), even
// when the response sent no limit/remaining figures for that window. Zero,
// negative and unparseable values are "no hint"; a positive wait under a
// millisecond is rounded up to 1 ms so that a hint is never reported as 0.
func computeWait(h http.Header, mf messageFacts, rl RateLimits, v Verdict, now time.Time) (time.Duration, string) {
	if s := strings.TrimSpace(h.Get("retry-after-ms")); s != "" {
		if ms, err := strconv.ParseFloat(s, 64); err == nil && ms > 0 && !math.IsInf(ms, 0) && ms < 1e12 {
			return max(time.Millisecond, time.Duration(ms*float64(time.Millisecond))), "retry-after-ms"
		}
	}
	if s := strings.TrimSpace(h.Get("retry-after")); s != "" {
		if sec, err := strconv.ParseFloat(s, 64); err == nil {
			if sec > 0 && !math.IsInf(sec, 0) && sec < 1e9 {
				return max(time.Millisecond, time.Duration(sec*float64(time.Second))), "retry-after"
			}
		} else if t, err := http.ParseTime(s); err == nil {
			ref := now
			if d, err := http.ParseTime(h.Get("date")); err == nil {
				ref = d
			}
			if d := t.Sub(ref); d > 0 {
				return d, "retry-after-date"
			}
		}
	}
	if mf.wait > 0 {
		return atLeastMS(mf.wait), "message"
	}
	reqFirst := true
	switch v {
	case TPMLimited, TPDLimited:
		reqFirst = false
	case RPMLimited, RPDLimited:
	default:
		// Other verdicts: whichever dimension the headers show exhausted.
		switch {
		case rl.Requests.Known && rl.Requests.Remaining == 0:
		case rl.Tokens.Known && rl.Tokens.Remaining == 0:
			reqFirst = false
		default:
			return 0, ""
		}
	}
	if reqFirst {
		if rl.Requests.Reset > 0 {
			return atLeastMS(rl.Requests.Reset), "reset-requests"
		}
	} else if rl.Tokens.Reset > 0 {
		return atLeastMS(rl.Tokens.Reset), "reset-tokens"
	}
	return 0, ""
}

// atLeastMS rounds a positive wait under a millisecond up to 1 ms.
func atLeastMS(d time.Duration) time.Duration {
	if d > 0 && d < time.Millisecond {
		return time.Millisecond
	}
	return d
}

// jsonContentType reports whether the response declares a JSON body.
func jsonContentType(h http.Header) bool {
	ct := strings.ToLower(h.Get("content-type"))
	return strings.Contains(ct, "json")
}

// azureDayWait reports whether an Azure 429 asks to wait a day or more
// ("Please retry after 86400 seconds", or such a retry-after): the
// deployment's effective quota is zero or a trial quota (wire-formats.md §3).
func azureDayWait(h http.Header, mf messageFacts) bool {
	if mf.wait >= 24*time.Hour {
		return true
	}
	for _, k := range []string{"retry-after", "retry-after-ms"} {
		if f, err := strconv.ParseFloat(strings.TrimSpace(h.Get(k)), 64); err == nil {
			if k == "retry-after-ms" {
				f /= 1000
			}
			if f >= 86400 && !math.IsInf(f, 0) {
				return true
			}
		}
	}
	return false
}

// ClassifyTransportError diagnoses an error that prevented any HTTP
// response: connection refused or reset, EOF, a timeout, a DNS failure.
// The verdict is network_error, retryable (the official SDKs retry these
// too); a context cancellation is network_error but not retryable. A nil
// err gives an unknown, non-retryable finding.
func ClassifyTransportError(err error) Finding {
	if err == nil {
		return Finding{Verdict: Unknown, Summary: "no error", Fixes: []Fix{}}
	}
	f := Finding{Verdict: NetworkError, Retryable: true, Message: err.Error()}
	var ne net.Error
	var dnsErr *net.DNSError
	kind := "network error"
	switch {
	case errors.Is(err, context.Canceled):
		f.Retryable = false
		kind = "cancelled"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		kind = "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		kind = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		kind = "connection reset"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		kind = "connection closed before a response"
	case errors.As(err, &dnsErr):
		kind = "DNS lookup failed"
	}
	f.Code = strings.ReplaceAll(kind, " ", "_")
	f.Summary = fmt.Sprintf("%s: no HTTP response (%s)", kind, err.Error())
	f.Fixes = fixesFor(f)
	return f
}

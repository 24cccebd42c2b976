package tokens

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/oairl/oairl/internal/models"
)

// Endpoints Analyze understands (the Batch API's endpoints; OpenAI API
// reference). Endpoint strings are matched by suffix, so
// "https://host/v1/chat/completions?x=1" and "/chat/completions" map too.
const (
	EndpointChat        = "/v1/chat/completions"
	EndpointResponses   = "/v1/responses"
	EndpointEmbeddings  = "/v1/embeddings"
	EndpointCompletions = "/v1/completions"
	EndpointModerations = "/v1/moderations"
)

// Limits from the API reference that Analyze enforces.
const (
	// MaxEmbeddingInputs is the most inputs one embeddings request may
	// carry (API reference, POST /v1/embeddings, input: "The input must not
	// exceed the max input tokens for the model (8192 tokens) ... and any
	// array must be 2048 dimensions or less").
	MaxEmbeddingInputs = 2048
	// MaxEmbeddingInputTokens is the per-input limit of text-embedding-*
	// models (8192 tokens) when the registry has no context window.
	MaxEmbeddingInputTokens = 8192
	// MaxEmbeddingRequestTokens is the total over all inputs of one
	// embeddings request (API reference: "The maximum number of tokens
	// summed across all inputs in a single request is 300,000").
	MaxEmbeddingRequestTokens = 300_000
	// MaxN is the largest n the API accepts (API reference: 1..128).
	MaxN = 128
	// SmallReasoningBudget: a reasoning model whose output budget is below
	// this may spend it all on hidden reasoning and return an empty
	// visible answer with finish_reason "length" (OpenAI reasoning guide:
	// "reserve at least 25,000 tokens"; 1000 is our warning threshold).
	SmallReasoningBudget = 1000
	// CompletionsDefaultMaxTokens is /v1/completions' default max_tokens
	// (API reference, Create completion: "Defaults to 16").
	CompletionsDefaultMaxTokens = 16
)

// Image-size assumption for remote image URLs (their size is unknown
// offline): a 1024×1024 image at detail "high".
const (
	AssumedImageWidth  = 1024
	AssumedImageHeight = 1024
)

type kind int

const (
	kindChat kind = iota
	kindResponses
	kindEmbeddings
	kindCompletions
	kindModerations
	kindUnknown
)

var kindEndpoint = map[kind]string{
	kindChat: EndpointChat, kindResponses: EndpointResponses, kindEmbeddings: EndpointEmbeddings,
	kindCompletions: EndpointCompletions, kindModerations: EndpointModerations,
}

func endpointKind(endpoint string) kind {
	e := endpoint
	if i := strings.IndexAny(e, "?#"); i >= 0 {
		e = e[:i]
	}
	e = strings.TrimRight(e, "/")
	switch {
	case strings.HasSuffix(e, "/chat/completions"):
		return kindChat
	case strings.HasSuffix(e, "/responses"):
		return kindResponses
	case strings.HasSuffix(e, "/embeddings"):
		return kindEmbeddings
	case strings.HasSuffix(e, "/completions"):
		return kindCompletions
	case strings.HasSuffix(e, "/moderations"):
		return kindModerations
	}
	return kindUnknown
}

// run is the state of one Analyze call.
type run struct {
	c        *Counter
	a        *Analysis
	obj      map[string]any
	name     string // model name as written
	base     string // model id used for family rules
	enc      string
	failed   bool
	estWhy   []string // parts counted by estimate, for the "estimated" note
	imgNoted bool
	// badModelName: "model" has surrounding whitespace (already an
	// error), so no unknown_model warning is added.
	badModelName bool
	// badBudget names an output-budget field that is present but invalid
	// (already reported as invalid_output_budget), "" if none.
	badBudget string
	// perCode counts the problems of each code (see maxProblemsPerCode).
	perCode map[string]int
}

// maxProblemsPerCode bounds the problems of one code kept for one request
// (a line of 1.6 M bad messages would otherwise hold 1.6 M messages); the
// rest are counted and reported in one problem by foldProblems.
const maxProblemsPerCode = 10

func (r *run) problem(sev Severity, code, format string, args ...any) {
	if r.perCode == nil {
		r.perCode = map[string]int{}
	}
	if r.perCode[code]++; r.perCode[code] > maxProblemsPerCode {
		return
	}
	r.a.Problems = append(r.a.Problems, Problem{Severity: sev, Code: code, Message: fmt.Sprintf(format, args...)})
}

// foldProblems adds, for each code with more than maxProblemsPerCode
// problems, one problem of that code and severity saying how many more.
func (r *run) foldProblems() {
	var extra []Problem
	for _, p := range r.a.Problems {
		if n := r.perCode[p.Code]; n > maxProblemsPerCode {
			extra = append(extra, Problem{Severity: p.Severity, Code: p.Code,
				Message: fmt.Sprintf("… and %d more %s problems in this request (the first %d are listed)", n-maxProblemsPerCode, p.Code, maxProblemsPerCode)})
			r.perCode[p.Code] = 0
		}
	}
	r.a.Problems = append(r.a.Problems, extra...)
}

func (r *run) estimate(why string) {
	r.a.Count.Estimated = true
	for _, w := range r.estWhy {
		if w == why {
			return
		}
	}
	r.estWhy = append(r.estWhy, why)
}

// count counts text; a tokenizer failure fails the request (count_failed)
// once and counts the text as zero.
func (r *run) count(text string) int64 {
	if text == "" || r.failed {
		return 0
	}
	n, err := r.c.CountText(r.enc, text)
	if err != nil {
		r.failed = true
		r.a.Count.Estimated = true
		r.problem(Error, CodeCountFailed, "could not count tokens: %v", err)
		return 0
	}
	return int64(n)
}

// Analyze parses one request body sent to endpoint ("/v1/chat/completions",
// "/v1/responses", "/v1/embeddings", "/v1/completions", "/v1/moderations";
// any string ending in those, or "" to infer the endpoint from the body)
// and returns its Count and the problems the API would reject it for (see
// the package documentation for the codes). It never panics, whatever the
// body: a panic inside is reported as problem count_failed.
func (c *Counter) Analyze(endpoint string, body []byte) (a Analysis) {
	a.Count.N = 1
	defer func() {
		if p := recover(); p != nil {
			a.Count.Estimated = true
			a.Problems = append(a.Problems, Problem{Severity: Error, Code: CodeCountFailed,
				Message: fmt.Sprintf("internal error while counting this request: %v", p)})
		}
	}()
	r := &run{c: c, a: &a}
	v, dups, err := decodeBody(body)
	if err != nil {
		r.problem(Error, CodeInvalidJSON, "body is not valid JSON: %v", err)
		return a
	}
	r.dupProblems(dups)
	obj, ok := v.(map[string]any)
	if !ok {
		r.problem(Error, CodeBodyNotObject, "body must be a JSON object, not %s", jsonType(v))
		return a
	}
	r.obj = obj
	k := r.detectKind(endpointKind(endpoint))
	r.resolveModel(k)
	r.checkModelKind(k)
	switch k {
	case kindChat:
		r.chat()
	case kindResponses:
		r.responses()
	case kindEmbeddings:
		r.embeddings()
	case kindCompletions:
		r.completions()
	case kindModerations:
		r.moderations()
	}
	r.finish(k)
	r.foldProblems()
	return a
}

// dupProblems reports member names that repeat in one object.
func (r *run) dupProblems(dups []dupKey) {
	for _, d := range dups {
		where := "the body"
		if d.path != "body" {
			where = d.path
		}
		r.problem(Warning, CodeDuplicateMember, "member %q appears more than once in %s (%s, then %s); JSON parsers keep the last, so the API would likely use %s",
			d.name, where, shorten(string(d.first)), shorten(string(d.last)), shorten(string(d.last)))
	}
}

func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty body")
		}
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// detectKind checks that the body's shape fits the endpoint (case B03
// line 6) and returns the kind to count it as: the endpoint's, or, on a
// mismatch or an unknown endpoint, the one the body looks like.
func (r *run) detectKind(k kind) kind {
	_, hasMessages := r.obj["messages"]
	_, hasInput := r.obj["input"]
	_, hasPrompt := r.obj["prompt"]
	// A Responses API prompt template reference: "prompt": {"id": "pmpt_…"}
	// (an object; a completions prompt is a string or an array).
	_, promptRef := r.obj["prompt"].(map[string]any)
	if promptRef {
		hasPrompt = false
	}
	model, _ := r.obj["model"].(string)
	looks := kindUnknown
	switch {
	case hasMessages:
		looks = kindChat
	case promptRef:
		looks = kindResponses
	case hasPrompt:
		looks = kindCompletions
	case hasInput:
		looks = r.inputKind(model)
	}
	if k == kindUnknown {
		if looks == kindUnknown {
			return kindChat
		}
		return looks
	}
	mismatch := func(field string) kind {
		r.problem(Error, CodeBodyEndpointMismatch, "body has %q but no %q; that is a %s body, not a %s one",
			field, primaryField(k), kindEndpoint[looks], kindEndpoint[k])
		return looks
	}
	switch k {
	case kindChat:
		if !hasMessages && looks != kindUnknown {
			if hasInput {
				return mismatch("input")
			}
			return mismatch("prompt")
		}
	case kindResponses:
		if !hasInput && !promptRef && looks != kindUnknown {
			if hasMessages {
				return mismatch("messages")
			}
			return mismatch("prompt")
		}
	case kindEmbeddings, kindModerations:
		if !hasInput && looks != kindUnknown {
			if hasMessages {
				return mismatch("messages")
			}
			return mismatch("prompt")
		}
	case kindCompletions:
		if !hasPrompt && looks != kindUnknown {
			if hasMessages {
				return mismatch("messages")
			}
			return mismatch("input")
		}
	}
	return k
}

func (r *run) inputKind(model string) kind {
	res := r.c.reg.Lookup(model)
	if res.Model != nil && res.Model.Kind == "embedding" || strings.Contains(model, "embedding") {
		return kindEmbeddings
	}
	if strings.Contains(model, "moderation") {
		return kindModerations
	}
	return kindResponses
}

func primaryField(k kind) string {
	switch k {
	case kindChat:
		return "messages"
	case kindCompletions:
		return "prompt"
	}
	return "input"
}

func (r *run) resolveModel(k kind) {
	mv, present := r.obj["model"]
	name, isString := mv.(string)
	switch {
	case !present && k == kindModerations:
		name = "omni-moderation-latest" // the API's default for /v1/moderations
	case !present:
		r.problem(Error, CodeMissingModel, "body has no \"model\"")
	case !isString || strings.TrimSpace(name) == "":
		r.problem(Error, CodeMissingModel, "\"model\" must be a non-empty string")
		name = ""
	case strings.TrimSpace(name) != name:
		// The API compares model names exactly: "gpt-4o-mini " is
		// model_not_found, after the upload and the wait for a batch.
		r.problem(Error, CodeModelWhitespace, "model %q has leading or trailing whitespace; the API answers model_not_found — write %q", name, strings.TrimSpace(name))
		r.badModelName = true
	}
	r.name = name
	r.a.Count.Model, _ = mv.(string)
	res := r.c.reg.Lookup(name)
	r.a.Model = res
	r.enc = res.Encoding
	r.base = name
	if res.Model != nil {
		r.base = res.Model.ID
	} else if i := strings.LastIndexByte(name, '/'); i >= 0 {
		r.base = name[i+1:]
	}
	if r.c.opts.Encoding != "" {
		r.enc = r.c.opts.Encoding
	}
	if r.enc == "" {
		r.enc = models.DefaultEncoding
	}
	r.a.Count.Encoding = r.enc
	if name == "" {
		r.estimate("no model, so the encoding is assumed")
		return
	}
	// Any model without a registry entry is reported, even when the
	// tiktoken prefix table gives it an encoding ("gpt-4o-mnii" starts
	// with "gpt-4o"): its cost and limits are unknown, never $0.
	if res.Model == nil && present && k != kindModerations && !r.badModelName {
		hint := ""
		if s := r.c.suggest(name); s != "" {
			hint = fmt.Sprintf(" — did you mean %s?", s)
		}
		switch {
		case r.c.opts.Encoding != "":
			r.problem(Warning, CodeUnknownModel, "model %q is not in the registry: cost and limits unknown; counting with --encoding %s%s", name, r.enc, hint)
		case res.Known:
			r.problem(Warning, CodeUnknownModel, "model %q is not in the registry: cost and limits unknown; counting with %s (by its name prefix)%s", name, r.enc, hint)
		default:
			r.problem(Warning, CodeUnknownModel, "model %q is not in the registry: cost and limits unknown; no encoding known, counting with %s (assumed); pass --encoding o200k_base|cl100k_base to choose%s", name, r.enc, hint)
			r.estimate("encoding assumed for an unknown model")
		}
	}
	if res.Note != "" && strings.ContainsAny(name, "/:") && !strings.HasPrefix(name, "ft:") {
		r.problem(Note, CodeModelResolved, "model %q: %s", name, res.Note)
	}
}

// modelFamily is which endpoints a model serves.
type modelFamily int

const (
	familyChat        modelFamily = iota // chat completions and responses (every current generation model)
	familyCompletions                    // legacy completions only
	familyEmbedding                      // /v1/embeddings only
	familyUnknown                        // no model name
)

// completionsOnly are the models that serve /v1/completions and nothing
// else (OpenAI's model pages: gpt-3.5-turbo-instruct, davinci-002 and
// babbage-002 list only v1/completions), matched as prefixes.
var completionsOnly = []string{"gpt-3.5-turbo-instruct", "davinci-002", "babbage-002", "text-davinci-", "text-curie-", "text-babbage-", "text-ada-"}

// familyOf is THE table behind model_endpoint_mismatch: a registry entry
// of kind "embedding", or a name containing "embedding", serves only
// /v1/embeddings; completionsOnly names only /v1/completions; every other
// model only /v1/chat/completions and /v1/responses.
func (r *run) familyOf() modelFamily {
	if r.name == "" {
		return familyUnknown
	}
	if m := r.a.Model.Model; m != nil && m.Kind == "embedding" || strings.Contains(r.base, "embedding") {
		return familyEmbedding
	}
	for _, p := range completionsOnly {
		if strings.HasPrefix(r.base, p) {
			return familyCompletions
		}
	}
	return familyChat
}

// checkModelKind reports a model sent to an endpoint that does not serve
// it (familyOf; the API answers 400/404): an embedding model on a
// generation endpoint, a chat model on /v1/completions, a completions-only
// model on chat or responses, and the like.
func (r *run) checkModelKind(k kind) {
	if k == kindModerations || k == kindUnknown {
		return
	}
	name := r.base
	if m := r.a.Model.Model; m != nil {
		name = m.ID
	}
	switch f := r.familyOf(); {
	case f == familyEmbedding && k != kindEmbeddings:
		r.problem(Error, CodeModelEndpointMismatch, "%s is an embedding model; send it to %s, not %s", name, EndpointEmbeddings, kindEndpoint[k])
	case f != familyEmbedding && f != familyUnknown && k == kindEmbeddings:
		r.problem(Error, CodeModelEndpointMismatch, "%s is not an embedding model; %s needs one such as text-embedding-3-small", name, EndpointEmbeddings)
	case f == familyCompletions && k != kindCompletions:
		r.problem(Error, CodeModelEndpointMismatch, "%s is a legacy completions model: it serves only %s (a \"prompt\" body), not %s", name, EndpointCompletions, kindEndpoint[k])
	case f == familyChat && k == kindCompletions:
		r.problem(Error, CodeModelEndpointMismatch, "%s is a chat model: %s serves only legacy models such as gpt-3.5-turbo-instruct; send it to %s with \"messages\"", name, EndpointCompletions, EndpointChat)
	}
}

// reasoning reports whether the model is a reasoning model (o-series,
// gpt-5 family): the registry's flag, else the name (go-openai
// reasoning_validator.go uses the same prefixes).
func (r *run) reasoning() bool {
	if m := r.a.Model.Model; m != nil {
		return m.Reasoning
	}
	b := r.base
	return strings.HasPrefix(b, "o1") || strings.HasPrefix(b, "o3") || strings.HasPrefix(b, "o4") || strings.HasPrefix(b, "gpt-5")
}

// intField reads an integer field. ok is false when absent or null; a
// present value that is not an integer is reported with code.
func (r *run) intField(key, code string) (n int64, ok bool) {
	v, present := r.obj[key]
	if !present || v == nil {
		return 0, false
	}
	num, isNum := v.(json.Number)
	if isNum {
		i, err := strconv.ParseInt(string(num), 10, 64)
		if err == nil {
			return i, true
		}
		if errors.Is(err, strconv.ErrRange) {
			r.problem(Error, code, "%q is %s, out of range (not a 64-bit integer)", key, shorten(string(num)))
			return 0, false
		}
	}
	r.problem(Error, code, "%q must be an integer, not %s", key, jsonValue(v))
	return 0, false
}

// shorten cuts s to 40 bytes for a message.
func shorten(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

func jsonValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) > 40 {
		return jsonType(v)
	}
	return string(b)
}

// budget reads the output budget from keys (first present wins, except
// that max_tokens and max_completion_tokens together are an error).
func (r *run) budget(keys ...string) (int64, string) {
	var got []string
	vals := map[string]int64{}
	r.badBudget = ""
	for _, k := range keys {
		n, ok := r.intField(k, CodeInvalidOutputBudget)
		if !ok {
			if v, present := r.obj[k]; present && v != nil && r.badBudget == "" {
				r.badBudget = k // reported by intField
			}
			continue
		}
		if n < 1 {
			r.problem(Error, CodeInvalidOutputBudget, "%q must be at least 1, not %d", k, n)
			if r.badBudget == "" {
				r.badBudget = k
			}
			continue
		}
		got = append(got, k)
		vals[k] = n
	}
	switch len(got) {
	case 0:
		return 0, ""
	case 1:
		return vals[got[0]], got[0]
	}
	best := got[0]
	for _, k := range got[1:] {
		if vals[k] > vals[best] {
			best = k
		}
	}
	r.problem(Error, CodeConflictingOutputBudget, "both %s (%d) and %s (%d) are set; the API refuses that; set only max_completion_tokens (counted here with the larger, %d)",
		got[0], vals[got[0]], got[1], vals[got[1]], vals[best])
	return vals[best], best
}

// maxSaneBudget caps an output budget of a model whose maximum output is
// unknown (tokens): no model outputs more, and a value like
// 9223372036854775807 must not overflow TPMCharge or swamp the totals.
const maxSaneBudget = 1 << 20

func (r *run) setBudget(n int64, key string, def int64, defWhy string) {
	cnt := &r.a.Count
	if key == "" {
		cnt.OutputBudget = def
		cnt.BudgetAssumed = true
		if r.badBudget != "" {
			// The invalid value is already an error: counted with the
			// default, without a contradictory "no budget" warning.
			r.estimate(fmt.Sprintf("invalid %s counted as %d tokens", r.badBudget, def))
			return
		}
		r.problem(Warning, CodeNoOutputBudget, "%s", defWhy)
		return
	}
	cnt.OutputBudget = n
	m := r.a.Model.Model
	capped := false
	if m != nil && m.MaxOutputTokens > 0 && n > m.MaxOutputTokens {
		// Within the context window the rate limiter still reserves the
		// value as written (case B19: max_tokens 32000 on gpt-4o is a 429
		// "Request too large"); beyond it the value is absurd, and is
		// counted as the model's maximum so totals stay meaningful.
		if (m.ContextWindow > 0 && n > m.ContextWindow) || n > maxSaneBudget {
			cnt.OutputBudget, capped = m.MaxOutputTokens, true
			r.problem(Error, CodeOutputBudgetOverModelMax, "%s %d is more than %s can output (%d tokens); counted as %d so the totals stay meaningful", key, n, m.ID, m.MaxOutputTokens, m.MaxOutputTokens)
		} else {
			r.problem(Error, CodeOutputBudgetOverModelMax, "%s %d is more than %s can output (%d tokens)", key, n, m.ID, m.MaxOutputTokens)
		}
	}
	if !capped && n > maxSaneBudget {
		cnt.OutputBudget = maxSaneBudget
		r.estimate(fmt.Sprintf("%s %d capped at %d tokens", key, n, maxSaneBudget))
	}
	if r.reasoning() && n < SmallReasoningBudget && n > 0 {
		r.problem(Warning, CodeSmallReasoningBudget, "%s %d is small for a reasoning model: reasoning tokens come out of it, so the visible answer may be empty (finish_reason \"length\"); allow at least a few thousand", key, n)
	}
}

func (r *run) noBudgetMessage(field string) string {
	return fmt.Sprintf("no %s: what the rate limiter reserves for the output is unknown; counted with an assumed output budget of %d tokens (--assume-output)", field, r.c.opts.AssumeOutput)
}

func (r *run) readN(keys ...string) {
	for _, key := range keys {
		n, ok := r.intField(key, CodeInvalidN)
		if !ok {
			continue
		}
		if n < 1 || n > MaxN {
			r.problem(Error, CodeInvalidN, "%q must be between 1 and %d, not %d", key, MaxN, n)
			continue
		}
		if n > r.a.Count.N {
			r.a.Count.N = n
		}
	}
}

func (r *run) checkStream() {
	switch v := r.obj["stream"].(type) {
	case bool:
		if v {
			r.problem(Error, CodeStreamNotSupported, "\"stream\": true is not supported in Batch API requests (and oairl counts whole responses); remove it")
		}
	case nil:
	default:
		r.problem(Error, CodeStreamNotSupported, "\"stream\" must be a boolean, not %s (the API rejects it; and Batch requests cannot stream): remove it", jsonValue(v))
	}
}

// finish computes the TPM charge and the context-window check.
func (r *run) finish(k kind) {
	cnt := &r.a.Count
	cnt.TPMCharge = TPMCharge(cnt.PromptTokens, cnt.OutputBudget, cnt.N)
	if st, ok := r.obj["service_tier"].(string); ok {
		cnt.ServiceTier = st
	}
	if len(r.estWhy) > 0 {
		sort.Strings(r.estWhy)
		r.problem(Note, CodeEstimated, "count is an estimate: %s", strings.Join(r.estWhy, "; "))
	}
	m := r.a.Model.Model
	if m == nil || k == kindEmbeddings || k == kindModerations || r.failed {
		return
	}
	if m.MaxInputTokens > 0 && cnt.PromptTokens > m.MaxInputTokens {
		r.problem(Error, CodeContextLengthExceeded, "prompt is %d tokens, more than %s accepts as input (%d)", cnt.PromptTokens, m.ID, m.MaxInputTokens)
		return
	}
	if m.ContextWindow <= 0 {
		return
	}
	// The API checks prompt + the requested output budget (one choice)
	// against the context window; with no budget set it only needs the
	// prompt to fit, and caps the output to what is left.
	if !cnt.BudgetAssumed && cnt.PromptTokens+cnt.OutputBudget > m.ContextWindow {
		r.problem(Error, CodeContextLengthExceeded, "prompt %d + output budget %d = %d tokens, more than the %d-token context window of %s",
			cnt.PromptTokens, cnt.OutputBudget, cnt.PromptTokens+cnt.OutputBudget, m.ContextWindow, m.ID)
	} else if cnt.PromptTokens > m.ContextWindow {
		r.problem(Error, CodeContextLengthExceeded, "prompt is %d tokens, more than the %d-token context window of %s", cnt.PromptTokens, m.ContextWindow, m.ID)
	}
}

// ---- Chat Completions -------------------------------------------------

// Chat framing from the OpenAI cookbook "How to count tokens with
// tiktoken" (num_tokens_from_messages): every message costs 3 tokens
// (<|start|>{role}\n … <|end|>) plus its string values, a "name" 1 more,
// and every reply is primed with 3 (<|start|>assistant<|message|>).
// gpt-3.5-turbo-0301 used 4 per message and -1 per name.
func (r *run) framing() (perMessage, perName int64) {
	if strings.Contains(r.name, "gpt-3.5-turbo-0301") {
		return 4, -1
	}
	return 3, 1
}

const replyPriming = 3

var validRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true, "function": true}

func (r *run) chat() {
	r.checkStream()
	perMessage, perName := r.framing()
	cnt := &r.a.Count
	mv, ok := r.obj["messages"]
	switch {
	case !ok || mv == nil:
		r.problem(Error, CodeMessagesMissing, "body has no \"messages\"")
	default:
		if la, ok := mv.(*lazyArray); ok {
			// Decoded one message at a time (bounded memory, see lazyArray).
			if la.Len() == 0 {
				r.problem(Error, CodeMessagesEmpty, "\"messages\" is empty; the API needs at least one message")
				break
			}
			for i := 0; i < la.Len(); i++ {
				m, dups, err := la.At(i)
				if err != nil {
					r.problem(Error, CodeInvalidJSON, "messages[%d] is not valid JSON: %v", i, err)
					break
				}
				r.dupProblems(dups)
				cnt.PromptTokens += r.chatMessage(i, m, perMessage, perName)
			}
			cnt.PromptTokens += replyPriming
			break
		}
		msgs, isArr := mv.([]any)
		if !isArr {
			r.problem(Error, CodeMessagesMissing, "\"messages\" must be an array of message objects, not %s", jsonType(mv))
			break
		}
		if len(msgs) == 0 {
			r.problem(Error, CodeMessagesEmpty, "\"messages\" is empty; the API needs at least one message")
			break
		}
		for i, m := range msgs {
			cnt.PromptTokens += r.chatMessage(i, m, perMessage, perName)
		}
		cnt.PromptTokens += replyPriming
	}
	cnt.PromptTokens += r.toolDefinitions(r.obj["tools"], true)
	cnt.PromptTokens += r.toolDefinitions(r.obj["functions"], false)
	if rf, ok := r.obj["response_format"].(map[string]any); ok {
		cnt.PromptTokens += r.responseFormat(rf)
	}
	n, key := r.budget("max_completion_tokens", "max_tokens")
	if key == "max_tokens" && r.reasoning() {
		r.problem(Error, CodeMaxTokensOnReasoningModel, "max_tokens is not accepted by reasoning models (o-series, gpt-5); use max_completion_tokens")
	}
	r.setBudget(n, key, r.c.opts.AssumeOutput, r.noBudgetMessage("max_completion_tokens or max_tokens"))
	r.readN("n")
}

func (r *run) chatMessage(i int, v any, perMessage, perName int64) int64 {
	m, ok := v.(map[string]any)
	if !ok {
		r.problem(Error, CodeMessageInvalid, "messages[%d] must be an object, not %s", i, jsonType(v))
		return 0
	}
	role, _ := m["role"].(string)
	if !validRoles[role] {
		if _, has := m["role"]; !has {
			r.problem(Error, CodeMessageInvalid, "messages[%d] has no \"role\"", i)
		} else {
			r.problem(Error, CodeMessageInvalid, "messages[%d].role %s is not one of system, developer, user, assistant, tool", i, jsonValue(m["role"]))
		}
	}
	_, hasToolCalls := m["tool_calls"]
	_, hasFunctionCall := m["function_call"]
	n := perMessage
	keys := sortedKeys(m)
	for _, key := range keys {
		val := m[key]
		switch key {
		case "content":
			n += r.chatContent(i, role, val, hasToolCalls || hasFunctionCall)
		case "tool_calls":
			n += r.toolCalls(i, val)
		case "function_call":
			if fc, ok := val.(map[string]any); ok {
				name, _ := fc["name"].(string)
				args, _ := fc["arguments"].(string)
				n += r.count(name) + r.count(args) + 3
				r.estimate("function calls in assistant messages (community recipe)")
			}
		default:
			if s, ok := val.(string); ok {
				n += r.count(s)
				if key == "name" {
					n += perName
				}
				if key == "tool_call_id" {
					r.estimate("tool messages (framing not published)")
				}
			} else if val != nil && key != "role" {
				r.estimate(fmt.Sprintf("message field %q", key))
			}
		}
	}
	if _, has := m["content"]; !has && !hasToolCalls && !hasFunctionCall && role != "assistant" {
		r.problem(Error, CodeMessageInvalid, "messages[%d] (%s) has no \"content\"", i, role)
	}
	if role == "tool" {
		if _, ok := m["tool_call_id"].(string); !ok {
			r.problem(Error, CodeMessageInvalid, "messages[%d] has role \"tool\" but no \"tool_call_id\"", i)
		}
	}
	return n
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (r *run) chatContent(i int, role string, v any, hasCalls bool) int64 {
	switch c := v.(type) {
	case string:
		return r.count(c)
	case nil:
		if role != "assistant" || !hasCalls {
			if role != "assistant" {
				r.problem(Error, CodeMessageInvalid, "messages[%d].content is null; only assistant messages with tool_calls may omit content", i)
			}
		}
		return 0
	case []any:
		var n int64
		for j, p := range c {
			n += r.contentPart(fmt.Sprintf("messages[%d].content[%d]", i, j), p)
		}
		return n
	}
	r.problem(Error, CodeMessageInvalid, "messages[%d].content must be a string or an array of content parts, not %s", i, jsonType(v))
	return 0
}

// contentPart counts one content part of a chat message, a Responses
// message item or a moderation input: text parts exactly (their text),
// images by the published image rules, anything else (audio, files) as an
// estimate of zero.
func (r *run) contentPart(where string, v any) int64 {
	p, ok := v.(map[string]any)
	if !ok {
		r.problem(Error, CodeMessageInvalid, "%s must be an object, not %s", where, jsonType(v))
		return 0
	}
	typ, _ := p["type"].(string)
	switch typ {
	case "text", "input_text", "output_text":
		s, ok := p["text"].(string)
		if !ok {
			r.problem(Error, CodeMessageInvalid, "%s (type %q) has no string \"text\"", where, typ)
		}
		return r.count(s)
	case "refusal":
		s, _ := p["refusal"].(string)
		return r.count(s)
	case "image_url", "input_image":
		url, detail := "", "auto"
		switch iu := p["image_url"].(type) {
		case string:
			url = iu
		case map[string]any:
			url, _ = iu["url"].(string)
			if d, ok := iu["detail"].(string); ok {
				detail = d
			}
		}
		if d, ok := p["detail"].(string); ok {
			detail = d
		}
		if url == "" {
			if _, ok := p["file_id"].(string); !ok {
				r.problem(Error, CodeMessageInvalid, "%s (type %q) has no image url", where, typ)
				return 0
			}
		}
		return r.image(where, url, detail)
	case "":
		r.problem(Error, CodeMessageInvalid, "%s has no \"type\"", where)
		return 0
	default:
		r.estimate(fmt.Sprintf("content parts of type %q (not counted)", typ))
		return 0
	}
}

// toolCalls counts an assistant message's tool_calls: per call the
// function name and arguments plus 3 tokens of framing (community recipe,
// e.g. hmarr/openai-chat-tokens; OpenAI publishes none): an estimate.
func (r *run) toolCalls(i int, v any) int64 {
	calls, ok := v.([]any)
	if !ok {
		if v != nil {
			r.problem(Error, CodeMessageInvalid, "messages[%d].tool_calls must be an array, not %s", i, jsonType(v))
		}
		return 0
	}
	var n int64
	for j, c := range calls {
		cm, ok := c.(map[string]any)
		if !ok {
			r.problem(Error, CodeMessageInvalid, "messages[%d].tool_calls[%d] must be an object, not %s", i, j, jsonType(c))
			continue
		}
		if id, _ := cm["id"].(string); id == "" {
			r.problem(Error, CodeMessageInvalid, "messages[%d].tool_calls[%d] has no \"id\" (a string the tool message's tool_call_id refers to)", i, j)
		}
		fn, _ := cm["function"].(map[string]any)
		name, _ := fn["name"].(string)
		args, _ := fn["arguments"].(string)
		n += r.count(name) + r.count(args) + 3
	}
	if len(calls) > 0 {
		r.estimate("tool calls in assistant messages (community recipe)")
	}
	return n
}

// toolDefinitions counts "tools" (chat: {type, function:{name,
// description, parameters}}; responses: {type, name, description,
// parameters}) or legacy "functions" with the cookbook's
// num_tokens_for_tools (section 7 of "How to count tokens with tiktoken";
// published to match the API for gpt-3.5-turbo, gpt-4, gpt-4o and
// gpt-4o-mini): per function 7 (o200k_base) or 10 (cl100k_base) tokens +
// "name:description"; if it has properties 3 + per property 3 +
// "name:type:description" (+ per enum -3 and 3 + item per item); 12 at the
// end. The result is always flagged an estimate: the recipe approximates
// the API's count; nested schemas and other model families more so.
func (r *run) toolDefinitions(v any, wrapped bool) int64 {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return 0
	}
	funcInit := int64(7)
	if r.enc == "cl100k_base" {
		funcInit = 10
	}
	// The cookbook's recipe reproduces the API's count only for the
	// examples it was fitted on (flat schemas on gpt-4o-era models); the
	// API's real framing of tool definitions is not published, and strict
	// mode, required lists and additionalProperties change it. So a
	// request with tools is always an estimate (issue 14 §6).
	if !cookbookToolFamily(r.base) {
		r.estimate("tool definitions for this model family")
	} else {
		r.estimate("tool definitions (OpenAI publishes no exact recipe; the cookbook's is an approximation)")
	}
	var n int64
	for _, t := range list {
		tm, _ := t.(map[string]any)
		fn := tm
		if typ, _ := tm["type"].(string); typ != "function" && typ != "" {
			r.estimate(fmt.Sprintf("built-in tool %q (not counted)", typ))
			continue
		}
		if wrapped {
			if f, ok := tm["function"].(map[string]any); ok {
				fn = f
			}
		}
		name, _ := fn["name"].(string)
		desc, _ := fn["description"].(string)
		n += funcInit + r.count(name+":"+strings.TrimSuffix(desc, "."))
		params, _ := fn["parameters"].(map[string]any)
		props, _ := params["properties"].(map[string]any)
		if len(props) > 0 {
			n += 3
			for _, key := range sortedKeys(props) {
				n += 3
				pm, _ := props[key].(map[string]any)
				ptype := ""
				switch t := pm["type"].(type) {
				case string:
					ptype = t
				case nil:
				default:
					b, _ := json.Marshal(t)
					ptype = string(b)
					r.estimate("tool parameters beyond the cookbook recipe")
				}
				pdesc, _ := pm["description"].(string)
				if enum, ok := pm["enum"].([]any); ok {
					n -= 3
					for _, item := range enum {
						n += 3
						if s, ok := item.(string); ok {
							n += r.count(s)
						} else {
							b, _ := json.Marshal(item)
							n += r.count(string(b))
						}
					}
				}
				n += r.count(key + ":" + ptype + ":" + strings.TrimSuffix(pdesc, "."))
				for _, nested := range []string{"properties", "items", "anyOf", "oneOf", "allOf", "$ref"} {
					if sub, ok := pm[nested]; ok {
						b, _ := json.Marshal(sub)
						n += r.count(string(b))
						r.estimate("nested tool parameter schemas")
					}
				}
			}
		}
	}
	return n + 12
}

func cookbookToolFamily(base string) bool {
	for _, p := range []string{"gpt-4o", "gpt-4", "gpt-3.5-turbo", "chatgpt-4o"} {
		if strings.HasPrefix(base, p) && !strings.HasPrefix(base, "gpt-4.") {
			return true
		}
	}
	return false
}

// responseFormat counts a json_schema response format as its name and
// compact schema text: an estimate (OpenAI publishes no recipe).
func (r *run) responseFormat(rf map[string]any) int64 {
	typ, _ := rf["type"].(string)
	if typ != "json_schema" {
		return 0
	}
	js, ok := rf["json_schema"].(map[string]any)
	if !ok {
		js = rf // Responses API: text.format carries name and schema directly
	}
	name, _ := js["name"].(string)
	b, _ := json.Marshal(js["schema"])
	r.estimate("response_format json_schema")
	return r.count(name) + r.count(string(b))
}

// ---- Responses --------------------------------------------------------

// responses counts a /v1/responses body with the chat framing: the
// instructions as a system message, a string input as one user message,
// items as messages; OpenAI publishes no recipe for this endpoint, so
// the count is flagged as an estimate.
func (r *run) responses() {
	r.checkStream()
	perMessage, _ := r.framing()
	cnt := &r.a.Count
	r.estimate("Responses API framing (no published recipe; chat framing used)")
	if pr, ok := r.obj["prompt"].(map[string]any); ok {
		if id, _ := pr["id"].(string); id == "" {
			r.problem(Error, CodeInputInvalid, "\"prompt\" (a prompt template reference) needs a string \"id\"")
		} else if _, has := r.obj["input"]; has {
			r.estimate("prompt template reference (its content is unknown offline; not counted)")
		}
	}
	if s, ok := r.obj["instructions"].(string); ok && s != "" {
		cnt.PromptTokens += perMessage + r.count("system") + r.count(s)
	}
	iv, ok := r.obj["input"]
	switch in := iv.(type) {
	case string:
		cnt.PromptTokens += perMessage + r.count("user") + r.count(in)
	case []any:
		if len(in) == 0 {
			r.problem(Error, CodeInputInvalid, "\"input\" is an empty array")
		}
		for i, item := range in {
			cnt.PromptTokens += r.responseItem(i, item, perMessage)
		}
	case nil:
		if _, ref := r.obj["prompt"].(map[string]any); ref && !ok {
			// A prompt template supplies the input: valid, but its
			// content is stored server-side and unknown offline.
			r.estimate("prompt template reference (its content is unknown offline; not counted)")
		} else if !ok {
			r.problem(Error, CodeInputMissing, "body has no \"input\" (nor a \"prompt\" template reference)")
		} else {
			r.problem(Error, CodeInputInvalid, "\"input\" is null")
		}
	default:
		r.problem(Error, CodeInputInvalid, "\"input\" must be a string or an array of items, not %s", jsonType(iv))
	}
	cnt.PromptTokens += replyPriming
	cnt.PromptTokens += r.toolDefinitions(r.obj["tools"], false)
	if text, ok := r.obj["text"].(map[string]any); ok {
		if f, ok := text["format"].(map[string]any); ok {
			cnt.PromptTokens += r.responseFormat(f)
		}
	}
	n, key := r.budget("max_output_tokens")
	r.setBudget(n, key, r.c.opts.AssumeOutput, r.noBudgetMessage("max_output_tokens"))
}

func (r *run) responseItem(i int, v any, perMessage int64) int64 {
	m, ok := v.(map[string]any)
	if !ok {
		r.problem(Error, CodeMessageInvalid, "input[%d] must be an object, not %s", i, jsonType(v))
		return 0
	}
	typ, _ := m["type"].(string)
	if role, ok := m["role"].(string); ok && (typ == "" || typ == "message") {
		if !validRoles[role] {
			r.problem(Error, CodeMessageInvalid, "input[%d].role %q is not one of system, developer, user, assistant", i, role)
		}
		n := perMessage + r.count(role)
		switch c := m["content"].(type) {
		case string:
			n += r.count(c)
		case []any:
			for j, p := range c {
				n += r.contentPart(fmt.Sprintf("input[%d].content[%d]", i, j), p)
			}
		default:
			r.problem(Error, CodeMessageInvalid, "input[%d].content must be a string or an array of content parts, not %s", i, jsonType(m["content"]))
		}
		return n
	}
	switch typ {
	case "function_call":
		name, _ := m["name"].(string)
		args, _ := m["arguments"].(string)
		return r.count(name) + r.count(args) + 3
	case "function_call_output":
		switch o := m["output"].(type) {
		case string:
			return perMessage + r.count(o)
		default:
			b, _ := json.Marshal(o)
			return perMessage + r.count(string(b))
		}
	case "":
		r.problem(Error, CodeMessageInvalid, "input[%d] has neither \"role\" nor \"type\"", i)
		return 0
	}
	r.estimate(fmt.Sprintf("input items of type %q (not counted)", typ))
	return 0
}

// ---- Embeddings, Completions, Moderations -----------------------------

// tokenInputs counts an "input"/"prompt" value: a string, an array of
// strings, an array of token ids (counts its length) or an array of such
// arrays. It returns the per-input counts.
func (r *run) tokenInputs(field string, v any) []int64 {
	switch x := v.(type) {
	case string:
		return []int64{r.count(x)}
	case []any:
		if len(x) == 0 {
			r.problem(Error, CodeInputInvalid, "%q is an empty array", field)
			return nil
		}
		if _, isNum := x[0].(json.Number); isNum {
			for _, e := range x {
				if _, ok := e.(json.Number); !ok {
					r.problem(Error, CodeInputInvalid, "%q mixes token ids with %s", field, jsonType(e))
					break
				}
			}
			r.checkTokenIDs(field, x)
			return []int64{int64(len(x))}
		}
		out := make([]int64, 0, len(x))
		for i, e := range x {
			switch y := e.(type) {
			case string:
				out = append(out, r.count(y))
			case []any:
				for _, t := range y {
					if _, ok := t.(json.Number); !ok {
						r.problem(Error, CodeInputInvalid, "%s[%d] must be an array of token ids", field, i)
						break
					}
				}
				r.checkTokenIDs(fmt.Sprintf("%s[%d]", field, i), y)
				out = append(out, int64(len(y)))
			default:
				r.problem(Error, CodeInputInvalid, "%s[%d] must be a string or an array of token ids, not %s", field, i, jsonType(e))
				out = append(out, 0)
			}
		}
		return out
	}
	r.problem(Error, CodeInputInvalid, "%q must be a string, an array of strings or of token ids, not %s", field, jsonType(v))
	return nil
}

// vocabSize is the number of token ids of each encoding (ids 0..n-1,
// special tokens included): openai/tiktoken tiktoken_ext/openai_public.py
// (r50k_base <|endoftext|> 50256; p50k_base 50280; p50k_edit's
// <|endofprompt|> 50283; cl100k_base's 100276; o200k_base's 200018).
var vocabSize = map[string]int64{
	"r50k_base": 50257, "p50k_base": 50281, "p50k_edit": 50284, "cl100k_base": 100277, "o200k_base": 200019,
}

// checkTokenIDs reports the first token id of ids that is not an integer
// in the encoding's vocabulary (the API answers 400 "invalid token").
func (r *run) checkTokenIDs(field string, ids []any) {
	size := vocabSize[r.enc]
	for j, e := range ids {
		num, ok := e.(json.Number)
		if !ok {
			return // reported as mixed
		}
		id, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil || id < 0 || (size > 0 && id >= size) {
			r.problem(Error, CodeInputInvalid, "%s[%d] is %s, not a token id of %s (0..%d)", field, j, shorten(string(num)), r.enc, size-1)
			return
		}
	}
}

func (r *run) embeddings() {
	iv, ok := r.obj["input"]
	if !ok || iv == nil {
		r.problem(Error, CodeInputMissing, "body has no \"input\"")
		return
	}
	inputs := r.tokenInputs("input", iv)
	r.a.Count.Inputs = int64(len(inputs))
	limit := int64(MaxEmbeddingInputTokens)
	if m := r.a.Model.Model; m != nil && m.Kind == "embedding" && m.ContextWindow > 0 {
		limit = m.ContextWindow
	}
	if s, ok := iv.(string); ok && s == "" {
		r.problem(Error, CodeInputInvalid, "\"input\" must not be an empty string")
	}
	if len(inputs) > MaxEmbeddingInputs {
		r.problem(Error, CodeTooManyEmbeddingInputs, "%d inputs in one request; the API accepts at most %d", len(inputs), MaxEmbeddingInputs)
	}
	var total int64
	over := 0
	for i, n := range inputs {
		total += n
		if n > limit {
			if over < 3 {
				r.problem(Error, CodeEmbeddingInputTooLong, "input[%d] is %d tokens; %s accepts at most %d per input", i, n, nameOr(r.name, "the model"), limit)
			}
			over++
		}
	}
	if over > 3 {
		r.problem(Error, CodeEmbeddingInputTooLong, "%d more inputs are over %d tokens", over-3, limit)
	}
	if total > MaxEmbeddingRequestTokens {
		r.problem(Error, CodeEmbeddingRequestTooLarge, "inputs total %d tokens; one request may carry at most %d", total, MaxEmbeddingRequestTokens)
	}
	r.a.Count.PromptTokens = total
}

func nameOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (r *run) completions() {
	r.checkStream()
	pv, ok := r.obj["prompt"]
	prompts := 1
	if !ok || pv == nil {
		r.problem(Error, CodePromptMissing, "body has no \"prompt\"")
	} else {
		inputs := r.tokenInputs("prompt", pv)
		for _, n := range inputs {
			r.a.Count.PromptTokens += n
		}
		if arr, ok := pv.([]any); ok && len(inputs) > 1 {
			if _, isNum := arr[0].(json.Number); !isNum {
				prompts = len(inputs)
			}
		}
	}
	if s, ok := r.obj["suffix"].(string); ok {
		r.a.Count.PromptTokens += r.count(s)
	}
	n, key := r.budget("max_tokens")
	r.setBudget(n, key, CompletionsDefaultMaxTokens, fmt.Sprintf("no max_tokens: /v1/completions defaults to %d output tokens, counted as such", CompletionsDefaultMaxTokens))
	r.readN("n", "best_of")
	// each prompt of a batched prompt array gets its own n choices
	r.a.Count.N *= int64(prompts)
}

func (r *run) moderations() {
	iv, ok := r.obj["input"]
	if !ok || iv == nil {
		r.problem(Error, CodeInputMissing, "body has no \"input\"")
		return
	}
	if arr, ok := iv.([]any); ok && len(arr) > 0 {
		if _, isObj := arr[0].(map[string]any); isObj {
			for j, p := range arr {
				r.a.Count.PromptTokens += r.contentPart(fmt.Sprintf("input[%d]", j), p)
			}
			return
		}
	}
	for _, n := range r.tokenInputs("input", iv) {
		r.a.Count.PromptTokens += n
	}
}

// ---- Cost -------------------------------------------------------------

// Cost returns the USD cost of prompt and output tokens at the model's
// standard and Batch API prices (Price fields are USD per 1M tokens).
// When the model has standard prices but no Batch price, Batch is 50% of
// standard (developers.openai.com/api/docs/guides/batch: "50% lower
// costs"). Zero for a nil model or unknown prices. Cached-input discounts
// are not applied (they are not known offline).
func Cost(m *models.Model, prompt, output int64) (standard, batch float64) {
	if m == nil {
		return 0, 0
	}
	p := m.Price
	standard = (float64(prompt)*p.Input + float64(output)*p.Output) / 1e6
	bi, bo := p.BatchInput, p.BatchOutput
	if bi == 0 && bo == 0 {
		bi, bo = p.Input/2, p.Output/2
	} else {
		if bi == 0 {
			bi = p.Input / 2
		}
		if bo == 0 {
			bo = p.Output / 2
		}
	}
	batch = (float64(prompt)*bi + float64(output)*bo) / 1e6
	if math.IsNaN(standard) || math.IsNaN(batch) {
		return 0, 0
	}
	return standard, batch
}

package sim

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/oairl/oairl/internal/models"
)

// limiterFor returns model m's limiter (nil when no limit applies). s.mu held.
func (s *Server) limiterFor(m *models.Model) *limiter {
	// Models of one shared-limit group share one limiter, named after the
	// group (the server's 429s name the pool, not the model sent).
	key := m.ID
	g := s.cfg.Registry.Group(m.ID)
	if g != nil {
		key = g.ID
	}
	if l, ok := s.limiters[key]; ok {
		return l
	}
	lim := limitsFor(s.cfg, m)
	if g != nil {
		lim = groupLimitsFor(s.cfg, g.ID)
	}
	now := s.clk.Now()
	var l *limiter
	if lim.RPM > 0 || lim.TPM > 0 || lim.RPD > 0 || lim.TPD > 0 || s.cfg.ProjectTPM > 0 {
		l = &limiter{
			model: key,
			rpm:   newBucket(lim.RPM, time.Minute, now),
			tpm:   newBucket(lim.TPM, time.Minute, now),
			rpd:   newBucket(lim.RPD, 24*time.Hour, now),
			tpd:   newBucket(lim.TPD, 24*time.Hour, now),
			ptpm:  newBucket(s.cfg.ProjectTPM, time.Minute, now),
		}
		if s.cfg.Like == LikeAzure && lim.RPM > 0 {
			// Azure evaluates RPM over 10 s windows (RPM/6 each) and
			// reports that window in x-ratelimit-*-requests (wire-formats.md §3).
			l.rpm = newBucket(max(1, lim.RPM/6), 10*time.Second, now)
		}
		if s.cfg.Like == LikeGroq && l.rpd == nil {
			// Groq's request headers are per day: give the pool a daily
			// request budget (Groq's free llama-3.3-70b figure, 14,400 RPD).
			l.rpd = newBucket(14400, 24*time.Hour, now)
		}
	}
	s.limiters[key] = l
	s.stats.Limits[key] = lim
	return l
}

// longLimiterFor returns model m's long-context limiter (nil when no limit
// applies); its name in messages is "MODEL-long-context" (an assumption:
// no capture of such a 429 was found). s.mu held.
func (s *Server) longLimiterFor(m *models.Model) *limiter {
	key := m.ID + "-long-context"
	if l, ok := s.limiters[key]; ok {
		return l
	}
	var lim models.Limits
	if s.cfg.Tier != "" && s.cfg.Tier != "none" {
		lim = m.LongContext.Tiers[s.cfg.Tier]
	}
	lim = overrideLimits(lim, s.cfg)
	now := s.clk.Now()
	var l *limiter
	if lim.RPM > 0 || lim.TPM > 0 || lim.RPD > 0 || lim.TPD > 0 {
		l = &limiter{model: key, rpm: newBucket(lim.RPM, time.Minute, now), tpm: newBucket(lim.TPM, time.Minute, now),
			rpd: newBucket(lim.RPD, 24*time.Hour, now), tpd: newBucket(lim.TPD, 24*time.Hour, now)}
	}
	s.limiters[key] = l
	s.stats.Limits[key] = lim
	return l
}

// longContextThreshold parses the registry's "> 128k input tokens" into
// 128000 tokens (k and K are thousands); 0 when unreadable.
func longContextThreshold(appliesWhen string) int64 {
	var n int64
	var unit string
	if _, err := fmt.Sscanf(strings.TrimSpace(appliesWhen), "> %d%s", &n, &unit); err != nil && n == 0 {
		return math.MaxInt64
	}
	if strings.HasPrefix(strings.ToLower(unit), "k") {
		n *= 1000
	}
	return n
}

// Limits returns the limits the simulator applies to model (resolved through
// the registry); ok is false for an unknown model.
func (s *Server) Limits(model string) (l models.Limits, ok bool) {
	res := s.lookup(model)
	if res.Model == nil {
		return l, false
	}
	return limitsFor(s.cfg, res.Model), true
}

// charge is the accounting of one inference request.
type charge struct {
	prompt int64 // prompt tokens (usage.prompt_tokens)
	budget int64 // output budget per choice (0: none set)
	set    bool  // the request set a budget
	n      int64 // choices
	total  int64 // TPM charge: prompt + budget × n
}

// account counts a request's tokens with the tokens package, falling back
// to a crude estimate (len/4) while the counter reports no prompt tokens.
func (s *Server) account(endpoint string, raw []byte, body map[string]json.RawMessage) charge {
	a := s.counter.Analyze(endpoint, raw)
	var c charge
	c.n = 1
	if v, ok := intField(body, "n"); ok && v > 0 && endpoint != "/v1/responses" {
		c.n = v
	}
	switch endpoint {
	case "/v1/chat/completions":
		if v, ok := intField(body, "max_completion_tokens"); ok {
			c.budget, c.set = v, true
		} else if v, ok := intField(body, "max_tokens"); ok {
			c.budget, c.set = v, true
		}
	case "/v1/completions":
		c.budget, c.set = 16, true // the legacy API's default max_tokens
		if v, ok := intField(body, "max_tokens"); ok {
			c.budget = v
		}
	case "/v1/responses":
		if v, ok := intField(body, "max_output_tokens"); ok {
			c.budget, c.set = v, true
		}
	}
	if a.Count.PromptTokens > 0 {
		c.prompt = a.Count.PromptTokens
		if a.Count.N > 0 {
			c.n = a.Count.N
		}
		if endpoint != "/v1/embeddings" {
			c.budget = a.Count.OutputBudget
			if a.Count.BudgetAssumed {
				c.set = false
			}
		}
		c.total = c.prompt + c.budget*c.n
		if a.Count.TPMCharge > 0 && !(endpoint == "/v1/completions" && a.Count.BudgetAssumed) {
			c.total = a.Count.TPMCharge
		}
		if endpoint == "/v1/completions" && a.Count.BudgetAssumed {
			// The legacy Completions API defaults max_tokens to 16.
			c.budget, c.set = 16, true
			c.total = c.prompt + c.budget*c.n
		}
		return c
	}
	c.prompt = crudeEstimate(endpoint, body)
	if !c.set && endpoint != "/v1/embeddings" {
		c.budget = s.cfg.AssumeOutput
	}
	c.total = c.prompt + c.budget*c.n
	return c
}

// crudeEstimate is ceil(characters/4) of the text fields, plus the chat
// framing of 3 tokens per message and 3 for the reply.
func crudeEstimate(endpoint string, body map[string]json.RawMessage) int64 {
	var chars, msgs int64
	for _, k := range []string{"messages", "input", "prompt", "instructions", "tools", "functions"} {
		raw, ok := body[k]
		if !ok {
			continue
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			continue
		}
		if k == "messages" {
			if a, ok := v.([]any); ok {
				msgs = int64(len(a))
			}
		}
		chars += textLen(v)
	}
	n := (chars + 3) / 4
	if endpoint == "/v1/chat/completions" {
		n += 3*msgs + 3
	}
	return n
}

func textLen(v any) int64 {
	switch t := v.(type) {
	case string:
		return int64(len(t))
	case float64:
		return 4 // a token id
	case []any:
		var n int64
		for _, e := range t {
			n += textLen(e)
		}
		return n
	case map[string]any:
		var n int64
		for _, e := range t {
			n += textLen(e)
		}
		return n
	}
	return 0
}

func intField(body map[string]json.RawMessage, k string) (int64, bool) {
	raw, ok := body[k]
	if !ok || string(raw) == "null" {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	return int64(f), true
}

func strField(body map[string]json.RawMessage, k string) string {
	var s string
	_ = json.Unmarshal(body[k], &s)
	return s
}

func boolField(body map[string]json.RawMessage, k string) bool {
	var b bool
	_ = json.Unmarshal(body[k], &b)
	return b
}

// inference serves the four model endpoints.
func (s *Server) inference(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	endpoint := r.URL.Path
	if ep, ok := r.Context().Value(endpointKey{}).(string); ok {
		endpoint = ep // an Azure deployment path (azureInference)
	}
	var body map[string]json.RawMessage
	jsonErr := json.Unmarshal(x.body, &body)
	x.model = strField(body, "model")
	var res models.Resolution
	var lim *limiter
	if x.model != "" {
		res = s.lookup(x.model)
		if res.Model != nil {
			s.mu.Lock()
			lim = s.limiterFor(res.Model)
			if lim != nil {
				lim.advance(s.clk.Now())
				s.setRateHeaders(w.Header(), lim)
			}
			s.mu.Unlock()
		}
	}
	if !s.auth(x) {
		return
	}
	if jsonErr != nil || body == nil {
		x.error(400, "invalid_request_error", "", "",
			"We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)")
		return
	}
	if x.model == "" {
		x.error(400, "invalid_request_error", "model", "missing_required_parameter", "Missing required parameter: 'model'.")
		return
	}
	if res.Model == nil {
		x.error(404, "invalid_request_error", "", "model_not_found",
			fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", x.model))
		return
	}
	s.mu.Lock()
	q := s.mode.quota
	s.mu.Unlock()
	if q != "" {
		x.limit = LimitQuota
		x.error(429, "insufficient_quota", "", q, quotaMessage(q))
		return
	}
	c, herr := s.check(endpoint, x.model, res.Model, x.body, body)
	if herr != nil {
		if lim != nil && herr.status == 400 {
			// A request rejected as invalid once its model is known still
			// counts (wire-formats.md §1.7: unsuccessful requests count);
			// it takes a request, no tokens, and never goes into debt.
			s.mu.Lock()
			lim.advance(s.clk.Now())
			lim.takeRequest(false)
			s.setRateHeaders(w.Header(), lim)
			s.mu.Unlock()
		}
		x.json(herr.status, herr.body)
		return
	}

	if s.flexMiss(body) {
		// Flex capacity is short: 429 resource_unavailable before
		// admission, so nothing is charged (OpenAI flex processing guide).
		x.limit = LimitFlex
		x.error(429, "invalid_request_error", "", "resource_unavailable",
			"Resource unavailable for service_tier flex. Please try again later or use service_tier auto.")
		return
	}

	// Admission.
	s.mu.Lock()
	now := s.clk.Now()
	var rej *rejection
	limName := x.model
	if m := res.Model; m.LongContext != nil && c.prompt > longContextThreshold(m.LongContext.AppliesWhen) {
		// Prompts above the threshold use the model's separate long-context
		// bucket (wire-formats.md §6.2, §7.10).
		if l := s.longLimiterFor(m); l != nil {
			lim, limName = l, l.model
		}
	}
	if lim != nil {
		rej = s.admit(lim, limName, c.total, now)
		s.setRateHeaders(w.Header(), lim)
	} else if s.cfg.MaxConcurrent > 0 && s.inflight >= s.cfg.MaxConcurrent {
		rej = &rejection{limit: LimitConcurrency, errType: "requests", code: "rate_limit_exceeded",
			message: "Too many concurrent requests for this model.", wait: time.Second}
	}
	var fault int
	if rej == nil {
		s.inflight++
		x.charged = c.total
		if s.mode.faultRate > 0 && s.rng.Float64() < s.mode.faultRate {
			fault = 1 + s.rng.Intn(3)
		}
	}
	s.mu.Unlock()
	if rej != nil {
		s.writeRejection(x, rej)
		return
	}
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}()

	perChoice := s.cfg.OutputTokens
	if c.budget > 0 && c.budget < perChoice {
		perChoice = c.budget
	}
	finish := "stop"
	if c.set && c.budget <= s.cfg.OutputTokens {
		finish = "length"
	}
	if endpoint == "/v1/embeddings" {
		perChoice = 0
	}
	switch fault {
	case 1:
		_ = s.sleep(x, s.cfg.Latency)
		x.error(500, "server_error", "", "", "The server had an error while processing your request. Sorry about that!")
		return
	case 2:
		_ = s.sleep(x, s.cfg.Latency)
		hset(w.Header(), "retry-after", "1")
		x.error(503, "service_unavailable_error", "", "server_is_overloaded",
			fmt.Sprintf("That model is currently overloaded with other requests. You can retry your request, or contact us through our help center at help.openai.com if the error persists. (Please include the request ID %s in your message.)", x.requestID))
		return
	case 3:
		_ = s.sleep(x, s.cfg.Latency)
		x.status = 0
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}

	if boolField(body, "stream") && endpoint != "/v1/embeddings" {
		s.stream(x, endpoint, body, c, perChoice, finish)
	} else {
		if err := s.sleep(x, s.cfg.Latency+time.Duration(perChoice)*s.cfg.LatencyPerToken); err != nil {
			x.status = 499
			return
		}
		s.mu.Lock()
		id := s.alnumID(29)
		s.mu.Unlock()
		x.json(200, s.responseBody(x.model, id, endpoint, body, c, perChoice, finish))
	}
	s.mu.Lock()
	s.stats.GoodRequests++
	s.stats.GoodCharged += c.total
	s.stats.GoodUsedTokens += c.prompt + perChoice*c.n
	s.mu.Unlock()
}

// sleep waits d ± jitter on the clock, or until the client goes away.
func (s *Server) sleep(x *exchange, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if j := s.cfg.LatencyJitter; j > 0 {
		s.mu.Lock()
		f := 1 + j*(2*s.rng.Float64()-1)
		s.mu.Unlock()
		d = time.Duration(float64(d) * f)
	}
	return s.clk.Sleep(x.r.Context(), d)
}

// setRetryAfter writes retry-after (seconds, rounded up, at least 1) and,
// in "ms" mode, retry-after-ms.
func (s *Server) setRetryAfter(h http.Header, rej *rejection) {
	if rej.wait <= 0 || s.cfg.RetryAfter == RetryAfterNone {
		return
	}
	sec := int64(math.Ceil(rej.wait.Seconds()))
	if sec < 1 {
		sec = 1
	}
	hset(h, "retry-after", strconv.FormatInt(sec, 10))
	if s.cfg.RetryAfter == RetryAfterMS {
		hset(h, "retry-after-ms", strconv.FormatInt(int64(math.Ceil(float64(rej.wait)/float64(time.Millisecond))), 10))
	}
}

// quotaMessage is the message of a 429 insufficient_quota-type error
// (wire-formats.md §1.4; help.openai.com/en/articles/6614457).
func quotaMessage(code string) string {
	switch code {
	case "credit_balance_exhausted":
		return "You have no credits remaining. Please add credits to your account to continue using the API: https://platform.openai.com/settings/organization/billing."
	case "organization_spend_limit_exceeded":
		return "Your organization has reached its monthly spend limit. Raise the limit in your organization's billing settings to continue."
	case "project_spend_limit_exceeded":
		return "This project has reached its monthly spend limit. Raise the project's budget to continue."
	case "organization_usage_limit_exceeded":
		return "Your organization has reached its monthly usage limit for its usage tier."
	case "billing_hard_limit_reached":
		return "Billing hard limit has been reached."
	case "billing_not_active":
		return "Your account is not active, please check your billing details on our website."
	}
	return "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
}

// contextMessage is OpenAI's context_length_exceeded message (§1.5).
func contextMessage(endpoint string, window int64, c charge) string {
	if c.budget == 0 {
		return fmt.Sprintf("This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.", window, c.prompt)
	}
	return fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
		window, c.prompt+c.budget, c.prompt, c.budget)
}

// httpErr is an error answer: status and envelope.
type httpErr struct {
	status int
	body   errorBody
}

func herr(status int, typ, param, code, msg string) *httpErr {
	return &httpErr{status, newError(typ, param, code, msg)}
}

// check validates a request body for endpoint and model m (known) as the
// API does, and counts it: 400 for missing or malformed fields, 404 for a
// model that does not serve the endpoint, 400 context_length_exceeded and
// 400 for an output budget over the model's maximum.
func (s *Server) check(endpoint, model string, m *models.Model, raw []byte, body map[string]json.RawMessage) (charge, *httpErr) {
	if e := validateBody(endpoint, model, m, body); e != nil {
		return charge{}, e
	}
	c := s.account(endpoint, raw, body)
	if s.cfg.ChargeRule == ChargeRuleChars && endpoint != "/v1/embeddings" {
		// The rate-limits guide's wording: the maximum of max_tokens and an
		// estimate from the request's characters (here ceil(bytes/4)).
		c.total = max(c.budget*c.n, (int64(len(raw))+3)/4)
	}
	if endpoint == "/v1/embeddings" {
		var in any
		_ = json.Unmarshal(body["input"], &in)
		if a, ok := in.([]any); ok && len(a) > 2048 {
			return c, herr(400, "invalid_request_error", "input", "", fmt.Sprintf("'$.input' is invalid: at most 2048 inputs may be sent in one request, got %d.", len(a)))
		}
		if _, single := in.(string); single && m.ContextWindow > 0 && c.prompt > m.ContextWindow {
			// The embeddings form of the message (2023 captures).
			return c, herr(400, "invalid_request_error", "input", "context_length_exceeded", fmt.Sprintf(
				"This model's maximum context length is %d tokens, however you requested %d tokens (%d in your prompt; 0 for the completion). Please reduce your prompt; or completion length.",
				m.ContextWindow, c.prompt, c.prompt))
		}
	}
	if m.ContextWindow > 0 && endpoint != "/v1/embeddings" && c.prompt+c.budget > m.ContextWindow {
		return c, herr(400, "invalid_request_error", "messages", "context_length_exceeded", contextMessage(endpoint, m.ContextWindow, c))
	}
	if m.MaxOutputTokens > 0 && c.set && c.budget > m.MaxOutputTokens {
		p := "max_tokens"
		for _, k := range []string{"max_completion_tokens", "max_output_tokens"} {
			if _, ok := body[k]; ok {
				p = k
			}
		}
		return c, herr(400, "invalid_request_error", p, "invalid_value", fmt.Sprintf(
			"%s is too large: %d. This model supports at most %d completion tokens, whereas you provided %d.", p, c.budget, m.MaxOutputTokens, c.budget))
	}
	return c, nil
}

// validateBody checks the endpoint's required fields as the API does.
func validateBody(endpoint, model string, m *models.Model, body map[string]json.RawMessage) *httpErr {
	embedding := m.Kind == "embedding"
	legacy := isCompletionModel(m)
	if e := validateParams(endpoint, body); e != nil {
		return e
	}
	switch endpoint {
	case "/v1/embeddings":
		if !embedding {
			return herr(400, "invalid_request_error", "model", "", fmt.Sprintf("The model `%s` does not support embeddings.", model))
		}
		raw, ok := body["input"]
		if !ok {
			return herr(400, "invalid_request_error", "input", "missing_required_parameter", "Missing required parameter: 'input'.")
		}
		if t := bytes.TrimSpace(raw); string(t) == `""` || string(t) == "[]" {
			return herr(400, "invalid_request_error", "input", "", "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
		}
		return nil
	case "/v1/chat/completions":
		if embedding || legacy {
			return herr(404, "invalid_request_error", "model", "", "This is not a chat model and thus not supported in the v1/chat/completions endpoint. Did you mean to use v1/completions?")
		}
		raw, ok := body["messages"]
		if !ok {
			return herr(400, "invalid_request_error", "messages", "missing_required_parameter", "Missing required parameter: 'messages'.")
		}
		var msgs []json.RawMessage
		if json.Unmarshal(raw, &msgs) != nil {
			return herr(400, "invalid_request_error", "messages", "invalid_type", "Invalid type for 'messages': expected an array of objects, but got a value instead.")
		}
		if len(msgs) == 0 {
			return herr(400, "invalid_request_error", "messages", "empty_array", "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.")
		}
		if m.Reasoning {
			if _, ok := body["max_tokens"]; ok {
				return herr(400, "invalid_request_error", "max_tokens", "unsupported_parameter", "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.")
			}
		}
	case "/v1/completions":
		if embedding {
			return herr(404, "invalid_request_error", "model", "", "This is not a completions model.")
		}
		if !legacy {
			// The mirror of the chat endpoint's message for a
			// non-chat model.
			return herr(404, "invalid_request_error", "model", "", "This is a chat model and not supported in the v1/completions endpoint. Did you mean to use v1/chat/completions?")
		}
		if _, ok := body["prompt"]; !ok {
			return herr(400, "invalid_request_error", "prompt", "missing_required_parameter", "Missing required parameter: 'prompt'.")
		}
	case "/v1/responses":
		if embedding || legacy {
			return herr(400, "invalid_request_error", "model", "", fmt.Sprintf("The model `%s` is not supported with the Responses API.", model))
		}
		// The spec's CreateResponse: max_output_tokens has minimum 16.
		if v, ok := intField(body, "max_output_tokens"); ok && v < 16 {
			return herr(400, "invalid_request_error", "max_output_tokens", "integer_below_min_value", fmt.Sprintf(
				"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got %d instead.", v))
		}
	}
	return nil
}

var words = []string{"This", " is", " a", " simulated", " reply", " from", " oairl", " sim", "."}

// text returns a deterministic text of about n tokens.
func text(n int64) string {
	var b strings.Builder
	for i := int64(0); i < n; i++ {
		b.WriteString(words[i%int64(len(words))])
	}
	return b.String()
}

// responseBody builds the 200 body of endpoint.
// id is the random part of the object id. It does not take s.mu.
func (s *Server) responseBody(model, id string, endpoint string, body map[string]json.RawMessage, c charge, perChoice int64, finish string) any {
	now := s.clk.Now().Unix()
	completion := perChoice * c.n
	switch endpoint {
	case "/v1/embeddings":
		return embeddingsBody(model, body, c.prompt)
	case "/v1/completions":
		choices := make([]map[string]any, c.n)
		for i := range choices {
			choices[i] = map[string]any{"text": text(perChoice), "index": i, "logprobs": nil, "finish_reason": finish}
		}
		return map[string]any{
			"id": "cmpl-" + id, "object": "text_completion", "created": now, "model": model,
			"choices": choices, "system_fingerprint": "fp_oairlsim",
			"usage": map[string]any{"prompt_tokens": c.prompt, "completion_tokens": completion, "total_tokens": c.prompt + completion},
		}
	case "/v1/responses":
		return s.responsesBody(model, body, c, perChoice, finish, "resp_"+strings.ToLower(id), now)
	}
	choices := make([]map[string]any, c.n)
	for i := range choices {
		choices[i] = map[string]any{
			"index":         i,
			"message":       map[string]any{"role": "assistant", "content": text(perChoice), "refusal": nil, "annotations": []any{}},
			"logprobs":      nil,
			"finish_reason": finish,
		}
	}
	return map[string]any{
		"id": "chatcmpl-" + id, "object": "chat.completion", "created": now, "model": model,
		"choices": choices, "service_tier": servedTier(body), "system_fingerprint": "fp_oairlsim",
		"usage": chatUsage(c.prompt, completion),
	}
}

// servedTier is the service_tier an answer reports: the processing mode
// actually used (OpenAPI spec, ServiceTier: "the response body will
// include the service_tier value based on the processing mode actually
// used"). The simulator serves what was asked: "flex" as flex (a flex miss
// is answered 429 before this, Config.FlexUnavailable), "priority" and
// "fast" as priority (the spec: fast shows as priority), "scale" as scale;
// "auto", "default" or none as the project's default, "default".
func servedTier(body map[string]json.RawMessage) string {
	switch t := strField(body, "service_tier"); t {
	case "flex", "priority", "scale":
		return t
	case "fast":
		return "priority"
	}
	return "default"
}

func chatUsage(prompt, completion int64) map[string]any {
	return map[string]any{
		"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
		"prompt_tokens_details": map[string]any{"cached_tokens": 0, "audio_tokens": 0},
		"completion_tokens_details": map[string]any{"reasoning_tokens": 0, "audio_tokens": 0,
			"accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
	}
}

func (s *Server) responsesBody(model string, body map[string]json.RawMessage, c charge, perChoice int64, finish, id string, now int64) map[string]any {
	status := "completed"
	var incomplete any
	if finish == "length" {
		status = "incomplete"
		incomplete = map[string]any{"reason": "max_output_tokens"}
	}
	echo := func(k string, def any) any {
		if raw, ok := body[k]; ok {
			var v any
			if json.Unmarshal(raw, &v) == nil {
				return v
			}
		}
		return def
	}
	return map[string]any{
		"id": id, "object": "response", "created_at": now, "status": status, "model": model,
		"error": nil, "incomplete_details": incomplete,
		"instructions":         echo("instructions", nil),
		"max_output_tokens":    echo("max_output_tokens", nil),
		"metadata":             echo("metadata", map[string]any{}),
		"parallel_tool_calls":  echo("parallel_tool_calls", true),
		"previous_response_id": echo("previous_response_id", nil),
		"temperature":          echo("temperature", 1.0),
		"top_p":                echo("top_p", 1.0),
		"tool_choice":          echo("tool_choice", "auto"),
		"tools":                echo("tools", []any{}),
		"text":                 echo("text", map[string]any{"format": map[string]any{"type": "text"}}),
		"truncation":           echo("truncation", "disabled"),
		"reasoning":            map[string]any{"effort": nil, "summary": nil},
		"store":                echo("store", true),
		"service_tier":         servedTier(body),
		"output": []any{map[string]any{
			"type": "message", "id": "msg_" + id[5:], "status": "completed", "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": text(perChoice), "annotations": []any{}, "logprobs": []any{}}},
		}},
		"usage": map[string]any{
			"input_tokens": c.prompt, "input_tokens_details": map[string]any{"cached_tokens": 0, "cache_write_tokens": 0},
			"output_tokens": perChoice, "output_tokens_details": map[string]any{"reasoning_tokens": 0},
			"total_tokens": c.prompt + perChoice,
		},
	}
}

// embeddingsBody returns deterministic unit vectors, one per input.
func embeddingsBody(model string, body map[string]json.RawMessage, prompt int64) any {
	var in any
	_ = json.Unmarshal(body["input"], &in)
	n := 1
	if a, ok := in.([]any); ok && len(a) > 0 {
		if _, nested := a[0].([]any); nested {
			n = len(a)
		} else if _, str := a[0].(string); str {
			n = len(a)
		}
	}
	dims := int64(1536)
	if strings.Contains(model, "3-large") {
		dims = 3072
	}
	if d, ok := intField(body, "dimensions"); ok && d > 0 && d < dims {
		dims = d
	}
	b64 := strField(body, "encoding_format") == "base64"
	data := make([]map[string]any, n)
	for i := range data {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%d", model, i)
		seed := h.Sum64()
		vec := make([]float32, dims)
		var norm float64
		for j := range vec {
			seed = seed*6364136223846793005 + 1442695040888963407
			vec[j] = float32(int64(seed>>33)%2000-1000) / 1000
			norm += float64(vec[j]) * float64(vec[j])
		}
		norm = math.Sqrt(norm)
		for j := range vec {
			vec[j] = float32(float64(vec[j]) / norm)
		}
		var emb any = vec
		if b64 {
			buf := make([]byte, 4*len(vec))
			for j, f := range vec {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(buf)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
	}
	return map[string]any{"object": "list", "data": data, "model": model,
		"usage": map[string]any{"prompt_tokens": prompt, "total_tokens": prompt}}
}

// stream writes a streamed answer as server-sent events ending in
// "data: [DONE]" (chat and completions chunks; Responses API events).
func (s *Server) stream(x *exchange, endpoint string, body map[string]json.RawMessage, c charge, perChoice int64, finish string) {
	w := x.w
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	if err := s.sleep(x, s.cfg.Latency); err != nil {
		x.status = 499
		return
	}
	x.setProcessingMS()
	x.status = 200
	w.WriteHeader(200)
	fl, _ := w.(http.Flusher)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
	now := s.clk.Now().Unix()
	s.mu.Lock()
	id := s.alnumID(29)
	s.mu.Unlock()
	var includeUsage bool
	var so struct {
		IncludeUsage bool `json:"include_usage"`
	}
	if json.Unmarshal(body["stream_options"], &so) == nil {
		includeUsage = so.IncludeUsage
	}
	if endpoint == "/v1/responses" {
		full := s.responsesBody(x.model, body, c, perChoice, finish, "resp_"+strings.ToLower(id), now)
		start := copyMap(full)
		start["status"], start["output"] = "in_progress", []any{}
		delete(start, "usage")
		seq := 0
		ev := func(typ string, kv ...any) {
			m := map[string]any{"type": typ, "sequence_number": seq}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			seq++
			b, _ := json.Marshal(m)
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, b)
			if fl != nil {
				fl.Flush()
			}
		}
		ev("response.created", "response", start)
		for i := int64(0); i < perChoice; i++ {
			_ = s.sleep(x, s.cfg.LatencyPerToken)
			ev("response.output_text.delta", "item_id", "msg_"+strings.ToLower(id), "output_index", 0, "content_index", 0, "delta", words[i%int64(len(words))], "logprobs", []any{})
		}
		ev("response.completed", "response", full)
		return
	}
	obj := "chat.completion.chunk"
	if endpoint == "/v1/completions" {
		obj = "text_completion"
	}
	chunk := func(choices []map[string]any, usage any) map[string]any {
		m := map[string]any{"id": "chatcmpl-" + id, "object": obj, "created": now, "model": x.model,
			"system_fingerprint": "fp_oairlsim", "choices": choices}
		if endpoint == "/v1/completions" {
			m["id"] = "cmpl-" + id
		} else {
			m["service_tier"] = servedTier(body)
		}
		if includeUsage {
			m["usage"] = usage
		}
		return m
	}
	for ci := int64(0); ci < c.n; ci++ {
		if endpoint == "/v1/chat/completions" {
			send(chunk([]map[string]any{{"index": ci, "delta": map[string]any{"role": "assistant", "content": "", "refusal": nil}, "logprobs": nil, "finish_reason": nil}}, nil))
		}
	}
	for i := int64(0); i < perChoice; i++ {
		_ = s.sleep(x, s.cfg.LatencyPerToken)
		for ci := int64(0); ci < c.n; ci++ {
			word := words[i%int64(len(words))]
			if endpoint == "/v1/completions" {
				send(chunk([]map[string]any{{"index": ci, "text": word, "logprobs": nil, "finish_reason": nil}}, nil))
			} else {
				send(chunk([]map[string]any{{"index": ci, "delta": map[string]any{"content": word}, "logprobs": nil, "finish_reason": nil}}, nil))
			}
		}
	}
	for ci := int64(0); ci < c.n; ci++ {
		if endpoint == "/v1/completions" {
			send(chunk([]map[string]any{{"index": ci, "text": "", "logprobs": nil, "finish_reason": finish}}, nil))
		} else {
			send(chunk([]map[string]any{{"index": ci, "delta": map[string]any{}, "logprobs": nil, "finish_reason": finish}}, nil))
		}
	}
	if includeUsage {
		send(chunk([]map[string]any{}, chatUsage(c.prompt, perChoice*c.n)))
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

// listModels serves GET /v1/models.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	var data []any
	for _, id := range s.modelIDs() {
		data = append(data, modelObject(id))
	}
	x.json(200, map[string]any{"object": "list", "data": data})
}

// getModel serves GET /v1/models/{id}.
func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	id := r.PathValue("id")
	if s.lookup(id).Model == nil {
		x.error(404, "invalid_request_error", "model", "model_not_found", fmt.Sprintf("The model '%s' does not exist", id))
		return
	}
	x.json(200, modelObject(id))
}

func modelObject(id string) map[string]any {
	return map[string]any{"id": id, "object": "model", "created": 1700000000, "owned_by": "system"}
}

// jsonKind names a JSON value's type as OpenAI's invalid_type messages do
// ("a string", "a decimal number", "an integer", "a boolean", ...).
func jsonKind(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	if bytes.ContainsAny(t, ".eE") {
		return "a decimal number"
	}
	return "an integer"
}

// validateParams checks the common scalar parameters of chat, completions
// and embeddings requests against the spec's schemas (openai-openapi
// f85dbe2): max_tokens ≥ 1 on chat (≥ 0 on the legacy completions, whose
// schema says minimum 0), max_completion_tokens ≥ 1, n in 1..128,
// temperature in 0..2, stream a boolean, dimensions ≥ 1. null means unset.
// Errors use the API's 400 invalid_request_error forms: code invalid_type
// ("Invalid type for 'n': expected an integer, but got a string
// instead."), integer_below_min_value / integer_above_max_value ("Invalid
// 'max_tokens': integer below minimum value. Expected a value >= 1, but got
// 0 instead.") and decimal_below_min_value / decimal_above_max_value.
func validateParams(endpoint string, body map[string]json.RawMessage) *httpErr {
	if endpoint == "/v1/responses" {
		return nil // validated in validateBody (max_output_tokens ≥ 16)
	}
	typeErr := func(k, want string, raw json.RawMessage) *httpErr {
		return herr(400, "invalid_request_error", k, "invalid_type", fmt.Sprintf(
			"Invalid type for '%s': expected %s, but got %s instead.", k, want, jsonKind(raw)))
	}
	intParam := func(k string, lo, hi int64) *httpErr {
		raw, ok := body[k]
		if !ok || jsonKind(raw) == "null" {
			return nil
		}
		if jsonKind(raw) != "an integer" {
			return typeErr(k, "an integer", raw)
		}
		v, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
		if err != nil {
			return typeErr(k, "an integer", raw)
		}
		if v < lo {
			return herr(400, "invalid_request_error", k, "integer_below_min_value", fmt.Sprintf(
				"Invalid '%s': integer below minimum value. Expected a value >= %d, but got %d instead.", k, lo, v))
		}
		if hi > 0 && v > hi {
			return herr(400, "invalid_request_error", k, "integer_above_max_value", fmt.Sprintf(
				"Invalid '%s': integer above maximum value. Expected a value <= %d, but got %d instead.", k, hi, v))
		}
		return nil
	}
	minTokens := int64(1)
	if endpoint == "/v1/completions" {
		minTokens = 0
	}
	for _, e := range []*httpErr{
		intParam("max_tokens", minTokens, 0),
		intParam("max_completion_tokens", 1, 0),
		intParam("n", 1, 128),
		intParam("dimensions", 1, 0),
	} {
		if e != nil {
			return e
		}
	}
	if raw, ok := body["temperature"]; ok && jsonKind(raw) != "null" {
		k := jsonKind(raw)
		if k != "an integer" && k != "a decimal number" {
			return typeErr("temperature", "a decimal", raw)
		}
		var v float64
		_ = json.Unmarshal(raw, &v)
		switch {
		case v < 0:
			return herr(400, "invalid_request_error", "temperature", "decimal_below_min_value", fmt.Sprintf(
				"Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got %s instead.", bytes.TrimSpace(raw)))
		case v > 2:
			return herr(400, "invalid_request_error", "temperature", "decimal_above_max_value", fmt.Sprintf(
				"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got %s instead.", bytes.TrimSpace(raw)))
		}
	}
	if raw, ok := body["stream"]; ok && jsonKind(raw) != "null" && jsonKind(raw) != "a boolean" {
		return typeErr("stream", "a boolean", raw)
	}
	return nil
}

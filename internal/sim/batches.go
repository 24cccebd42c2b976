package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Batch API facts (shared/spec/NOTES.md §2, wire-formats.md §1.6): the
// endpoints a batch may target, completion_window "24h" only, ≤ 50,000
// requests and ≤ 200 MB per input file, ≤ 16 metadata pairs.
var batchEndpoints = map[string]bool{
	"/v1/responses": true, "/v1/chat/completions": true, "/v1/embeddings": true, "/v1/completions": true,
	"/v1/moderations": true, "/v1/images/generations": true, "/v1/images/edits": true, "/v1/videos": true,
}

const maxBatchLines = 50000

// Batch statuses (OpenAPI Batch.status).
const (
	StatusValidating = "validating"
	StatusFailed     = "failed"
	StatusInProgress = "in_progress"
	StatusFinalizing = "finalizing"
	StatusCompleted  = "completed"
	StatusExpired    = "expired"
	StatusCancelling = "cancelling"
	StatusCancelled  = "cancelled"
)

func terminal(status string) bool {
	switch status {
	case StatusFailed, StatusCompleted, StatusExpired, StatusCancelled:
		return true
	}
	return false
}

// batchError is one entry of Batch.errors.data.
type batchError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int    `json:"line"`
}

// batchLine is one valid input line.
type batchLine struct {
	customID string
	body     []byte
	charge   charge
	fail     bool     // chosen to fail (BatchFailRate)
	herr     *httpErr // the request's own error (400/404), if any
}

// batch is one batch's state.
type batch struct {
	ID, Endpoint, InputFileID, Window, Status, Model string
	Metadata                                         map[string]string
	hasMetadata                                      bool
	Created, ExpiresAt                               time.Time
	InProgressAt, FinalizingAt, CompletedAt          time.Time
	FailedAt, ExpiredAt, CancellingAt, CancelledAt   time.Time
	Errors                                           []batchError
	lines                                            []batchLine
	order                                            []int // processing order (a permutation)
	done                                             int   // lines of order processed
	tokens                                           int64 // enqueued tokens: Σ prompt + budget × n
	outputFileID, errorFileID                        string
	inTok, outTok                                    int64
	validation                                       []batchError // found at create, reported at end of validating
}

// phase durations of a batch, from Config.BatchDuration.
func (s *Server) phases() (validate, run, finalize time.Duration) {
	d := s.cfg.BatchDuration
	return d / 10, d * 8 / 10, d - d/10 - d*8/10
}

// nextEvent is when b next changes state by itself.
func (s *Server) nextEvent(b *batch) (time.Time, bool) {
	v, run, fin := s.phases()
	var t time.Time
	switch b.Status {
	case StatusValidating:
		t = b.Created.Add(v)
	case StatusInProgress:
		t = b.InProgressAt.Add(run)
	case StatusFinalizing:
		t = b.FinalizingAt.Add(fin)
	case StatusCancelling:
		return b.CancellingAt.Add(s.cfg.BatchCancelDelay), true
	default:
		return t, false
	}
	if b.ExpiresAt.Before(t) {
		t = b.ExpiresAt
	}
	return t, true
}

// advanceBatches applies every batch event due by now, in time order (the
// enqueued-token check depends on the other batches' states). s.mu held.
func (s *Server) advanceBatches(now time.Time) {
	for {
		var best *batch
		var bt time.Time
		for _, id := range s.batchIDs {
			b := s.batches[id]
			if t, ok := s.nextEvent(b); ok && !t.After(now) && (best == nil || t.Before(bt)) {
				best, bt = b, t
			}
		}
		if best == nil {
			break
		}
		s.step(best, bt)
	}
	for _, id := range s.batchIDs {
		if b := s.batches[id]; b.Status == StatusInProgress {
			s.progress(b, now)
		}
	}
}

// enqueued reports whether o's tokens count against the enqueued-token
// limit when b is checked: every unfinished batch does (in_progress,
// finalizing, and validating ones created before b). wire-formats.md §1.6
// says the limit "counts all in-progress batches"; a finalizing or
// validating batch has not finished either, so counting it is the reading
// chosen here. Later-created validating batches are checked after b in
// time order.
func enqueued(o, b *batch) bool {
	switch o.Status {
	case StatusInProgress, StatusFinalizing:
		return true
	case StatusValidating:
		return o.Created.Before(b.Created)
	}
	return false
}

// step applies b's event at t.
func (s *Server) step(b *batch, t time.Time) {
	if !b.ExpiresAt.After(t) && (b.Status == StatusValidating || b.Status == StatusInProgress || b.Status == StatusFinalizing) {
		s.expire(b, t)
		return
	}
	switch b.Status {
	case StatusValidating:
		if len(b.validation) > 0 {
			b.Status, b.FailedAt, b.Errors = StatusFailed, t, b.validation
			return
		}
		if lim, ok := s.Limits(b.Model); ok && lim.BatchQueueTokens > 0 {
			var queued int64
			for _, id := range s.batchIDs {
				o := s.batches[id]
				if o != b && o.Model == b.Model && enqueued(o, b) {
					queued += o.tokens
				}
			}
			if queued+b.tokens > lim.BatchQueueTokens {
				b.Status, b.FailedAt = StatusFailed, t
				b.Errors = []batchError{{Code: "token_limit_exceeded", Message: fmt.Sprintf(
					"Enqueued token limit reached for %s in organization %s. Limit: %s enqueued tokens. Please try again once some in_progress batches have been completed.",
					b.Model, s.cfg.Organization, commas(lim.BatchQueueTokens))}}
				return
			}
		}
		b.Status, b.InProgressAt = StatusInProgress, t
	case StatusInProgress:
		s.progressTo(b, len(b.order))
		b.Status, b.FinalizingAt = StatusFinalizing, t
	case StatusFinalizing:
		s.writeResults(b, "", "")
		b.Status, b.CompletedAt = StatusCompleted, t
	case StatusCancelling:
		if b.InProgressAt.IsZero() {
			b.done = 0 // cancelled while validating: nothing ran
		}
		s.writeResults(b, "batch_cancelled", "This request was not executed because the batch was cancelled.")
		b.Status, b.CancelledAt = StatusCancelled, t
	}
}

// expire ends b at t with partial output.
func (s *Server) expire(b *batch, t time.Time) {
	if b.Status == StatusInProgress {
		s.progress(b, t)
	}
	s.writeResults(b, "batch_expired", "This request could not be executed before the completion window expired.")
	b.Status, b.ExpiredAt = StatusExpired, t
}

// progress marks the lines an in_progress batch has processed by t
// (linearly over the in_progress phase).
func (s *Server) progress(b *batch, t time.Time) {
	_, run, _ := s.phases()
	f := float64(t.Sub(b.InProgressAt)) / float64(run)
	n := int(f * float64(len(b.order)))
	s.progressTo(b, n)
}

func (s *Server) progressTo(b *batch, n int) {
	if n > len(b.order) {
		n = len(b.order)
	}
	if n > b.done {
		b.done = n
	}
}

// counts returns request_counts.
func (b *batch) counts() (total, completed, failed int) {
	total = len(b.lines)
	for _, i := range b.order[:b.done] {
		if b.lines[i].fail || b.lines[i].herr != nil {
			failed++
		} else {
			completed++
		}
	}
	if b.Status == StatusExpired || b.Status == StatusCancelled {
		failed += total - b.done
	}
	return
}

// writeResults creates the output and error files: processed lines in
// processing order (shuffled), unprocessed ones as errors with code
// notRunCode when it is set.
func (s *Server) writeResults(b *batch, notRunCode, notRunMsg string) {
	var out, errs bytes.Buffer
	now := s.clk.Now().Unix()
	for k, i := range b.order {
		l := b.lines[i]
		rec := map[string]any{"id": "batch_req_" + s.hex(32), "custom_id": l.customID, "error": nil}
		switch {
		case k >= b.done:
			if notRunCode == "" {
				continue
			}
			rec["response"] = nil
			rec["error"] = map[string]any{"code": notRunCode, "message": notRunMsg}
			writeLine(&errs, rec)
		case l.herr != nil:
			rec["response"] = map[string]any{"status_code": l.herr.status, "request_id": "req_" + s.hex(32), "body": l.herr.body}
			writeLine(&errs, rec)
		case l.fail:
			rec["response"] = map[string]any{"status_code": 500, "request_id": "req_" + s.hex(32),
				"body": newError("server_error", "", "", "The server had an error while processing your request. Sorry about that!")}
			writeLine(&errs, rec)
		default:
			var body map[string]json.RawMessage
			_ = json.Unmarshal(l.body, &body)
			per := s.cfg.OutputTokens
			if l.charge.budget > 0 && l.charge.budget < per {
				per = l.charge.budget
			}
			finish := "stop"
			if l.charge.set && l.charge.budget <= s.cfg.OutputTokens {
				finish = "length"
			}
			if b.Endpoint == "/v1/embeddings" {
				per = 0
			}
			resp := s.responseBody(b.Model, s.alnumID(29), b.Endpoint, body, l.charge, per, finish)
			if m, ok := resp.(map[string]any); ok {
				if _, has := m["created"]; has {
					m["created"] = now
				}
			}
			rec["response"] = map[string]any{"status_code": 200, "request_id": "req_" + s.hex(32), "body": resp}
			b.inTok += l.charge.prompt
			b.outTok += per * l.charge.n
			writeLine(&out, rec)
		}
	}
	if out.Len() > 0 {
		b.outputFileID = s.addFile(b.ID+"_output.jsonl", "batch_output", out.Bytes(), s.clk.Now()).ID
	}
	if errs.Len() > 0 {
		b.errorFileID = s.addFile(b.ID+"_error.jsonl", "batch_output", errs.Bytes(), s.clk.Now()).ID
	}
}

func writeLine(buf *bytes.Buffer, v any) {
	line, _ := json.Marshal(v)
	buf.Write(line)
	buf.WriteByte('\n')
}

// commas formats n with thousands separators ("2,000,000"), as OpenAI's
// enqueued-token message does.
func commas(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func unixOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}

func (b *batch) object() map[string]any {
	total, completed, failed := b.counts()
	m := map[string]any{
		"id": b.ID, "object": "batch", "endpoint": b.Endpoint, "input_file_id": b.InputFileID,
		"completion_window": b.Window, "status": b.Status, "created_at": b.Created.Unix(),
		"output_file_id": nil, "error_file_id": nil, "errors": nil, "model": nil, "metadata": nil,
		"in_progress_at": unixOrNil(b.InProgressAt), "expires_at": b.ExpiresAt.Unix(),
		"finalizing_at": unixOrNil(b.FinalizingAt), "completed_at": unixOrNil(b.CompletedAt),
		"failed_at": unixOrNil(b.FailedAt), "expired_at": unixOrNil(b.ExpiredAt),
		"cancelling_at": unixOrNil(b.CancellingAt), "cancelled_at": unixOrNil(b.CancelledAt),
		"request_counts": map[string]any{"total": total, "completed": completed, "failed": failed},
		"usage": map[string]any{
			"input_tokens": b.inTok, "input_tokens_details": map[string]any{"cached_tokens": 0},
			"output_tokens": b.outTok, "output_tokens_details": map[string]any{"reasoning_tokens": 0},
			"total_tokens": b.inTok + b.outTok,
		},
	}
	if b.Status == StatusValidating || b.Status == StatusFailed {
		// Counts are only known once validation has passed.
		m["request_counts"] = map[string]any{"total": 0, "completed": 0, "failed": 0}
	}
	if b.outputFileID != "" {
		m["output_file_id"] = b.outputFileID
	}
	if b.errorFileID != "" {
		m["error_file_id"] = b.errorFileID
	}
	if len(b.Errors) > 0 {
		m["errors"] = map[string]any{"object": "list", "data": b.Errors}
	}
	if b.Model != "" {
		m["model"] = b.Model
	}
	if b.hasMetadata {
		m["metadata"] = b.Metadata
	}
	return m
}

// createBatch serves POST /v1/batches.
func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	var req struct {
		InputFileID      string          `json:"input_file_id"`
		Endpoint         string          `json:"endpoint"`
		CompletionWindow string          `json:"completion_window"`
		Metadata         json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(x.body, &req); err != nil {
		x.error(400, "invalid_request_error", "", "", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")
		return
	}
	for _, f := range []struct{ name, v string }{{"input_file_id", req.InputFileID}, {"endpoint", req.Endpoint}, {"completion_window", req.CompletionWindow}} {
		if f.v == "" {
			x.error(400, "invalid_request_error", f.name, "missing_required_parameter", fmt.Sprintf("Missing required parameter: '%s'.", f.name))
			return
		}
	}
	if !batchEndpoints[req.Endpoint] {
		x.error(400, "invalid_request_error", "endpoint", "invalid_value", fmt.Sprintf("Invalid value for 'endpoint': '%s'. Supported values are: '/v1/responses', '/v1/chat/completions', '/v1/embeddings', '/v1/completions', '/v1/moderations', '/v1/images/generations', '/v1/images/edits' and '/v1/videos'.", req.Endpoint))
		return
	}
	if req.CompletionWindow != "24h" {
		x.error(400, "invalid_request_error", "completion_window", "invalid_value", fmt.Sprintf("Invalid value for 'completion_window': '%s'. Supported values are: '24h'.", req.CompletionWindow))
		return
	}
	var meta map[string]string
	hasMeta := len(req.Metadata) > 0 && string(req.Metadata) != "null"
	if hasMeta {
		if err := json.Unmarshal(req.Metadata, &meta); err != nil {
			x.error(400, "invalid_request_error", "metadata", "invalid_type", "Invalid type for 'metadata': expected an object with string values.")
			return
		}
		if len(meta) > 16 {
			x.error(400, "invalid_request_error", "metadata", "object_above_max_properties", fmt.Sprintf("Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with %d properties instead.", len(meta)))
			return
		}
		for k, v := range meta {
			if len(k) > 64 || len(v) > 512 {
				x.error(400, "invalid_request_error", "metadata", "invalid_value", "Invalid 'metadata': keys may be at most 64 characters and values at most 512 characters.")
				return
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[req.InputFileID]
	if f == nil {
		x.error(400, "invalid_request_error", "input_file_id", "invalid_value", fmt.Sprintf("Invalid 'input_file_id': '%s'. File does not exist.", req.InputFileID))
		return
	}
	if f.Purpose != "batch" {
		x.error(400, "invalid_request_error", "input_file_id", "invalid_value", fmt.Sprintf("Invalid 'input_file_id': '%s'. The file must have purpose 'batch', not '%s'.", f.ID, f.Purpose))
		return
	}
	now := s.clk.Now()
	b := &batch{
		ID: "batch_" + s.hex(32), Endpoint: req.Endpoint, InputFileID: f.ID, Window: req.CompletionWindow,
		Status: StatusValidating, Metadata: meta, hasMetadata: hasMeta, Created: now,
		ExpiresAt: now.Add(s.cfg.BatchCompletionWindow),
	}
	if len(f.Content) > maxBatchFileBytes {
		var first struct {
			Body struct {
				Model string `json:"model"`
			} `json:"body"`
		}
		line, _, _ := bytes.Cut(f.Content, []byte("\n"))
		_ = json.Unmarshal(line, &first)
		x.error(400, "invalid_request_error", "input_file_id", "", fmt.Sprintf("The batch input file is larger than the %d maximum for the %s model", maxBatchFileBytes, first.Body.Model))
		return
	}
	s.parseBatchInput(b, f.Content)
	s.batches[b.ID] = b
	s.batchIDs = append(s.batchIDs, b.ID)
	x.json(200, b.object())
}

// parseBatchInput validates the input file as the Batch API does and keeps
// its lines. Error codes are the documented ones (invalid_json_line,
// duplicate_custom_id, url_mismatch, model_mismatch, empty_file,
// too_many_tasks; stdapi-ai/stdapi.ai#240), with line numbers (1-based,
// physical lines). Blank lines are skipped. s.mu held.
func (s *Server) parseBatchInput(b *batch, content []byte) {
	var errs []batchError
	add := func(code, param, msg string, line int) {
		if len(errs) < 1000 {
			e := batchError{Code: code, Message: msg, Param: strOrNil(param)}
			if line > 0 {
				l := line
				e.Line = &l
			}
			errs = append(errs, e)
		}
	}
	seen := map[string]int{}
	lineNo := 0
	for len(content) > 0 {
		var line []byte
		if i := bytes.IndexByte(content, '\n'); i >= 0 {
			line, content = content[:i], content[i+1:]
		} else {
			line, content = content, nil
		}
		lineNo++
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var env struct {
			CustomID *string        `json:"custom_id"`
			Method   string         `json:"method"`
			URL      string         `json:"url"`
			Body     map[string]any `json:"body"`
		}
		var probe any
		if json.Unmarshal(line, &probe) != nil {
			add("invalid_json_line", "", "This line is not parseable as valid JSON.", lineNo)
			continue
		}
		if _, ok := probe.(map[string]any); !ok {
			add("invalid_json_line", "", "This line is not a JSON object.", lineNo)
			continue
		}
		if err := json.Unmarshal(line, &env); err != nil {
			add("invalid_request", "", fmt.Sprintf("This line has a field of the wrong type: %v.", err), lineNo)
			continue
		}
		if env.CustomID == nil || *env.CustomID == "" {
			add("missing_required_parameter", "custom_id", "Missing required parameter: 'custom_id'.", lineNo)
			continue
		}
		cid := *env.CustomID
		if first, dup := seen[cid]; dup {
			add("duplicate_custom_id", "custom_id", fmt.Sprintf("The custom_id '%s' is already used on line %d; custom_id must be unique within a batch.", cid, first), lineNo)
			continue
		}
		seen[cid] = lineNo
		if env.Method != "POST" {
			add("invalid_request", "method", fmt.Sprintf("Invalid value for 'method': '%s'. Only 'POST' is supported.", env.Method), lineNo)
			continue
		}
		if env.URL != b.Endpoint {
			add("url_mismatch", "url", fmt.Sprintf("The url '%s' on this line does not match the batch endpoint '%s'.", env.URL, b.Endpoint), lineNo)
			continue
		}
		if env.Body == nil {
			add("missing_required_parameter", "body", "Missing required parameter: 'body'.", lineNo)
			continue
		}
		model, _ := env.Body["model"].(string)
		if model == "" {
			add("missing_required_parameter", "body.model", "Missing required parameter: 'body.model'.", lineNo)
			continue
		}
		if b.Model == "" {
			b.Model = model
		} else if model != b.Model {
			add("model_mismatch", "body.model", fmt.Sprintf("The model '%s' on this line differs from '%s' used earlier in the file; a batch may use only one model.", model, b.Model), lineNo)
			continue
		}
		if s.lookup(model).Model == nil {
			add("model_not_found", "body.model", fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", model), lineNo)
			continue
		}
		if stream, _ := env.Body["stream"].(bool); stream {
			add("invalid_request", "body.stream", "Streaming is not supported by the Batch API.", lineNo)
			continue
		}
		raw, _ := json.Marshal(env.Body)
		var body map[string]json.RawMessage
		_ = json.Unmarshal(raw, &body)
		m := s.lookup(model).Model
		c, he := s.check(b.Endpoint, model, m, raw, body)
		if c.total == 0 {
			c = s.account(b.Endpoint, raw, body)
		}
		l := batchLine{customID: cid, body: raw, charge: c, herr: he}
		if he == nil && s.cfg.BatchFailRate > 0 && s.rng.Float64() < s.cfg.BatchFailRate {
			l.fail = true
		}
		b.lines = append(b.lines, l)
		b.tokens += c.total
	}
	if len(b.lines) == 0 && len(errs) == 0 {
		add("empty_file", "", "The input file is empty.", 0)
	}
	if n := len(b.lines) + len(errs); n > maxBatchLines {
		errs = append([]batchError{{Code: "too_many_tasks", Message: fmt.Sprintf("The batch input file has %d requests; the maximum is 50,000 per batch.", n)}}, errs...)
	}
	b.validation = errs
	b.order = s.rng.Perm(len(b.lines))
}

// getBatch serves GET /v1/batches/{id}.
func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceBatches(s.clk.Now())
	b := s.batches[r.PathValue("id")]
	if b == nil {
		x.error(404, "invalid_request_error", "", "", fmt.Sprintf("No batch found with id '%s'.", r.PathValue("id")))
		return
	}
	x.json(200, b.object())
}

// cancelBatch serves POST /v1/batches/{id}/cancel.
func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clk.Now()
	s.advanceBatches(now)
	b := s.batches[r.PathValue("id")]
	if b == nil {
		x.error(404, "invalid_request_error", "", "", fmt.Sprintf("No batch found with id '%s'.", r.PathValue("id")))
		return
	}
	switch b.Status {
	case StatusValidating, StatusInProgress, StatusFinalizing:
		b.Status, b.CancellingAt = StatusCancelling, now
	case StatusCancelling:
	default:
		x.error(409, "invalid_request_error", "", "", fmt.Sprintf("Cannot cancel a batch with status '%s'.", b.Status))
		return
	}
	x.json(200, b.object())
}

// listBatches serves GET /v1/batches (after, limit 1..100 default 20),
// newest first.
func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	q := r.URL.Query()
	limit, he := parseLimit(q.Get("limit"), 20, 100)
	if he != nil {
		x.json(he.status, he.body)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceBatches(s.clk.Now())
	ids := append([]string(nil), s.batchIDs...)
	reverse(ids)
	page, more := paginate(ids, q.Get("after"), limit, true)
	data := make([]any, 0, len(page))
	for _, id := range page {
		data = append(data, s.batches[id].object())
	}
	x.json(200, listObject(data, page, more))
}

// ExpireBatch makes batch id expire now (partial output, batch_expired
// errors for the lines not yet processed), as if its completion window had
// ended. It fails for an unknown or already terminal batch.
func (s *Server) ExpireBatch(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clk.Now()
	s.advanceBatches(now)
	b := s.batches[id]
	if b == nil {
		return fmt.Errorf("no batch %q", id)
	}
	if terminal(b.Status) || b.Status == StatusCancelling {
		return fmt.Errorf("batch %s is already %s", id, b.Status)
	}
	s.expire(b, now)
	return nil
}

// BatchInfo is a test's view of a batch.
type BatchInfo struct {
	ID, Status, Model  string
	Total, Done        int   // lines, lines processed
	EnqueuedTokens     int64 // Σ prompt + output budget × n over valid lines
	OutputFileID       string
	ErrorFileID        string
	Metadata           map[string]string
	ErrorCodes         []string
	Created, ExpiresAt time.Time
}

// Batches returns every batch, oldest first, advanced to the current time.
func (s *Server) Batches() []BatchInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceBatches(s.clk.Now())
	var out []BatchInfo
	for _, id := range s.batchIDs {
		b := s.batches[id]
		bi := BatchInfo{ID: b.ID, Status: b.Status, Model: b.Model, Total: len(b.lines), Done: b.done,
			EnqueuedTokens: b.tokens, OutputFileID: b.outputFileID, ErrorFileID: b.errorFileID,
			Metadata: b.Metadata, Created: b.Created, ExpiresAt: b.ExpiresAt}
		for _, e := range b.Errors {
			bi.ErrorCodes = append(bi.ErrorCodes, e.Code)
		}
		out = append(out, bi)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// FileContent returns a stored file's bytes (nil, false when unknown).
func (s *Server) FileContent(id string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[id]
	if f == nil {
		return nil, false
	}
	return f.Content, true
}

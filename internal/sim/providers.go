package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// writeRejection answers a 429 decided by the limiter, in the configured
// provider's shape: OpenAI's envelope; Azure's {"error":{"code":"429",
// "message":…}} with retry-after-ms; Groq's 413 for a request larger than
// the TPM limit (case B33a).
func (s *Server) writeRejection(x *exchange, rej *rejection) {
	x.limit = rej.limit
	s.setRetryAfter(x.w.Header(), rej)
	switch {
	case s.cfg.Like == LikeAzure:
		x.json(429, map[string]any{"error": map[string]any{"code": "429", "message": rej.message}})
	case s.cfg.Like == LikeGroq && rej.limit == LimitTooLarge:
		x.json(413, map[string]any{"error": map[string]any{"message": rej.message, "type": rej.errType, "code": rej.code}})
	default:
		x.error(429, rej.errType, "", rej.code, rej.message)
	}
}

// flexMiss reports whether a service_tier "flex" request is refused for
// lack of capacity (Config.FlexUnavailable).
func (s *Server) flexMiss(body map[string]json.RawMessage) bool {
	if s.cfg.FlexUnavailable <= 0 || strField(body, "service_tier") != "flex" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < s.cfg.FlexUnavailable
}

// azureInference serves Azure OpenAI's deployment paths
// (/openai/deployments/{deployment}/chat/completions?api-version=V): the
// deployment names the model (the body's "model" is replaced by it) and an
// api-version is required, as on Azure (learn.microsoft.com, Azure OpenAI
// REST reference).
func (s *Server) azureInference(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("api-version") == "" {
		x := s.begin(w, r)
		x.json(404, map[string]any{"error": map[string]any{"code": "404", "message": "Resource not found"}})
		s.finish(x)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 512<<20))
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) == nil && m != nil {
		dep, _ := json.Marshal(r.PathValue("deployment"))
		m["model"] = dep
		body, _ = json.Marshal(m)
	}
	// The path stays Azure's (recorded as sent); the endpoint served is
	// the OpenAI one it maps to.
	r2 := r.Clone(context.WithValue(r.Context(), endpointKey{}, "/v1/"+r.PathValue("rest")))
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	s.inference(w, r2)
}

// projectRateLimits serves the Admin API's GET
// /v1/organization/projects/{project_id}/rate_limits (spec
// ProjectRateLimitListResponse): one project.rate_limit per registry model
// with limits under the configuration, capped by ProjectTPM, paginated by
// limit (default 100) and after. It needs an admin key ("sk-admin-…"):
// another key gets 401, another project 404.
func (s *Server) projectRateLimits(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !strings.HasPrefix(strings.TrimSpace(key), "sk-admin-") {
		x.error(401, "invalid_request_error", "", "invalid_api_key",
			"This endpoint requires an admin API key (sk-admin-…); project and user keys cannot read organization settings.")
		return
	}
	if pid := r.PathValue("project_id"); pid != s.cfg.Project {
		x.json(404, map[string]any{"error": map[string]any{"message": fmt.Sprintf("The project %s was not found", pid),
			"type": "invalid_request_error", "param": nil, "code": nil}})
		return
	}
	type rateLimit struct {
		Object        string `json:"object"`
		ID            string `json:"id"`
		Model         string `json:"model"`
		RPM           int64  `json:"max_requests_per_1_minute"`
		TPM           int64  `json:"max_tokens_per_1_minute"`
		RPD           int64  `json:"max_requests_per_1_day,omitempty"`
		BatchDayInput int64  `json:"batch_1_day_max_input_tokens,omitempty"`
	}
	var all []rateLimit
	for _, m := range s.reg.Models() {
		l := limitsFor(s.cfg, m)
		if g := s.reg.Group(m.ID); g != nil {
			l = groupLimitsFor(s.cfg, g.ID)
		}
		if s.cfg.ProjectTPM > 0 && (l.TPM == 0 || s.cfg.ProjectTPM < l.TPM) {
			l.TPM = s.cfg.ProjectTPM
		}
		if l.RPM == 0 && l.TPM == 0 {
			continue
		}
		all = append(all, rateLimit{Object: "project.rate_limit", ID: "rl-" + m.ID, Model: m.ID, RPM: l.RPM, TPM: l.TPM,
			RPD: l.RPD, BatchDayInput: l.BatchQueueTokens})
	}
	limit := 100
	if v, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && v > 0 && v <= 100 {
		limit = v
	}
	start := 0
	if after := r.URL.Query().Get("after"); after != "" {
		start = slices.IndexFunc(all, func(rl rateLimit) bool { return rl.ID == after }) + 1
	}
	page := all[start:min(len(all), start+limit)]
	resp := map[string]any{"object": "list", "data": page, "has_more": start+limit < len(all), "first_id": nil, "last_id": nil}
	if len(page) > 0 {
		resp["first_id"], resp["last_id"] = page[0].ID, page[len(page)-1].ID
	}
	x.json(200, resp)
}

// endpointKey carries the OpenAI endpoint an Azure deployment path maps to.
type endpointKey struct{}

// Package limits reads an organization project's real rate limits from the
// OpenAI Admin API, GET /v1/organization/projects/{project_id}/rate_limits
// (spec: ProjectRateLimitListResponse, paginated with limit and after), for
// `oairl limits pull`. The call needs an admin key; the caller builds the
// client with it and never stores it (the result holds no key).
package limits

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/models"
)

// Getter is the part of api.Client Pull needs.
type Getter interface {
	Get(ctx context.Context, path string) (*api.Response, error)
	BaseURL() string
}

// maxPages bounds the pagination (100 models a page).
const maxPages = 100

// Pull reads every rate limit of project, page by page, and returns them
// stamped with now. An HTTP error is returned with its status and the
// error message of the body (a 401/403 means the key is not an admin key).
func Pull(ctx context.Context, c Getter, project string, now time.Time) (*models.Pulled, error) {
	if project == "" {
		return nil, fmt.Errorf("no project: give --project or set OPENAI_PROJECT_ID")
	}
	base := "/v1/organization/projects/" + url.PathEscape(project) + "/rate_limits"
	p := &models.Pulled{Source: "OpenAI Admin API GET " + base, BaseURL: c.BaseURL(), ProjectID: project, PulledAt: now.UTC()}
	after := ""
	for page := 0; page < maxPages; page++ {
		path := base + "?limit=100"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		resp, err := c.Get(ctx, path)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != 200 {
			return nil, &HTTPError{Status: resp.StatusCode, Message: errorMessage(resp.Body)}
		}
		var list struct {
			Data    []models.PulledModel `json:"data"`
			HasMore bool                 `json:"has_more"`
			LastID  *string              `json:"last_id"`
		}
		if err := json.Unmarshal(resp.Body, &list); err != nil {
			return nil, fmt.Errorf("rate_limits answer is not the Admin API's list: %w", err)
		}
		p.Models = append(p.Models, list.Data...)
		if !list.HasMore || list.LastID == nil || *list.LastID == "" || *list.LastID == after {
			return p, nil
		}
		after = *list.LastID
	}
	return nil, fmt.Errorf("rate_limits: more than %d pages", maxPages)
}

// HTTPError is a non-200 answer of the Admin API.
type HTTPError struct {
	Status  int
	Message string
}

func (e *HTTPError) Error() string {
	hint := ""
	if e.Status == 401 || e.Status == 403 {
		hint = " (the endpoint needs an admin key in OPENAI_ADMIN_KEY: platform.openai.com/settings/organization/admin-keys)"
	}
	return fmt.Sprintf("admin API answered HTTP %d: %s%s", e.Status, strings.TrimSpace(e.Message), hint)
}

func errorMessage(b []byte) string {
	var env struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &env) == nil {
		if env.Error != nil && env.Error.Message != "" {
			return env.Error.Message
		}
		if env.Message != "" {
			return env.Message
		}
	}
	s := string(b)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

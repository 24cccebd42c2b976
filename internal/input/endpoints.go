package input

import (
	"net/url"
	"strings"
)

// Endpoint is one URL a Batch API input line may target.
type Endpoint struct {
	// Path is the relative URL exactly as a line must write it.
	Path string
	// Counted is true when the tokens package counts bodies for it; lines
	// for the others are validated (envelope, custom_id) but not counted.
	Counted bool
}

// Endpoints is THE table of Batch API endpoints, shared by count, run and
// batch. Source: the CreateBatchRequest.endpoint enum of OpenAI's OpenAPI
// spec (shared/spec/openai-openapi.yaml, see shared/spec/NOTES.md §2) and
// openai-python src/openai/types/batch_create_params.py v3.3.1. The first
// five are counted; images and videos are accepted but not counted.
var Endpoints = []Endpoint{
	{Path: "/v1/chat/completions", Counted: true},
	{Path: "/v1/responses", Counted: true},
	{Path: "/v1/embeddings", Counted: true},
	{Path: "/v1/completions", Counted: true},
	{Path: "/v1/moderations", Counted: true},
	{Path: "/v1/images/generations"},
	{Path: "/v1/images/edits"},
	{Path: "/v1/videos"},
}

// LookupEndpoint returns the table entry whose Path equals path exactly.
func LookupEndpoint(path string) (Endpoint, bool) {
	for _, e := range Endpoints {
		if e.Path == path {
			return e, true
		}
	}
	return Endpoint{}, false
}

// endpointList is "/v1/chat/completions, /v1/responses, ..." for messages.
func endpointList() string {
	var s []string
	for _, e := range Endpoints {
		s = append(s, e.Path)
	}
	return strings.Join(s, ", ")
}

// urlCheck is the verdict on a line's url: the endpoint it names (exact
// match), or a problem and, when the intent is clear, the endpoint meant.
type urlCheck struct {
	endpoint string // exact table path, "" when the url is wrong
	meant    string // the endpoint the url probably meant ("" if unclear)
	code     string
	message  string
}

// checkURL validates a line's url against Endpoints.
func checkURL(u string) urlCheck {
	if e, ok := LookupEndpoint(u); ok {
		return urlCheck{endpoint: e.Path}
	}
	if strings.Contains(u, "://") || strings.HasPrefix(u, "//") {
		example := "/v1/chat/completions"
		meant := ""
		if pu, err := url.Parse(strings.TrimSpace(u)); err == nil {
			if m := guessEndpoint(pu.Path); m != "" {
				example, meant = m, m
			}
		}
		return urlCheck{meant: meant, code: "url_absolute",
			message: `url must be a path such as "` + example + `", not an absolute URL`}
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		meant := guessEndpoint(u[:i])
		msg := `url ` + quote(u) + ` must not carry a query string or fragment`
		if meant != "" {
			msg += `; use ` + quote(meant)
		}
		return urlCheck{meant: meant, code: "url_query", message: msg}
	}
	meant := guessEndpoint(u)
	trimmed := strings.TrimSpace(u)
	if meant != "" && "/v1"+trimmed == meant {
		return urlCheck{meant: meant, code: "url_missing_v1",
			message: `url ` + quote(u) + ` must be ` + quote(meant) + ` (did you mean it?)`}
	}
	if meant != "" {
		return urlCheck{meant: meant, code: "url_not_batch_endpoint",
			message: `url ` + quote(u) + ` is not a Batch endpoint; did you mean ` + quote(meant) + `?`}
	}
	return urlCheck{code: "url_not_batch_endpoint",
		message: `url ` + quote(u) + ` is not a Batch endpoint; supported: ` + endpointList()}
}

// guessEndpoint maps a near-miss path ("chat/completions", "/v1/chat/completions/",
// " /V1/Embeddings") to the table entry it most likely meant, or "".
func guessEndpoint(p string) string {
	p = strings.ToLower(strings.TrimSpace(p))
	p = strings.TrimRight(p, "/")
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.HasPrefix(p, "/v1/") {
		p = "/v1" + p
	}
	if e, ok := LookupEndpoint(p); ok {
		return e.Path
	}
	return ""
}

// Package api is oairl's OpenAI HTTP client: a go-openai client for the
// typed endpoints (Files, Batches, Models), and a raw sender that posts a
// request body exactly as written (so fields go-openai does not know still
// reach the API) and returns status, headers and body for the diagnose
// classifier. Both are built from one injected *http.Client and base URL.
package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	openai "github.com/sashabaranov/go-openai"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/httpx"
	"github.com/oairl/oairl/internal/provider"
	"github.com/oairl/oairl/internal/redact"
)

// Options configure a Client.
type Options struct {
	BaseURL    string // e.g. https://api.openai.com/v1 (no trailing slash)
	APIKey     string
	OrgID      string // sent as OpenAI-Organization when set
	ProjectID  string // sent as OpenAI-Project when set
	HTTPClient *http.Client
	UserAgent  string
	// Provider says how the server authenticates and where requests go
	// (internal/provider); the zero value is OpenAI's (Bearer key, paths
	// under the base URL).
	Provider provider.Provider
	// APIVersion is Azure's api-version query parameter ("" = the
	// provider's default).
	APIVersion string
}

// Client talks to one API base URL with one key. Safe for concurrent use.
type Client struct {
	opts   Options
	OpenAI *openai.Client // typed endpoints (files, batches)
}

// New returns a Client. A nil HTTPClient means http.DefaultClient.
func New(o Options) *Client {
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	cfg := openai.DefaultConfig(o.APIKey)
	cfg.BaseURL = o.BaseURL
	cfg.OrgID = o.OrgID
	cfg.HTTPClient = &projectDoer{c: o.HTTPClient, project: o.ProjectID}
	return &Client{opts: o, OpenAI: openai.NewClientWithConfig(cfg)}
}

// projectDoer adds the OpenAI-Project header, which go-openai does not send.
type projectDoer struct {
	c       *http.Client
	project string
}

func (d *projectDoer) Do(r *http.Request) (*http.Response, error) {
	if d.project != "" {
		r.Header.Set("OpenAI-Project", d.project)
	}
	return d.c.Do(r)
}

// BaseURL returns the base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.opts.BaseURL }

// Response is a raw API answer: status, headers and the whole body (the
// diagnose classifier's input type).
type Response = diagnose.Response

// URLFor joins the base URL and a Batch-style path such as
// "/v1/chat/completions": a base URL that already ends in /v1 is not
// doubled.
func (c *Client) URLFor(path string) string {
	base := c.opts.BaseURL
	if strings.HasSuffix(base, "/v1") && strings.HasPrefix(path, "/v1/") {
		path = strings.TrimPrefix(path, "/v1")
	}
	return base + path
}

// Provider returns the provider the client talks to.
func (c *Client) Provider() provider.Provider { return c.opts.Provider }

// Post sends body, unchanged, to path (e.g. "/v1/chat/completions") with
// the standard headers, and returns the whole response. It is sent once:
// the HTTP layer does not retry it (httpx.WithoutRetry), because its
// callers (run's and proxy's send cycle, diagnose's probe) decide retries
// themselves with the limiter in view. A transport error
// (connection refused, reset, timeout) is returned as err with the key
// redacted; HTTP error statuses are not errors.
func (c *Client) Post(ctx context.Context, path string, body []byte) (*Response, error) {
	// The provider decides the URL: Azure puts the body's model in the path
	// as the deployment, with an api-version.
	req, err := http.NewRequestWithContext(httpx.WithoutRetry(ctx), http.MethodPost, c.opts.Provider.URL(c.opts.BaseURL, path, body, c.opts.APIVersion), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	c.setHeaders(req)
	return c.do(req)
}

// Get sends a GET to path and returns the whole response (retried by the
// HTTP layer like every GET).
func (c *Client) Get(ctx context.Context, path string) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URLFor(path), nil)
	if err != nil {
		return nil, err
	}
	c.setHeaders(req)
	return c.do(req)
}

func (c *Client) setHeaders(req *http.Request) {
	c.opts.Provider.SetAuth(req.Header, c.opts.APIKey)
	if c.opts.OrgID != "" {
		req.Header.Set("OpenAI-Organization", c.opts.OrgID)
	}
	if c.opts.ProjectID != "" {
		req.Header.Set("OpenAI-Project", c.opts.ProjectID)
	}
	if c.opts.UserAgent != "" {
		req.Header.Set("User-Agent", c.opts.UserAgent)
	}
}

func (c *Client) do(req *http.Request) (*Response, error) {
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, c.Redact(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, c.Redact(fmt.Errorf("reading response: %w", err))
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Redact returns err with the API key removed from its message (the
// original stays reachable through errors.Unwrap for errors.Is/As).
func (c *Client) Redact(err error) error {
	if err == nil {
		return nil
	}
	msg := redact.String(err.Error(), c.opts.APIKey)
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Error is an API error answer kept whole: the status, headers and body of
// the last error answer, with the library's error (go-openai's *APIError or
// *RequestError, reachable with errors.As) as Err. Call returns it, so the
// diagnose classifier sees the headers (retry-after, x-ratelimit-*) that
// go-openai's own errors drop.
type Error struct {
	StatusCode int
	Header     http.Header
	Body       []byte
	// Attempts is how many attempts the HTTP layer made (retries + 1).
	Attempts int
	Err      error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Call runs fn, a go-openai call made with the context it is given, and
// on failure returns its error as an *Error holding the last error answer
// the HTTP layer saw (status 0 when there was none: a connection error).
// The error message has the key redacted.
func (c *Client) Call(ctx context.Context, fn func(ctx context.Context) error) error {
	cctx, ex := httpx.WithExchange(ctx)
	err := fn(cctx)
	if err == nil {
		return nil
	}
	status, h, body := ex.Response()
	if _, _, _, _, isAPI := APIError(err); !isAPI {
		// A transport or local error: an earlier error answer is not the
		// cause, so it is not attached.
		status, h, body = 0, nil, nil
	}
	return &Error{StatusCode: status, Header: h, Body: body, Attempts: ex.Attempts(), Err: c.Redact(err)}
}

// APIError extracts go-openai's *openai.APIError or *openai.RequestError
// from err: status code, and the error envelope's code/type/message.
func APIError(err error) (status int, code, typ, message string, ok bool) {
	var ae *openai.APIError
	if errors.As(err, &ae) {
		if s, isStr := ae.Code.(string); isStr {
			code = s
		} else if ae.Code != nil {
			code = fmt.Sprint(ae.Code)
		}
		return ae.HTTPStatusCode, code, ae.Type, ae.Message, true
	}
	var re *openai.RequestError
	if errors.As(err, &re) {
		return re.HTTPStatusCode, "", "", string(re.Body), true
	}
	return 0, "", "", "", false
}

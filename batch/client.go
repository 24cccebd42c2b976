package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/httpx"
)

// Batch is the part of an OpenAI Batch object oairl uses. Null and empty
// file ids both read as "" (case B13: go-openai's *string turns an
// "error_file_id": "" into a non-nil pointer to "", which must not lead to
// a request for /files//content).
type Batch struct {
	ID           string
	Endpoint     string
	Status       string
	InputFileID  string
	OutputFileID string
	ErrorFileID  string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	// StatusSince is when the batch entered its current status (the
	// matching *_at field: created_at for validating, in_progress_at,
	// finalizing_at, ...); zero when the API gave none.
	StatusSince   time.Time
	RequestCounts RequestCounts
	Errors        []BatchError
	Metadata      map[string]string
}

// File is an uploaded file.
type File struct {
	ID       string
	Name     string
	Bytes    int64
	Purpose  string
	Created  time.Time
	Filename string
}

// BatchPage is one page of GET /batches.
type BatchPage struct {
	Data    []Batch
	LastID  string
	HasMore bool
}

// Client is the slice of the OpenAI API the batch workflow needs: the
// Files and Batches endpoints. OpenAIClient implements it with go-openai;
// tests may fake it.
type Client interface {
	// UploadFile uploads the local file at path with purpose "batch",
	// under the name name.
	UploadFile(ctx context.Context, path, name string) (File, error)
	// ListFiles lists the organization's files (for crash recovery).
	ListFiles(ctx context.Context) ([]File, error)
	// DeleteFile deletes an uploaded file (best-effort cleanup).
	DeleteFile(ctx context.Context, id string) error
	// CreateBatch creates a batch (completion window 24h).
	CreateBatch(ctx context.Context, fileID, endpoint string, metadata map[string]string) (Batch, error)
	GetBatch(ctx context.Context, id string) (Batch, error)
	CancelBatch(ctx context.Context, id string) (Batch, error)
	// ListBatches returns one page of batches, newest first; after is the
	// cursor ("" for the first page), limit 1–100.
	ListBatches(ctx context.Context, after string, limit int) (BatchPage, error)
	// FileContent streams a file's content; the caller closes it.
	FileContent(ctx context.Context, id string) (io.ReadCloser, error)
}

// OpenAIClient implements Client with go-openai (api.Client.OpenAI), over
// oairl's one HTTP layer (internal/httpx): GETs and cancels are retried
// there on 408/409/429/5xx and connection errors; uploads and batch
// creation only on answers that prove nothing was created (408, 409, 429),
// the engine's metadata checks covering the rest. Errors are *api.Error,
// holding the last error answer whole (status, headers, body) for Classify.
type OpenAIClient struct {
	C   *openai.Client
	api *api.Client
}

// NewOpenAIClient wraps an api.Client.
func NewOpenAIClient(c *api.Client) *OpenAIClient { return &OpenAIClient{C: c.OpenAI, api: c} }

// call runs one go-openai call, keeping its error answer whole.
func (c *OpenAIClient) call(ctx context.Context, fn func(ctx context.Context) error) error {
	if c.api == nil {
		return fn(ctx)
	}
	return c.api.Call(ctx, fn)
}

// UploadFile uploads path with purpose "batch" as the multipart file
// name (its base name: the API stores the name as sent, and a rerun after
// a crash finds the upload by it; go-openai's CreateFile sent the whole
// local path and buffered the file in memory). The file is streamed from
// disk (api.Client.Upload).
func (c *OpenAIClient) UploadFile(ctx context.Context, path, name string) (File, error) {
	name = filepath.Base(name)
	if c.api == nil {
		// No api.Client (a bare go-openai client): buffered upload.
		b, err := os.ReadFile(path)
		if err != nil {
			return File{}, err
		}
		f, err := c.C.CreateFileBytes(ctx, openai.FileBytesRequest{Name: name, Bytes: b, Purpose: openai.PurposeBatch})
		if err != nil {
			return File{}, err
		}
		return fromOpenAIFile(f), nil
	}
	cctx, ex := httpx.WithExchange(ctx)
	resp, err := c.api.Upload(cctx, "/files", [][2]string{{"purpose", string(openai.PurposeBatch)}}, name, path)
	if err != nil {
		return File{}, &api.Error{Attempts: ex.Attempts(), Err: c.api.Redact(err)}
	}
	if resp.StatusCode/100 != 2 {
		return File{}, &api.Error{StatusCode: resp.StatusCode, Header: resp.Header, Body: resp.Body, Attempts: ex.Attempts(), Err: openAIError(resp)}
	}
	var f openai.File
	if err := json.Unmarshal(resp.Body, &f); err != nil || f.ID == "" {
		return File{}, fmt.Errorf("uploading %s: the answer is not a File object (status %d): %.200s", name, resp.StatusCode, resp.Body)
	}
	return fromOpenAIFile(f), nil
}

// openAIError is go-openai's error for an error answer (its *APIError from
// the error envelope, else a *RequestError), so api.APIError reads it.
func openAIError(resp *api.Response) error {
	var env openai.ErrorResponse
	if json.Unmarshal(resp.Body, &env) == nil && env.Error != nil {
		env.Error.HTTPStatusCode = resp.StatusCode
		return env.Error
	}
	return &openai.RequestError{HTTPStatus: http.StatusText(resp.StatusCode), HTTPStatusCode: resp.StatusCode,
		Err: fmt.Errorf("status %d", resp.StatusCode), Body: resp.Body}
}

// DeleteFile deletes file id (DELETE /files/{id}).
func (c *OpenAIClient) DeleteFile(ctx context.Context, id string) error {
	return c.call(ctx, func(ctx context.Context) error { return c.C.DeleteFile(ctx, id) })
}

func fromOpenAIFile(f openai.File) File {
	return File{ID: f.ID, Name: f.FileName, Filename: f.FileName, Bytes: int64(f.Bytes), Purpose: f.Purpose, Created: time.Unix(f.CreatedAt, 0).UTC()}
}

// ListFiles lists files with go-openai's ListFiles.
func (c *OpenAIClient) ListFiles(ctx context.Context) ([]File, error) {
	var l openai.FilesList
	err := c.call(ctx, func(ctx context.Context) (err error) {
		l, err = c.C.ListFiles(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]File, 0, len(l.Files))
	for _, f := range l.Files {
		out = append(out, fromOpenAIFile(f))
	}
	return out, nil
}

// CreateBatch creates a batch with go-openai's CreateBatch.
func (c *OpenAIClient) CreateBatch(ctx context.Context, fileID, endpoint string, metadata map[string]string) (Batch, error) {
	md := map[string]any{}
	for k, v := range metadata {
		md[k] = v
	}
	var b openai.BatchResponse
	err := c.call(ctx, func(ctx context.Context) (err error) {
		b, err = c.C.CreateBatch(ctx, openai.CreateBatchRequest{
			InputFileID: fileID, Endpoint: openai.BatchEndpoint(endpoint), CompletionWindow: CompletionWindow, Metadata: md,
		})
		return err
	})
	if err != nil {
		return Batch{}, err
	}
	return fromOpenAIBatch(b.Batch), nil
}

// GetBatch retrieves a batch.
func (c *OpenAIClient) GetBatch(ctx context.Context, id string) (Batch, error) {
	var b openai.BatchResponse
	err := c.call(ctx, func(ctx context.Context) (err error) {
		b, err = c.C.RetrieveBatch(ctx, id)
		return err
	})
	if err != nil {
		return Batch{}, err
	}
	return fromOpenAIBatch(b.Batch), nil
}

// CancelBatch cancels a batch. Cancelling twice is cancelling once, so the
// POST is retried like a GET (httpx.Idempotent).
func (c *OpenAIClient) CancelBatch(ctx context.Context, id string) (Batch, error) {
	var b openai.BatchResponse
	err := c.call(httpx.Idempotent(ctx), func(ctx context.Context) (err error) {
		b, err = c.C.CancelBatch(ctx, id)
		return err
	})
	if err != nil {
		return Batch{}, err
	}
	return fromOpenAIBatch(b.Batch), nil
}

// ListBatches lists one page of batches.
func (c *OpenAIClient) ListBatches(ctx context.Context, after string, limit int) (BatchPage, error) {
	var ap *string
	if after != "" {
		ap = &after
	}
	var lp *int
	if limit > 0 {
		lp = &limit
	}
	var l openai.ListBatchResponse
	err := c.call(ctx, func(ctx context.Context) (err error) {
		l, err = c.C.ListBatch(ctx, ap, lp)
		return err
	})
	if err != nil {
		return BatchPage{}, err
	}
	p := BatchPage{LastID: l.LastID, HasMore: l.HasMore}
	for _, b := range l.Data {
		p.Data = append(p.Data, fromOpenAIBatch(b))
	}
	if p.LastID == "" && len(p.Data) > 0 {
		p.LastID = p.Data[len(p.Data)-1].ID
	}
	return p, nil
}

// FileContent streams a file's content.
func (c *OpenAIClient) FileContent(ctx context.Context, id string) (io.ReadCloser, error) {
	if id == "" {
		return nil, errors.New("empty file id")
	}
	var r openai.RawResponse
	err := c.call(ctx, func(ctx context.Context) (err error) {
		r, err = c.C.GetFileContent(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r.ReadCloser, nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func unixTime(p *int) time.Time {
	if p == nil || *p == 0 {
		return time.Time{}
	}
	return time.Unix(int64(*p), 0).UTC()
}

func fromOpenAIBatch(b openai.Batch) Batch {
	out := Batch{
		ID: b.ID, Endpoint: string(b.Endpoint), Status: b.Status, InputFileID: b.InputFileID,
		OutputFileID: str(b.OutputFileID), ErrorFileID: str(b.ErrorFileID),
		ExpiresAt: unixTime(b.ExpiresAt),
		RequestCounts: RequestCounts{
			Total: b.RequestCounts.Total, Completed: b.RequestCounts.Completed, Failed: b.RequestCounts.Failed,
		},
	}
	if b.CreatedAt != 0 {
		out.CreatedAt = time.Unix(int64(b.CreatedAt), 0).UTC()
	}
	switch b.Status {
	case StatusValidating:
		out.StatusSince = out.CreatedAt
	case StatusInProgress:
		out.StatusSince = unixTime(b.InProgressAt)
	case StatusFinalizing:
		out.StatusSince = unixTime(b.FinalizingAt)
	case StatusCompleted:
		out.StatusSince = unixTime(b.CompletedAt)
	case StatusFailed:
		out.StatusSince = unixTime(b.FailedAt)
	case StatusExpired:
		out.StatusSince = unixTime(b.ExpiredAt)
	case StatusCancelling:
		out.StatusSince = unixTime(b.CancellingAt)
	case StatusCancelled:
		out.StatusSince = unixTime(b.CancelledAt)
	}
	if b.Errors != nil {
		for _, e := range b.Errors.Data {
			out.Errors = append(out.Errors, BatchError{Code: e.Code, Message: e.Message, Line: e.Line})
		}
	}
	if len(b.Metadata) > 0 {
		out.Metadata = map[string]string{}
		for k, v := range b.Metadata {
			if s, ok := v.(string); ok {
				out.Metadata[k] = s
			} else {
				out.Metadata[k] = fmt.Sprint(v)
			}
		}
	}
	return out
}

// Classify diagnoses an API error with the diagnose classifier: an
// *api.Error (what OpenAIClient returns) gives the whole answer, headers
// included; go-openai's bare *APIError / *RequestError give the status and
// error envelope; any other error (connection refused, reset, timeout) is a
// network error, classified by diagnose.ClassifyTransportError.
func Classify(err error, now time.Time) diagnose.Finding {
	var whole *api.Error
	if errors.As(err, &whole) && whole.StatusCode > 0 {
		return diagnose.Classify(whole.StatusCode, whole.Header, whole.Body, now)
	}
	status, code, typ, msg, ok := api.APIError(err)
	if !ok || status == 0 {
		var re *openai.RequestError
		if errors.As(err, &re) && len(re.Body) > 0 {
			return diagnose.Classify(re.HTTPStatusCode, http.Header{}, re.Body, now)
		}
		return diagnose.ClassifyTransportError(err)
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": nullable(code)}})
	var re *openai.RequestError
	if errors.As(err, &re) && len(re.Body) > 0 {
		body = re.Body
	}
	return diagnose.Classify(status, http.Header{}, body, now)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// APIErr wraps an API error with the exit code its diagnosis implies
// (auth 4, quota 5, batch queue full 6, else 1), keeping the message.
func APIErr(what string, err error, now time.Time) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return exitcode.New(exitcode.Interrupted, fmt.Errorf("%s: interrupted", what))
	}
	var ee *exitcode.Error
	if errors.As(err, &ee) {
		return err
	}
	f := Classify(err, now)
	code := f.ExitCode()
	if f.Verdict == diagnose.BatchQueueFull {
		code = exitcode.RateLimited
	}
	return exitcode.New(code, fmt.Errorf("%s: %w", what, err))
}

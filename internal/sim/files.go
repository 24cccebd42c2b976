package sim

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Files API limits (shared/spec/NOTES.md §1): 512 MB per file; Batch input
// ≤ 200 MB (209,715,200 bytes) and .jsonl only; purpose=batch files expire
// after 30 days by default.
const (
	maxFileBytes      = 512 << 20
	maxBatchFileBytes = 200 << 20
	batchFileExpiry   = 30 * 24 * time.Hour
)

var filePurposes = map[string]bool{"assistants": true, "batch": true, "fine-tune": true, "vision": true, "user_data": true, "evals": true}

// file is a stored file.
type file struct {
	ID        string
	Filename  string
	Purpose   string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	Content   []byte
}

func (f *file) object() map[string]any {
	m := map[string]any{
		"id": f.ID, "object": "file", "bytes": len(f.Content), "created_at": f.CreatedAt.Unix(),
		"filename": f.Filename, "purpose": f.Purpose, "status": "processed", "status_details": nil, "expires_at": nil,
	}
	if !f.ExpiresAt.IsZero() {
		m["expires_at"] = f.ExpiresAt.Unix()
	}
	return m
}

// addFile stores content as a new file; s.mu held.
func (s *Server) addFile(name, purpose string, content []byte, now time.Time) *file {
	f := &file{ID: "file-" + s.alnumID(22), Filename: name, Purpose: purpose, CreatedAt: now, Content: content}
	if purpose == "batch" || purpose == "batch_output" {
		f.ExpiresAt = now.Add(batchFileExpiry)
	}
	s.files[f.ID] = f
	s.fileIDs = append(s.fileIDs, f.ID)
	return f
}

// createFile serves POST /v1/files (multipart: file, purpose).
func (s *Server) createFile(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFileBytes+1<<20)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		x.error(400, "invalid_request_error", "", "", fmt.Sprintf("Invalid multipart form: %v. Send file and purpose as multipart/form-data.", err))
		return
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	purpose := r.FormValue("purpose")
	if purpose == "" {
		x.error(400, "invalid_request_error", "purpose", "missing_required_parameter", "Missing required parameter: 'purpose'.")
		return
	}
	if !filePurposes[purpose] {
		x.error(400, "invalid_request_error", "purpose", "invalid_value", fmt.Sprintf("Invalid value for 'purpose': '%s'. Supported values are: 'assistants', 'batch', 'fine-tune', 'vision', 'user_data' and 'evals'.", purpose))
		return
	}
	fh, hdr, err := r.FormFile("file")
	if err != nil {
		x.error(400, "invalid_request_error", "file", "missing_required_parameter", "Missing required parameter: 'file'.")
		return
	}
	defer fh.Close()
	content, err := io.ReadAll(fh)
	if err != nil {
		x.error(400, "invalid_request_error", "file", "", fmt.Sprintf("Could not read the uploaded file: %v", err))
		return
	}
	if len(content) > maxFileBytes {
		x.error(400, "invalid_request_error", "file", "", fmt.Sprintf("File is too large: %d bytes; the maximum is %d bytes (512 MB).", len(content), maxFileBytes))
		return
	}
	// The name is kept as sent, directories included, as the API keeps
	// it (Go's FileHeader.Filename strips them, which hid a client that
	// sent its whole local path; issue 14 §5).
	name := hdr.Filename
	if _, params, err := mime.ParseMediaType(hdr.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		name = params["filename"]
	}
	if purpose == "batch" && !strings.HasSuffix(strings.ToLower(name), ".jsonl") {
		x.error(400, "invalid_request_error", "", "", "Invalid file format for Batch API. Must be .jsonl")
		return
	}
	s.mu.Lock()
	f := s.addFile(name, purpose, content, s.clk.Now())
	if v := r.FormValue("expires_after[seconds]"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 3600 && n <= 2592000 {
			f.ExpiresAt = f.CreatedAt.Add(time.Duration(n) * time.Second)
		}
	}
	obj := f.object()
	s.mu.Unlock()
	x.json(200, obj)
}

// lookupFile returns the live file id or writes a 404.
func (s *Server) lookupFile(x *exchange, id string) *file {
	s.mu.Lock()
	f := s.files[id]
	s.mu.Unlock()
	if f == nil {
		x.error(404, "invalid_request_error", "id", "", fmt.Sprintf("No such File object: %s", id))
	}
	return f
}

// getFile serves GET /v1/files/{id}.
func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	if f := s.lookupFile(x, r.PathValue("id")); f != nil {
		s.mu.Lock()
		obj := f.object()
		s.mu.Unlock()
		x.json(200, obj)
	}
}

// fileContent serves GET /v1/files/{id}/content: the raw bytes.
func (s *Server) fileContent(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	f := s.lookupFile(x, r.PathValue("id"))
	if f == nil {
		return
	}
	x.setProcessingMS()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(f.Content)))
	x.status = 200
	w.WriteHeader(200)
	_, _ = w.Write(f.Content)
}

// deleteFile serves DELETE /v1/files/{id}.
func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	id := r.PathValue("id")
	if f := s.lookupFile(x, id); f == nil {
		return
	}
	s.mu.Lock()
	delete(s.files, id)
	s.mu.Unlock()
	x.json(200, map[string]any{"id": id, "object": "file", "deleted": true})
}

// listFiles serves GET /v1/files (purpose, limit 1..10000 default 10000,
// order asc|desc default desc, after).
func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	x := s.begin(w, r)
	defer s.finish(x)
	if !s.gate(x) {
		return
	}
	q := r.URL.Query()
	limit, herr := parseLimit(q.Get("limit"), 10000, 10000)
	if herr != nil {
		x.json(herr.status, herr.body)
		return
	}
	order := q.Get("order")
	if order == "" {
		order = "desc"
	}
	if order != "asc" && order != "desc" {
		x.error(400, "invalid_request_error", "order", "invalid_value", fmt.Sprintf("Invalid value for 'order': '%s'. Supported values are: 'asc' and 'desc'.", order))
		return
	}
	purpose := q.Get("purpose")
	s.mu.Lock()
	var ids []string
	for _, id := range s.fileIDs {
		if f := s.files[id]; f != nil && (purpose == "" || f.Purpose == purpose) {
			ids = append(ids, id)
		}
	}
	if order == "desc" {
		reverse(ids)
	}
	page, more := paginate(ids, q.Get("after"), limit, false)
	data := make([]any, 0, len(page))
	for _, id := range page {
		data = append(data, s.files[id].object())
	}
	s.mu.Unlock()
	x.json(200, listObject(data, page, more))
}

func listObject(data []any, ids []string, more bool) map[string]any {
	m := map[string]any{"object": "list", "data": data, "has_more": more, "first_id": nil, "last_id": nil}
	if len(ids) > 0 {
		m["first_id"], m["last_id"] = ids[0], ids[len(ids)-1]
	}
	return m
}

func parseLimit(v string, def, max int) (int, *httpErr) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, herr(400, "invalid_request_error", "limit", "invalid_value", fmt.Sprintf("Invalid value for 'limit': %s. Expected an integer between 1 and %d.", v, max))
	}
	return n, nil
}

// paginate returns up to limit ids following after (the start when after is
// "") and whether more follow. An unknown after gives the first page when
// unknownEmpty is false (files: the cursor may be a deleted file) and an
// empty page otherwise (batches: a stale cursor must not restart the
// listing and loop; the real API's answer is not captured in
// wire-formats.md or the spec, so the empty page is a choice).
func paginate(ids []string, after string, limit int, unknownEmpty bool) ([]string, bool) {
	start := 0
	if after != "" {
		start = -1
		for i, id := range ids {
			if id == after {
				start = i + 1
				break
			}
		}
		if start < 0 {
			if unknownEmpty {
				return nil, false
			}
			start = 0
		}
	}
	rest := ids[start:]
	if len(rest) > limit {
		return rest[:limit], true
	}
	return rest, false
}

func reverse(s []string) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

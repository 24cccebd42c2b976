package api

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strings"
)

// Upload POSTs a multipart/form-data body to path under the base URL
// (go-openai's convention: "/files" → BASE/files): the form fields in
// order, then the file at localPath as the part "file" named filename.
// The name is sent exactly as given (pass a base name: the API stores it,
// and crash recovery finds uploads by it; go-openai's CreateFile sent the
// full local path). The file is streamed from disk with an exact
// Content-Length, never held in memory, and GetBody reopens it, so the
// HTTP layer may replay it on the answers that prove nothing was stored.
// Like Post, an HTTP error status is a Response, not an error.
func (c *Client) Upload(ctx context.Context, path string, fields [][2]string, filename, localPath string) (*Response, error) {
	st, err := os.Stat(localPath)
	if err != nil {
		return nil, err
	}
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+quoteEscaper.Replace(filename)+`"`)
	h.Set("Content-Type", "application/octet-stream")
	if _, err := mw.CreatePart(h); err != nil {
		return nil, err
	}
	pre := append([]byte(nil), head.Bytes()...)
	head.Reset()
	if err := mw.Close(); err != nil {
		return nil, err
	}
	post := append([]byte(nil), head.Bytes()...)
	open := func() (io.ReadCloser, error) {
		f, err := os.Open(localPath)
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(pre), io.LimitReader(f, st.Size()), bytes.NewReader(post)), f}, nil
	}
	body, err := open()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.opts.BaseURL, "/")+path, body)
	if err != nil {
		body.Close()
		return nil, err
	}
	req.ContentLength = int64(len(pre)) + st.Size() + int64(len(post))
	req.GetBody = open
	req.Header.Set("Content-Type", mw.FormDataContentType())
	c.setHeaders(req)
	return c.do(req)
}

// quoteEscaper escapes a multipart parameter value as mime/multipart does.
var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"")

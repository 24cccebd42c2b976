package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/send"
)

// maxErrorBody bounds how much of a non-2xx answer is read to classify it
// and hand it back (OpenAI's error envelopes are a few hundred bytes).
const maxErrorBody = 1 << 20

// hopHeaders are connection-level headers that a proxy must not forward
// (RFC 9110 §7.6.1), plus oairl's own.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"X-Oairl-Priority", "X-Oairl-Token",
}

// forwarder is the forward stage: one attempt of a model request. It
// sends the body byte for byte with the app's headers; a non-2xx answer
// is read whole (bounded) and returned for classification, nothing
// written to the app; a 2xx answer is committed to the app as soon as its
// first body bytes arrive (a failure before that is a transport error,
// retried) and then streamed chunk by chunk, flushed, never buffered
// whole.
type forwarder struct {
	rt http.RoundTripper
}

// attempt is one forward of in (whose body is body) to url, answering on w.
func (f *forwarder) attempt(ctx context.Context, w http.ResponseWriter, in *http.Request, url string, body []byte, hdr http.Header) (*send.Answer, error) {
	req, err := http.NewRequestWithContext(ctx, in.Method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = hdr.Clone()
	req.ContentLength = int64(len(body))
	resp, err := f.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return nil, err
		}
		return &send.Answer{Response: api.Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: b}}, nil
	}
	// Wait for the first bytes before committing: until then a dropped
	// connection can still be retried.
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	n, rerr := readSome(resp.Body, buf)
	if n == 0 && rerr != nil && rerr != io.EOF {
		return nil, rerr
	}
	ans := &send.Answer{Response: api.Response{StatusCode: resp.StatusCode, Header: resp.Header}, Delivered: true}
	copyHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	flush := resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	for {
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return ans, werr
			}
			if flush {
				_ = rc.Flush()
			}
		}
		if rerr == io.EOF {
			return ans, nil
		}
		if rerr != nil {
			return ans, rerr
		}
		n, rerr = resp.Body.Read(buf)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// readSome reads until it has at least one byte or an error.
func readSome(r io.Reader, buf []byte) (int, error) {
	for {
		n, err := r.Read(buf)
		if n > 0 || err != nil {
			if n > 0 && errors.Is(err, io.EOF) {
				return n, io.EOF
			}
			return n, err
		}
	}
}

// copyHeader copies the end-to-end headers of src into dst.
func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		if isHop(k) {
			continue
		}
		dst[k] = append(dst[k][:0:0], vv...)
	}
}

func isHop(k string) bool {
	for _, h := range hopHeaders {
		if strings.EqualFold(h, k) {
			return true
		}
	}
	return false
}

// writeAnswer hands a captured upstream answer back to the app unchanged.
func writeAnswer(w http.ResponseWriter, a *send.Answer) {
	copyHeader(w.Header(), a.Header)
	w.Header().Del("Content-Length")
	w.Header().Del("Content-Encoding")
	w.WriteHeader(a.StatusCode)
	_, _ = w.Write(a.Body)
}

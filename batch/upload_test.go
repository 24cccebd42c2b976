package batch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

func writeShard(t *testing.T, dir string, n int) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"custom_id":"u%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"%s"}]}}`+"\n", i, strings.Repeat("x", 200))
	}
	p := filepath.Join(dir, "shard-000.jsonl")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b.Bytes()
}

// TestUploadStreamed: UploadFile streams the shard into a multipart body
// the simulator accepts (content byte for byte, the name given, purpose
// batch), and API errors come back typed (*api.Error: status, body) for
// the classifier.
func TestUploadStreamed(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir := t.TempDir()
	p, content := writeShard(t, dir, 2000)
	c := NewOpenAIClient(api.New(api.Options{BaseURL: srv.URL, APIKey: "sk-test-upload-0000000000"}))
	f, err := c.UploadFile(context.Background(), p, "oairl-job-1-shard-0.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := srv.Sim.FileContent(f.ID)
	if !ok || !bytes.Equal(got, content) || f.Filename != "oairl-job-1-shard-0.jsonl" || f.Purpose != "batch" || f.Bytes != int64(len(content)) {
		t.Fatalf("uploaded %+v: %d bytes (want %d), equal %v", f, len(got), len(content), bytes.Equal(got, content))
	}
	var ct string
	for _, r := range srv.Sim.Requests() {
		if r.Path == "/v1/files" {
			ct = r.Header.Get("Content-Type")
		}
	}
	if !strings.HasPrefix(ct, "multipart/form-data; boundary=") {
		t.Errorf("content type %q", ct)
	}

	// The sim refuses a batch file not named .jsonl: a 400 with its message.
	_, err = c.UploadFile(context.Background(), p, "shard.txt")
	if st, _, _, msg, ok := api.APIError(err); !ok || st != 400 || !strings.Contains(msg, ".jsonl") {
		t.Errorf("bad name: %v (status %d, %q)", err, st, msg)
	}
	// A bad key: typed as an auth failure (exit 4).
	bad := simtest.New(t, sim.Config{Tier: "none", InvalidKey: true})
	c2 := NewOpenAIClient(api.New(api.Options{BaseURL: bad.URL, APIKey: "sk-test-upload-0000000000"}))
	_, err = c2.UploadFile(context.Background(), p, "shard.jsonl")
	if f := Classify(err, time.Now()); f.Verdict != diagnose.AuthFailed || strings.Contains(err.Error(), "sk-test-upload-0000000000") {
		t.Errorf("bad key: %v classified %s", err, f.Verdict)
	}
}

// TestUploadDoesNotHoldTheShard: uploading a 40 MB shard allocates far less
// than the shard (go-openai's CreateFile built the whole body in memory:
// over 40 MB), and sends it with a Content-Length, not chunked. The server
// here streams the form to io.Discard so that only the client's
// allocations count (the simulator keeps what it receives).
func TestUploadDoesNotHoldTheShard(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a 40 MB file")
	}
	var received int64
	var length int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		length = r.ContentLength
		mr, err := r.MultipartReader()
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for {
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			n, _ := io.Copy(io.Discard, part)
			if part.FormName() == "file" {
				received = n
			}
		}
		fmt.Fprintf(w, `{"id":"file-1","object":"file","bytes":%d,"created_at":1,"filename":"s.jsonl","purpose":"batch"}`, received)
	}))
	defer hs.Close()
	dir := t.TempDir()
	p, content := writeShard(t, dir, 160_000)
	size := int64(len(content))
	content = nil
	c := NewOpenAIClient(api.New(api.Options{BaseURL: hs.URL + "/v1", APIKey: "sk-test"}))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := c.UploadFile(context.Background(), p, "s.jsonl"); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("uploaded %d MB, allocated %.1f MB", size>>20, float64(alloc)/(1<<20))
	if received != size || length <= size {
		t.Fatalf("server got %d of %d bytes, Content-Length %d", received, size, length)
	}
	if alloc > uint64(size)/4 {
		t.Errorf("uploading %d MB allocated %.1f MB: the shard is held in memory", size>>20, float64(alloc)/(1<<20))
	}
}

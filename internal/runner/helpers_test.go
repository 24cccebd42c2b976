package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/models"
)

var (
	testReg = models.Default()
	start   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// instantClock is a virtual clock whose Sleep returns at once after moving
// the time forward: retry tests with one worker see every wait, exactly,
// without waiting.
type instantClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newInstant() *instantClock { return &instantClock{now: start} }

func (c *instantClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}
func (c *instantClock) Wall(d time.Duration) time.Duration { return d }
func (c *instantClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	return nil
}
func (c *instantClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// call is one request seen by a funcPoster.
type call struct {
	Path string
	Body []byte
	At   time.Time
}

// funcPoster answers through fn; it records every call.
type funcPoster struct {
	mu    sync.Mutex
	clk   clock.Clock
	calls []call
	fn    func(n int, c call) (*api.Response, error)
}

func (p *funcPoster) Post(ctx context.Context, path string, body []byte) (*api.Response, error) {
	c := call{Path: path, Body: append([]byte(nil), body...)}
	if p.clk != nil {
		c.At = p.clk.Now()
	}
	p.mu.Lock()
	n := len(p.calls)
	p.calls = append(p.calls, c)
	p.mu.Unlock()
	return p.fn(n, c)
}

func (p *funcPoster) Calls() []call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]call(nil), p.calls...)
}

// customIDOf extracts the custom_id a test body carries in its content
// ("id:<custom_id>").
func customIDOf(body []byte) string {
	i := bytes.Index(body, []byte("id:"))
	if i < 0 {
		return ""
	}
	rest := body[i+3:]
	j := bytes.IndexAny(rest, `" `)
	if j < 0 {
		return string(rest)
	}
	return string(rest[:j])
}

// okResponse is a chat completion 200 with usage.
func okResponse() *api.Response {
	h := http.Header{}
	h.Set("x-request-id", "req_0123456789abcdef0123456789abcdef")
	body := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}`
	return &api.Response{StatusCode: 200, Header: h, Body: []byte(body)}
}

// capture reads a saved response (testdata/cases/NAME.http).
func capture(t *testing.T, name string) *api.Response {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cases", name))
	if err != nil {
		t.Fatal(err)
	}
	caps, err := diagnose.ParseSaved(bytes.NewReader(b))
	if err != nil || len(caps) != 1 {
		t.Fatalf("%s: %d captures, %v", name, len(caps), err)
	}
	return &api.Response{StatusCode: caps[0].Status, Header: caps[0].Header, Body: caps[0].Body}
}

func errResponse(status int, typ, code, msg string, hdr ...string) *api.Response {
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
	return &api.Response{StatusCode: status, Header: h, Body: b}
}

// chatLine is one Batch-format input line for model with an output budget.
func chatLine(id, model string, maxTokens int) string {
	return fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"id:%s say hello"}],"max_tokens":%d}}`,
		id, model, id, maxTokens)
}

// writeLines writes lines as a JSONL file and returns its path.
func writeLines(t *testing.T, dir, name string, lines []string) string {
	t.Helper()
	return writeLinesTB(t, dir, name, lines)
}

func writeLinesB(b *testing.B, dir string, lines []string) string {
	return writeLinesTB(b, dir, "in.jsonl", lines)
}

func writeLinesTB(t testing.TB, dir, name string, lines []string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func chatLines(prefix, model string, n, maxTokens int) []string {
	var lines []string
	for i := 0; i < n; i++ {
		lines = append(lines, chatLine(fmt.Sprintf("%s%d", prefix, i), model, maxTokens))
	}
	return lines
}

// readResults parses the results file strictly: every line must be a
// complete Result.
func readResults(t *testing.T, path string) []Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s ends with a torn line", path)
	}
	var out []Result
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r Result
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		if !strings.HasPrefix(r.ID, "batch_req_") || r.CustomID == "" {
			t.Fatalf("bad result line %q", sc.Text())
		}
		out = append(out, r)
	}
	return out
}

// byID indexes results, failing on a duplicate custom_id.
func byID(t *testing.T, rs []Result) map[string]Result {
	t.Helper()
	m := map[string]Result{}
	for _, r := range rs {
		if _, dup := m[r.CustomID]; dup {
			t.Fatalf("custom_id %s has two results", r.CustomID)
		}
		m[r.CustomID] = r
	}
	return m
}

// baseOptions are options for a test run over files, writing to out.
func baseOptions(out string, files ...string) Options {
	o := Options{Output: out, Registry: testReg, MaxConcurrent: 1, MaxAttempts: 8, MaxWait: 2 * time.Minute, Seed: 1}
	for _, f := range files {
		o.Sources = append(o.Sources, input.Source{Name: f})
	}
	return o
}

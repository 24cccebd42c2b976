package sim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const testKey = "sk-test-sim-0000000000000000"

// newSim starts a simulator on a fake clock.
func newSim(t *testing.T, cfg sim.Config) (*simtest.Server, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(t0)
	cfg.Clock = fc
	return simtest.New(t, cfg), fc
}

type result struct {
	Status int
	Header http.Header
	Body   []byte
}

// errBody decodes an error envelope, failing the test when it is not one.
func (r result) err(t *testing.T) (msg, typ string, param, code *string) {
	t.Helper()
	var e struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || e.Error == nil {
		t.Fatalf("not an error envelope (status %d): %s", r.Status, r.Body)
	}
	// All four keys are required by the spec's Error schema.
	var raw map[string]map[string]json.RawMessage
	_ = json.Unmarshal(r.Body, &raw)
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := raw["error"][k]; !ok {
			t.Errorf("error envelope lacks %q: %s", k, r.Body)
		}
	}
	return e.Error.Message, e.Error.Type, e.Error.Param, e.Error.Code
}

func (r result) code(t *testing.T) string {
	t.Helper()
	_, _, _, c := r.err(t)
	if c == nil {
		return ""
	}
	return *c
}

func do(t *testing.T, method, url, contentType string, body []byte, key string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, b}
}

func post(t *testing.T, srv *simtest.Server, path, body string) result {
	t.Helper()
	return do(t, "POST", srv.URL+path, "application/json", []byte(body), testKey)
}

func get(t *testing.T, srv *simtest.Server, path string) result {
	t.Helper()
	return do(t, "GET", srv.URL+path, "", nil, testKey)
}

func chat(model string, maxTokens int, content string) string {
	b, _ := json.Marshal(map[string]any{
		"model": model, "max_tokens": maxTokens,
		"messages": []map[string]string{{"role": "user", "content": content}},
	})
	return string(b)
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, b)
	}
	return v
}

type usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// promptTokens asks an unlimited simulator how many prompt tokens body
// counts (so tests hold whether the tokens package is the stub or real).
func promptTokens(t *testing.T, body string) int64 {
	t.Helper()
	srv, _ := newSim(t, sim.Config{Tier: "none"})
	r := post(t, srv, "/chat/completions", body)
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	u := decode[struct{ Usage usage }](t, r.Body).Usage
	if u.PromptTokens <= 0 {
		t.Fatalf("prompt_tokens = %d", u.PromptTokens)
	}
	return u.PromptTokens
}

// upload posts content as a purpose=batch file and returns its id.
func upload(t *testing.T, srv *simtest.Server, name string, content []byte) string {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = fw.Write(content)
	_ = mw.Close()
	r := do(t, "POST", srv.URL+"/files", mw.FormDataContentType(), buf.Bytes(), testKey)
	if r.Status != 200 {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	return decode[struct{ ID string }](t, r.Body).ID
}

// batchLines builds n chat lines for model.
func batchLines(n int, model string, maxTokens int) []byte {
	var b strings.Builder
	for i := 0; i < n; i++ {
		line, _ := json.Marshal(map[string]any{
			"custom_id": "req-" + itoa(i+1), "method": "POST", "url": "/v1/chat/completions",
			"body": map[string]any{"model": model, "max_tokens": maxTokens,
				"messages": []map[string]string{{"role": "user", "content": "Say hello number " + itoa(i+1)}}},
		})
		b.Write(line)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func itoa(i int) string { return strconv.Itoa(i) }

// httpPost posts without failing on a connection error (dropped
// connections are a fault mode).
func httpPost(url, body string) (result, error) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, b}, err
}

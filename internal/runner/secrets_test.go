package runner

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/api"
)

// A server that echoes the key in an error's code, param, type and
// message and in x-request-id (breaker1 F3/F4): neither the results file
// nor the summary holds the key.
func TestEchoedKeyNeverStored(t *testing.T) {
	const canary = "sk-proj-CANARY1234567890abcdefghij"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-request-id", "req_"+canary)
		w.Header().Set("Content-Type", "application/json")
		if b, _ := io.ReadAll(r.Body); strings.Contains(string(b), "id:ok") {
			w.Write([]byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`))
			return
		}
		w.WriteHeader(400)
		w.Write([]byte(`{"error":{"message":"bad key ` + canary + `","type":"` + canary + `","param":"` + canary + `","code":"` + canary + `"}}`))
	}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", []string{chatLine("ok0", "gpt-4o-mini", 5), chatLine("bad0", "gpt-4o-mini", 5)})
	out := dir + "/out.jsonl"
	o := baseOptions(out, in)
	o.Client = api.New(api.Options{BaseURL: up.URL + "/v1", APIKey: canary})
	o.APIKey = canary
	sum, _ := Run(context.Background(), o)
	res, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(sum)
	for what, s := range map[string]string{"results": string(res), "summary": string(js)} {
		if strings.Contains(s, canary) || strings.Contains(s, "CANARY1234567890") {
			t.Errorf("%s holds the key:\n%s", what, s)
		}
	}
	if !strings.Contains(string(res), `"request_id":"req_`) {
		t.Errorf("results lost the request id:\n%s", res)
	}
}

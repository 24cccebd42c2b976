package provider

import (
	"net/http"
	"testing"
)

func TestDetect(t *testing.T) {
	for url, want := range map[string]string{
		"https://api.openai.com/v1":                        "openai",
		"https://myres.openai.azure.com":                   "azure",
		"https://myres.cognitiveservices.azure.com/openai": "azure",
		"https://api.groq.com/openai/v1":                   "groq",
		"https://openrouter.ai/api/v1":                     "openrouter",
		"https://api.anthropic.com/v1":                     "anthropic",
		"http://127.0.0.1:8080/v1":                         "openai",
		"https://evil-openai.azure.com.example.org/v1":     "openai",
	} {
		if got := Detect(url).Name; got != want {
			t.Errorf("Detect(%s) = %s, want %s", url, got, want)
		}
	}
	if _, ok := Resolve("nope", ""); ok {
		t.Error("unknown provider accepted")
	}
	if p, ok := Resolve("vllm", "https://api.openai.com/v1"); !ok || p.Name != "vllm" {
		t.Error("--provider does not win over detection")
	}
}

func TestURLAndAuth(t *testing.T) {
	az, _ := Get("azure")
	oa, _ := Get("openai")
	body := []byte(`{"model":"my-gpt4o","messages":[]}`)
	for _, c := range []struct {
		p                Provider
		base, path, want string
	}{
		{az, "https://r.openai.azure.com", "/v1/chat/completions", "https://r.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"},
		{az, "https://r.openai.azure.com/openai/", "/v1/embeddings", "https://r.openai.azure.com/openai/deployments/my-gpt4o/embeddings?api-version=2024-10-21"},
		{az, "https://r.openai.azure.com/openai/v1", "/v1/responses", "https://r.openai.azure.com/openai/v1/responses"},
		{oa, "https://api.openai.com/v1", "/v1/chat/completions", "https://api.openai.com/v1/chat/completions"},
		{oa, "http://127.0.0.1:1", "/v1/chat/completions", "http://127.0.0.1:1/v1/chat/completions"},
	} {
		if got := c.p.URL(c.base, c.path, body, ""); got != c.want {
			t.Errorf("%s URL(%s, %s) = %s, want %s", c.p.Name, c.base, c.path, got, c.want)
		}
	}
	if got := az.URL("https://r.openai.azure.com", "/v1/chat/completions", body, "2025-03-01-preview"); got != "https://r.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2025-03-01-preview" {
		t.Errorf("api-version not applied: %s", got)
	}
	h := http.Header{}
	az.SetAuth(h, "k1")
	if h.Get("api-key") != "k1" || h.Get("Authorization") != "" {
		t.Errorf("azure auth %v", h)
	}
	h = http.Header{}
	oa.SetAuth(h, "k2")
	if h.Get("Authorization") != "Bearer k2" {
		t.Errorf("openai auth %v", h)
	}
}

package batch

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkSplitter measures the splitter alone (shard files, order file,
// SHA-256), without validation or token counting: ~300-byte lines over
// three models.
func BenchmarkSplitter(b *testing.B) {
	lines := make([]Line, 3000)
	size := 0
	for i := range lines {
		m := []string{"gpt-4o", "gpt-4o-mini", "gpt-4.1"}[i%3]
		raw := fmt.Sprintf(`{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"%0200d"}],"max_tokens":50}}`, i, m, i)
		lines[i] = Line{CustomID: fmt.Sprint(i), URL: "/v1/chat/completions", Model: m, Tokens: 100, Raw: []byte(raw)}
		size += len(raw) + 1
	}
	b.SetBytes(int64(size))
	for i := 0; i < b.N; i++ {
		sp, err := NewSplitter(SplitOptions{Dir: filepath.Join(b.TempDir(), "s")})
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range lines {
			if err := sp.Add(l); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, _, err := sp.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

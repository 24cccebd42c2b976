package tokens

import (
	"encoding/json"
	"testing"
)

// Benchmarks over real text from this machine (see corpus). Run:
//
//	go test -run XXX -bench . -benchmem ./tokens/
//	go test -run XXX -bench Fast -cpuprofile cpu.prof ./tokens/

func benchText(b *testing.B) ([]string, int64) {
	texts := corpus(b, 2_000_000)
	var n int64
	for _, s := range texts {
		n += int64(len(s))
	}
	return texts, n
}

func BenchmarkFastO200k(b *testing.B) {
	texts, n := benchText(b)
	e := fast(b, "o200k_base")
	b.SetBytes(n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range texts {
			e.count(s)
		}
	}
}

func BenchmarkFastCl100k(b *testing.B) {
	texts, n := benchText(b)
	e := fast(b, "cl100k_base")
	b.SetBytes(n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range texts {
			e.count(s)
		}
	}
}

func BenchmarkPkoukkO200k(b *testing.B) {
	texts, n := benchText(b)
	texts = texts[:len(texts)/8]
	n /= 8
	e := reference(b, "o200k_base")
	b.SetBytes(n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range texts {
			e.EncodeOrdinary(s)
		}
	}
}

func BenchmarkAnalyzeChat(b *testing.B) {
	texts, _ := benchText(b)
	var bodies [][]byte
	var n int64
	for i, s := range texts {
		msgs := []map[string]string{{"role": "user", "content": s}}
		if i%10 < 7 {
			msgs = append([]map[string]string{{"role": "system", "content": texts[i%5]}}, msgs...)
		}
		body, _ := json.Marshal(map[string]any{"model": "gpt-4o-mini", "messages": msgs, "max_tokens": 500})
		bodies = append(bodies, body)
		n += int64(len(body))
	}
	// NoCache: the loop repeats the same bodies, which a cache would
	// answer without counting.
	c := NewCounter(Options{AssumeOutput: 1024, NoCache: true})
	b.SetBytes(n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, body := range bodies {
			c.Analyze(EndpointChat, body)
		}
	}
}

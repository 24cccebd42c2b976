// Command gen writes a realistic Batch API input file for the `oairl count`
// benchmark (bench/count.sh): chat requests whose texts come from real
// documents on this machine — Go sources (/usr/local/go/src), package
// docs (/usr/share/doc) and man pages in ~30 languages (/usr/share/man,
// gzip-compressed roff) — with mixed lengths, some emoji and other
// Unicode, 70% with a system prompt drawn from a small shared pool, 10%
// with tool definitions, a few models of both current encodings.
//
// Usage:
//
//	go run ./bench/gen -o bench/out/bench.jsonl -size 100MB [-seed 1]
//
// The output is deterministic for a given seed and machine.
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

func main() {
	out := flag.String("o", "bench/out/bench.jsonl", "output file")
	size := flag.String("size", "100MB", "approximate output size (KB, MB suffixes)")
	seed := flag.Int64("seed", 1, "random seed")
	requests := flag.Int("requests", 0, "instead of -size: this many short chat requests (~370 bytes each, ids r0..rN-1; for bench/memory.sh)")
	lineBytes := flag.Int("line-bytes", 0, "with -requests: pad each line to about this many bytes")
	flag.Parse()
	if *requests > 0 {
		if err := short(*out, *requests, *lineBytes, *seed); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*out, parseSize(*size), *seed); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func parseSize(s string) int64 {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "MB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MB")
	case strings.HasSuffix(s, "KB"):
		mult, s = 1<<10, strings.TrimSuffix(s, "KB")
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen: bad -size:", err)
		os.Exit(2)
	}
	return int64(n * float64(mult))
}

// short writes n short gpt-4o-mini chat requests, custom_ids r0..r<n-1>,
// about 370 bytes per line (the size of issue 11's measurements; more
// words up to lineBytes when that is larger), words from a fixed
// vocabulary; deterministic for a seed.
func short(out string, n, lineBytes int, seed int64) error {
	rng := rand.New(rand.NewSource(seed))
	words := strings.Fields("rate limit token bucket request minute organization project model answer question " +
		"system user assistant paragraph summary translate explain list compare describe lighthouse " +
		"copper river mountain history science music garden kitchen library window season")
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := 0; i < n; i++ {
		var b strings.Builder
		for k := 0; k < 22 || b.Len() < lineBytes-220; k++ {
			if k > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[rng.Intn(len(words))])
		}
		body := map[string]any{"model": "gpt-4o-mini", "max_tokens": 16,
			"messages": []map[string]string{{"role": "system", "content": "You are terse."}, {"role": "user", "content": fmt.Sprintf("Request %d: %s", i, b.String())}}}
		line, _ := json.Marshal(map[string]any{"custom_id": fmt.Sprintf("r%d", i), "method": "POST", "url": "/v1/chat/completions", "body": body})
		w.Write(line)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// source collects document texts up to max bytes from root, keeping files
// that are valid UTF-8 (gzip files are decompressed).
func source(root string, keep func(string) bool, max int64, rng *rand.Rand) []string {
	var paths []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && keep(p) {
			paths = append(paths, p)
		}
		return nil
	})
	sort.Strings(paths)
	rng.Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
	var docs []string
	var total int64
	for _, p := range paths {
		if total >= max {
			break
		}
		b, err := readMaybeGzip(p)
		if err != nil || len(b) < 200 || !utf8.Valid(b) || strings.IndexByte(string(b), 0) >= 0 {
			continue
		}
		if len(b) > 200_000 {
			b = b[:200_000]
			for !utf8.Valid(b) {
				b = b[:len(b)-1]
			}
		}
		docs = append(docs, string(b))
		total += int64(len(b))
	}
	return docs
}

func readMaybeGzip(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(p, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		r = z
	}
	return io.ReadAll(io.LimitReader(r, 1<<20))
}

var emoji = []string{"😀", "🚀", "👍🏽", "🇯🇵", "👨‍👩‍👧", "✅", "🔥", "💡", "🤖", "❤️", "≈", "→", "€", "°C", "ñ", "ß", "日本", "Привет", "مرحبا", "ελληνικά"}

var models = []struct {
	name string
	w    int
}{{"gpt-4o-mini", 45}, {"gpt-4o", 20}, {"gpt-4.1-mini", 15}, {"gpt-4-turbo", 10}, {"gpt-3.5-turbo-0125", 10}}

func run(out string, size int64, seed int64) error {
	rng := rand.New(rand.NewSource(seed))
	var docs []string
	docs = append(docs, source("/usr/local/go/src", func(p string) bool { return strings.HasSuffix(p, ".go") }, 40<<20, rng)...)
	docs = append(docs, source("/usr/share/doc", func(p string) bool {
		return strings.HasSuffix(p, ".txt") || strings.HasSuffix(p, ".md") || strings.HasSuffix(p, ".rst") || strings.HasSuffix(p, ".gz") || strings.HasSuffix(p, "copyright")
	}, 30<<20, rng)...)
	docs = append(docs, source("/usr/share/man", func(p string) bool { return strings.HasSuffix(p, ".gz") }, 40<<20, rng)...)
	if len(docs) == 0 {
		return fmt.Errorf("no documents found under /usr/local/go/src, /usr/share/doc or /usr/share/man")
	}
	rng.Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })

	// a shared pool of system prompts: 70% of requests carry one of them
	var systems []string
	for i := 0; i < 24; i++ {
		d := docs[rng.Intn(len(docs))]
		systems = append(systems, "You are a careful assistant. Follow these notes:\n"+cut(d, rng.Intn(len(d)), 300+rng.Intn(2500)))
	}
	tools := []any{map[string]any{"type": "function", "function": map[string]any{
		"name": "get_current_weather", "description": "Get the current weather in a given location",
		"parameters": map[string]any{"type": "object", "properties": map[string]any{
			"location": map[string]any{"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
			"unit":     map[string]any{"type": "string", "description": "The unit of temperature to return", "enum": []string{"celsius", "fahrenheit"}},
		}, "required": []string{"location"}},
	}}, map[string]any{"type": "function", "function": map[string]any{
		"name": "search_docs", "description": "Search the documentation.",
		"parameters": map[string]any{"type": "object", "properties": map[string]any{
			"query": map[string]any{"type": "string", "description": "Words to look for"},
			"limit": map[string]any{"type": "integer", "description": "How many results"},
		}},
	}}}

	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var written int64
	for i := 0; written < size; i++ {
		d := docs[rng.Intn(len(docs))]
		// lengths: log-uniform from 20 bytes to 24 KB
		n := int(math.Exp(math.Log(20) + rng.Float64()*(math.Log(24000)-math.Log(20))))
		user := cut(d, rng.Intn(len(d)), n)
		if rng.Intn(8) == 0 {
			user = sprinkle(user, rng)
		}
		var msgs []any
		if rng.Intn(10) < 7 {
			msgs = append(msgs, map[string]any{"role": "system", "content": systems[rng.Intn(len(systems))]})
		}
		msgs = append(msgs, map[string]any{"role": "user", "content": user})
		if rng.Intn(12) == 0 {
			msgs = append(msgs,
				map[string]any{"role": "assistant", "content": cut(d, rng.Intn(len(d)), 200)},
				map[string]any{"role": "user", "name": "reviewer", "content": "Summarise the above in three bullet points."})
		}
		body := map[string]any{"model": pickModel(rng), "messages": msgs, "max_tokens": 100 + rng.Intn(1900)}
		if rng.Intn(10) == 0 {
			body["tools"] = tools
		}
		line, err := json.Marshal(map[string]any{"custom_id": fmt.Sprintf("req-%07d", i), "method": "POST", "url": "/v1/chat/completions", "body": body})
		if err != nil {
			return err
		}
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return err
		}
		written += int64(len(line))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func pickModel(rng *rand.Rand) string {
	total := 0
	for _, m := range models {
		total += m.w
	}
	x := rng.Intn(total)
	for _, m := range models {
		if x < m.w {
			return m.name
		}
		x -= m.w
	}
	return models[0].name
}

// cut returns up to n bytes of d from about start, on rune boundaries.
func cut(d string, start, n int) string {
	if start+n > len(d) {
		start = len(d) - n
	}
	if start < 0 {
		start = 0
	}
	end := start + n
	if end > len(d) {
		end = len(d)
	}
	for start < end && !utf8.RuneStart(d[start]) {
		start++
	}
	for end < len(d) && !utf8.RuneStart(d[end]) {
		end--
	}
	return d[start:end]
}

// sprinkle inserts emoji and other Unicode between words.
func sprinkle(s string, rng *rand.Rand) string {
	words := strings.Split(s, " ")
	for i := range words {
		if rng.Intn(6) == 0 {
			words[i] += emoji[rng.Intn(len(emoji))]
		}
	}
	return strings.Join(words, " ")
}

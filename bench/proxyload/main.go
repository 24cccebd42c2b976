// Command proxyload measures request latency and throughput against an
// OpenAI-compatible base URL (for bench/proxy.sh: the sim directly vs
// through oairl proxy). It sends N small chat completions at concurrency
// C and prints one JSON line: requests, errors, req_per_s, latency p50/p99
// in milliseconds (time to the whole answer), and ttfb p50/p99 (time to
// the first body byte, the figure that matters for streams).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	base := flag.String("url", "", "base URL, e.g. http://127.0.0.1:8787/v1")
	n := flag.Int("n", 1000, "requests")
	c := flag.Int("c", 1, "concurrency")
	stream := flag.Bool("stream", false, "stream: true")
	flag.Parse()
	body := fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],"max_tokens":8,"stream":%v}`, *stream)
	tr := &http.Transport{MaxIdleConns: *c * 2, MaxIdleConnsPerHost: *c * 2}
	client := &http.Client{Transport: tr}
	var next, errs atomic.Int64
	lat := make([]time.Duration, *n)
	ttfb := make([]time.Duration, *n)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				req, _ := http.NewRequest("POST", *base+"/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+os.Getenv("OPENAI_API_KEY"))
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				k, rerr := resp.Body.Read(buf)
				ttfb[i] = time.Since(t0)
				if k >= 0 && rerr == nil {
					_, _ = io.CopyBuffer(io.Discard, resp.Body, buf)
				}
				resp.Body.Close()
				lat[i] = time.Since(t0)
				if resp.StatusCode != 200 {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	q := func(d []time.Duration, p float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()) / 1000
	}
	out, _ := json.Marshal(map[string]any{
		"requests": *n, "errors": errs.Load(), "concurrency": *c, "stream": *stream,
		"req_per_s":  float64(*n) / el.Seconds(),
		"latency_ms": map[string]float64{"p50": q(lat, 0.5), "p99": q(lat, 0.99)},
		"ttfb_ms":    map[string]float64{"p50": q(ttfb, 0.5), "p99": q(ttfb, 0.99)},
	})
	fmt.Println(string(out))
}

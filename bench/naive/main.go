// Command naive is the comparison client of bench/run.sh: what most code
// does today. It fires every request of a Batch-format JSONL file at once,
// 50 at a time (no pacing), and retries as the official SDKs do by default
// (openai-python/-node/-go, wire-formats.md §2.1): at most 2 retries, on
// 408/409/429/5xx and connection errors; the wait is retry-after-ms or
// retry-after when 0 < d <= 60 s, else 0.5 s × 2^k (cap 8 s) times a jitter
// in (0.75, 1]. After the last retry the request is given up and recorded
// as failed. Waits are divided by --time-scale so that it agrees with
// `oairl sim --time-scale K`.
//
//	naive -in requests.jsonl -out results.jsonl -base-url http://127.0.0.1:PORT/v1 [-c 50] [-time-scale K]
//
// Each result line is {"custom_id","status_code","attempts"}.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

type line struct {
	CustomID string          `json:"custom_id"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

func main() {
	in := flag.String("in", "", "input JSONL (Batch API input format)")
	out := flag.String("out", "", "results file")
	base := flag.String("base-url", os.Getenv("OPENAI_BASE_URL"), "API base URL ending in /v1")
	conc := flag.Int("c", 50, "concurrency")
	scale := flag.Float64("time-scale", 1, "divide every wait by K (oairl sim --time-scale K)")
	maxRetries := flag.Int("max-retries", 2, "retries after the first attempt (SDK default 2)")
	flag.Parse()
	if *in == "" || *out == "" || *base == "" {
		flag.Usage()
		os.Exit(2)
	}
	f, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var lines []line
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var l line
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.CustomID != "" {
			lines = append(lines, l)
		}
	}
	f.Close()
	of, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer of.Close()
	var mu sync.Mutex
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc}}
	key := os.Getenv("OPENAI_API_KEY")
	work := make(chan line)
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range work {
				status, attempts := send(hc, *base, key, l, *maxRetries, *scale)
				b, _ := json.Marshal(map[string]any{"custom_id": l.CustomID, "status_code": status, "attempts": attempts})
				mu.Lock()
				of.Write(append(b, '\n'))
				mu.Unlock()
			}
		}()
	}
	for _, l := range lines {
		work <- l
	}
	close(work)
	wg.Wait()
}

func send(hc *http.Client, base, key string, l line, maxRetries int, scale float64) (status, attempts int) {
	url := strings.TrimSuffix(base, "/v1") + l.URL
	for retry := 0; ; retry++ {
		attempts++
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(l.Body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := hc.Do(req)
		var h http.Header
		status = 0
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status, h = resp.StatusCode, resp.Header
		}
		retryable := err != nil || status == 408 || status == 409 || status == 429 || status >= 500
		if !retryable || retry >= maxRetries {
			return status, attempts
		}
		time.Sleep(time.Duration(float64(delay(h, retry)) / scale))
	}
}

// delay is the Stainless SDKs' retryDelay.
func delay(h http.Header, retry int) time.Duration {
	if h != nil {
		if v, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil && v > 0 && v <= 60_000 {
			return time.Duration(v * float64(time.Millisecond))
		}
		if v, err := strconv.ParseFloat(h.Get("retry-after"), 64); err == nil && v > 0 && v <= 60 {
			return time.Duration(v * float64(time.Second))
		}
	}
	d := min(0.5*float64(int(1)<<retry), 8)
	return time.Duration(d * (1 - 0.25*rand.Float64()) * float64(time.Second))
}

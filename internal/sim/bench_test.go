package sim_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// BenchmarkChatCompletion measures the simulator's cost per chat request
// over loopback HTTP (tier none, no latency), the ceiling for driving
// tier-5 limits (10,000 RPM) from one process.
func BenchmarkChatCompletion(b *testing.B) {
	srv := simtest.New(b, sim.Config{Tier: "5"})
	body := chat("gpt-4o-mini", 100, strings.Repeat("The quick brown fox jumps over the lazy dog. ", 40))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", srv.URL+"/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer sk-x")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
}

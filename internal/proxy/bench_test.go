package proxy

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// BenchmarkProxyRequest is one small chat completion through the proxy
// to a sim with no latency and no limits (compare BenchmarkDirectRequest).
func BenchmarkProxyRequest(b *testing.B) {
	up := simtest.New(b, sim.Config{Tier: "none"})
	r := newRig(&testing.T{}, up.URL, rigOpts{limits: pace.Limits{RPM: 1e9, TPM: 1e12}, maxConc: 1000})
	benchPost(b, r.URL)
}

func BenchmarkDirectRequest(b *testing.B) {
	up := simtest.New(b, sim.Config{Tier: "none"})
	benchPost(b, up.URL)
}

func benchPost(b *testing.B, base string) {
	body := chatBody(8, false)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequestWithContext(context.Background(), "POST", base+"/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("%v %v", resp, err)
			}
			resp.Body.Close()
		}
	})
}

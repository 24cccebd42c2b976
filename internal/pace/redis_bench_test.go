package pace

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/redistest"
)

// BenchmarkRedisReserve measures one shared decision and its release
// (Reserve + Done: two scripts) against a redis-server on loopback, with
// limits that never make it wait; it reports p50/p99 of Reserve alone.
//
//	go test -run '^$' -bench BenchmarkRedisReserve ./internal/pace
func BenchmarkRedisReserve(b *testing.B) {
	srv := redistest.Start(b)
	r, err := NewRedis(context.Background(), RedisConfig{
		Config: Config{Clock: clock.Real(), Limits: fixed(1_000_000_000, 1_000_000_000_000), MaxConcurrent: 1000},
		Client: newClient(srv.URL()), URL: srv.URL(), Name: "bench",
	})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		p, err := r.Reserve(ctx, "gpt-4o", 700)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		p.Done(Success)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

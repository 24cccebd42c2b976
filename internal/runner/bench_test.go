package runner

import (
	"context"
	"testing"

	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// BenchmarkRun measures one request through the whole runner (read and
// count the line, reserve, send, classify, write the result) against an
// in-process zero-latency simulator with no limits; the simulator's own
// CPU is included. bench/run.sh measures the oairl process alone.
//
//	go test -run XXX -bench Run -benchtime 5000x ./internal/runner/
func BenchmarkRun(b *testing.B) {
	srv := simtest.New(b, sim.Config{Tier: "none"})
	dir := b.TempDir()
	in := writeLinesB(b, dir, chatLines("b", "gpt-4o-mini", b.N, 5))
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client, o.MaxConcurrent, o.RPM, o.TPM = simClient(srv), 50, 1_000_000_000, 1_000_000_000_000
	b.ResetTimer()
	sum, err := Run(context.Background(), o)
	if err != nil || sum.Succeeded != b.N {
		b.Fatalf("%v: %d of %d", err, sum.Succeeded, b.N)
	}
}

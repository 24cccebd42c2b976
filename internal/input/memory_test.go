package input

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// genReader produces n Batch lines of about 400 bytes, lazily: the input
// is never in memory as a whole.
type genReader struct {
	i, n int
	buf  []byte
}

func (g *genReader) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		if g.i >= g.n {
			return 0, io.EOF
		}
		g.i++
		g.buf = []byte(fmt.Sprintf(`{"custom_id": "req-%07d", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "%s %d"}], "max_completion_tokens": 50}}`+"\n",
			g.i, strings.Repeat("lorem ipsum dolor sit amet ", 9), g.i))
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// TestScanMemoryFlat scans 300,000 lines (~120 MB) from a generator and
// samples the live heap: it must stay flat (bounded by the in-flight
// window plus 16 bytes per custom_id for the duplicate check), and every
// request must arrive, in order.
func TestScanMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("scans 120 MB")
	}
	const n = 300_000
	var peak uint64
	var bytesIn int64
	next := 1
	sample := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > peak {
			peak = ms.HeapAlloc
		}
	}
	sum, err := Scan(context.Background(), []Source{{Name: "-"}},
		Options{Registry: testReg, Stdin: &genReader{n: n}, Progress: func(b int64) { bytesIn = b }},
		func(r *Request) error {
			if r.Line != next {
				t.Fatalf("got line %d, want %d: out of order", r.Line, next)
			}
			next++
			if r.Line%50_000 == 0 {
				sample()
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests != n || sum.Valid != n {
		t.Fatalf("summary %+v", sum)
	}
	t.Logf("scanned %d MB; peak live heap %.1f MB", bytesIn>>20, float64(peak)/(1<<20))
	if bytesIn < 100<<20 {
		t.Fatalf("only %d bytes read", bytesIn)
	}
	// The input is ~120 MB; holding it (or one Request per line) would
	// blow far past this bound.
	if peak > 48<<20 {
		t.Errorf("peak live heap %.1f MB: memory is not flat", float64(peak)/(1<<20))
	}
}

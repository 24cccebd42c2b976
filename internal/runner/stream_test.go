package runner

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/api"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/extsort"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// TestStreamReadsBackEverySource: lines are read back from their files by
// offset when sent, for a plain file (with a BOM and CRLF endings), a gzip
// file and stdin (both copied during validation): the server receives each
// body byte for byte, --model is inserted into a bare body, and every
// custom_id gets exactly one result.
func TestStreamReadsBackEverySource(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir := t.TempDir()
	bodyOf := func(id string) string {
		return fmt.Sprintf(`{"model": "gpt-4o-mini", "messages":[{"role":"user","content":"id:%s h\u00e9llo"}],  "max_tokens":5}`, id)
	}
	line := func(id string) string {
		return `{"custom_id":"` + id + `","method":"POST","url":"/v1/chat/completions","body":` + bodyOf(id) + `}`
	}
	// plain: BOM, CRLF, a blank line, trailing spaces.
	plain := "\xEF\xBB\xBF" + line("p0") + "\r\n" + line("p1") + "  \r\n\r\n" + line("p2") + "\r\n"
	pPath := filepath.Join(dir, "plain.jsonl")
	if err := os.WriteFile(pPath, []byte(plain), 0o644); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	for i := 0; i < 50; i++ {
		fmt.Fprintln(zw, line(fmt.Sprintf("g%d", i)))
	}
	zw.Close()
	gPath := filepath.Join(dir, "more.jsonl.gz")
	if err := os.WriteFile(gPath, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stdin := line("s0") + "\n" + `{"messages":[{"role":"user","content":"id:bare"}],"max_tokens":3}` + "\n" + line("s2") + "\n"

	o := baseOptions(dir+"/out.jsonl", pPath, gPath, "-")
	o.Client, o.MaxConcurrent, o.Model, o.Stdin = simClient(srv), 8, "gpt-4o-mini", strings.NewReader(stdin)
	sum, err := Run(context.Background(), o)
	if err != nil || sum.Succeeded != 3+50+3 || sum.ToSend != 56 {
		t.Fatalf("err %v, %+v", err, sum)
	}
	got := map[string]string{}
	for _, r := range srv.Sim.Requests() {
		id := customIDOf(r.Body)
		if _, dup := got[id]; dup {
			t.Errorf("%s sent twice", id)
		}
		got[id] = string(r.Body)
	}
	for id, b := range got {
		want := bodyOf(id)
		if id == "bare" {
			want = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"id:bare"}],"max_tokens":3}`
		}
		if b != want {
			t.Errorf("%s: server got %s, want %s", id, b, want)
		}
	}
	rs := byID(t, readResults(t, dir+"/out.jsonl"))
	if len(rs) != 56 {
		t.Errorf("%d results", len(rs))
	}
	if _, ok := rs["stdin:line-2"]; !ok {
		t.Errorf("bare stdin line has no result under its auto id: %v", slices.Sorted(maps.Keys(rs)))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 { // 2 inputs, out, lock
		t.Errorf("temporary files left: %v", ents)
	}
	// A rerun sends nothing (stdin again, same lines).
	o.Stdin = strings.NewReader(stdin)
	sum, err = Run(context.Background(), o)
	if err != nil || sum.Skipped != 56 || sum.ToSend != 0 {
		t.Fatalf("rerun: err %v, %+v", err, sum)
	}
}

// TestStreamInputChangedWhileRunning: a line rewritten between the
// validating pass and its sending is not sent as something else: the run
// stops (exit 1) and a rerun sends the rest.
func TestStreamInputChangedWhileRunning(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir := t.TempDir()
	in := writeLines(t, dir, "in.jsonl", chatLines("c", "gpt-4o-mini", 20, 5))
	var once sync.Once
	p := &funcPoster{fn: func(n int, c call) (*api.Response, error) {
		once.Do(func() {
			// Rewritten in place (same length), as an editor might.
			b, _ := os.ReadFile(in)
			f, err := os.OpenFile(in, os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.WriteAt([]byte("HELLO"), int64(bytes.Index(b, []byte("id:c15 say hello"))+len("id:c15 say ")))
			f.Close()
		})
		return simClient(srv).Post(context.Background(), c.Path, c.Body)
	}}
	o := baseOptions(dir+"/out.jsonl", in)
	o.Client = p
	sum, err := Run(context.Background(), o)
	if err != nil || sum.ExitCode != exitcode.Failure || !strings.Contains(sum.StopReason, "changed") {
		t.Fatalf("err %v, exit %d, stop %q", err, sum.ExitCode, sum.StopReason)
	}
	for _, c := range p.Calls() {
		if strings.Contains(string(c.Body), "HELLO") {
			t.Fatal("sent the changed line")
		}
	}
	// c15 stops the feeder; c14 may have been read already but is not
	// sent once the run stops.
	if sum.Succeeded < 14 || sum.Succeeded > 15 || sum.Succeeded+sum.Unsent != 20 {
		t.Errorf("succeeded %d, unsent %d", sum.Succeeded, sum.Unsent)
	}
	left := 20 - sum.Succeeded
	o.Client = simClient(srv)
	sum, err = Run(context.Background(), o)
	if err != nil || sum.ExitCode != exitcode.OK || sum.Succeeded != left {
		t.Fatalf("rerun: err %v, %+v", err, sum)
	}
}

// TestOrderedOnDisk: --ordered sorts on disk (runs of 7 records here):
// one line per input custom_id in input order, then the lines of ids not
// in the input, and the superseded lines (a changed body's old result)
// appended to out.superseded.jsonl.
func TestOrderedOnDisk(t *testing.T) {
	defer func(n int) { extsort.DefaultRunRecords = n }(extsort.DefaultRunRecords)
	extsort.DefaultRunRecords = 7
	srv := simtest.New(t, sim.Config{Tier: "none", Latency: time.Millisecond, LatencyJitter: 0.9})
	dir := t.TempDir()
	const n = 60
	in := writeLines(t, dir, "in.jsonl", chatLines("o", "gpt-4o-mini", n, 5))
	out := dir + "/out.jsonl"
	old := []string{
		`{"id":"batch_req_x1","custom_id":"o7","response":{"status_code":200,"request_id":"r","body":{"old":1}},"error":null,"oairl_body_sha256":"00000000000000aa"}`,
		`{"id":"batch_req_x2","custom_id":"zz","response":{"status_code":200,"request_id":"r","body":{}},"error":null}`,
		`{"id":"batch_req_x3","custom_id":"o41","response":{"status_code":200,"request_id":"r","body":{"old":2}},"error":null,"oairl_body_sha256":"00000000000000bb"}`,
	}
	writeLines(t, dir, "out.jsonl", old)
	o := baseOptions(out, in)
	o.Client, o.MaxConcurrent, o.Ordered = simClient(srv), 8, true
	sum, err := Run(context.Background(), o)
	if err != nil || sum.Succeeded != n {
		t.Fatalf("err %v, %+v", err, sum)
	}
	rs := readResults(t, out)
	if len(rs) != n+1 {
		t.Fatalf("%d lines, want %d", len(rs), n+1)
	}
	for i, r := range rs[:n] {
		if r.CustomID != fmt.Sprintf("o%d", i) || strings.Contains(string(r.Response.Body), `"old"`) {
			t.Fatalf("line %d is %s %s, want o%d's new result", i, r.CustomID, r.Response.Body, i)
		}
	}
	if rs[n].CustomID != "zz" {
		t.Errorf("last line %s, want zz", rs[n].CustomID)
	}
	sup, _ := os.ReadFile(out + ".superseded.jsonl")
	if string(sup) != old[0]+"\n"+old[2]+"\n" {
		t.Errorf("superseded:\n%s", sup)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 { // in, out, superseded, lock
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestResumeIndex(t *testing.T) {
	x := newResumeIndex(maphash.MakeSeed())
	x.add("a", "", recRetryable)
	x.add("a", "", recSucceeded)
	x.add("b", "00000000000000f1", recFailed)
	x.add("b", "00000000000000f1", recRetryable)
	x.add("c", "00000000000000c1", recRetryable)
	x.add("c", "00000000000000c2", recSucceeded)
	x.add("c", "00000000000000c1", recFailed)
	x.add("d", "not-hex", recSucceeded)
	for _, tt := range []struct {
		id, fp       string
		st           recState
		ok, mismatch bool
	}{
		{"a", "0000000000000001", recSucceeded, true, false}, // no fingerprint recorded: any body
		{"b", "00000000000000f1", recFailed, true, false},
		{"b", "00000000000000f2", 0, false, true},
		{"c", "00000000000000c1", recFailed, true, false},
		{"c", "00000000000000c2", recSucceeded, true, false},
		{"c", "00000000000000c3", 0, false, true},
		{"d", "not-hex", recSucceeded, true, false},
		{"e", "00000000000000f1", 0, false, false},
	} {
		st, ok, mm := x.lookup(tt.id, tt.fp)
		if st != tt.st || ok != tt.ok || mm != tt.mismatch {
			t.Errorf("lookup(%s, %s) = %v %v %v, want %v %v %v", tt.id, tt.fp, st, ok, mm, tt.st, tt.ok, tt.mismatch)
		}
	}
	if x.state("c") != recSucceeded || x.state("b") != recFailed {
		t.Errorf("best states c=%v b=%v", x.state("c"), x.state("b"))
	}
}

// TestResumeAfterRandomKillsStreamed kills runs over a gzip input at
// random points, each time also tearing the results file at a random byte
// of its last line (a kill in the middle of a write), then reruns until
// done: exactly one result, a 200, per custom_id.
func TestResumeAfterRandomKillsStreamed(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 3))
	srv := simtest.New(t, sim.Config{Tier: "none", FaultRate: 0.05, Seed: 5})
	dir := t.TempDir()
	const n = 1500
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	for _, l := range chatLines("k", "gpt-4o-mini", n, 5) {
		fmt.Fprintln(zw, l)
	}
	zw.Close()
	in := filepath.Join(dir, "in.jsonl.gz")
	if err := os.WriteFile(in, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := dir + "/out.jsonl"
	for runs := 1; ; runs++ {
		if runs > 30 {
			t.Fatal("did not converge")
		}
		soft, cancelSoft := context.WithCancel(context.Background())
		hard, cancelHard := context.WithCancel(context.Background())
		ka := &killAfter{p: simClient(srv), k: int64(1 + rng.IntN(400)), cancel: func() { cancelSoft(); cancelHard() }}
		o := baseOptions(out, in)
		o.Client, o.MaxConcurrent, o.HardContext, o.Clock = ka, 16, hard, clock.Scaled(1000)
		sum, err := Run(soft, o)
		cancelSoft()
		cancelHard()
		if err != nil {
			t.Fatal(err)
		}
		if sum.ExitCode != exitcode.Interrupted {
			if sum.ExitCode != exitcode.OK {
				t.Fatalf("final run exit %d", sum.ExitCode)
			}
			break
		}
		if b, err := os.ReadFile(out); err == nil && len(b) > 1 {
			last := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
			cut := last + rng.IntN(len(b)-last)
			if err := os.Truncate(out, int64(cut)); err != nil {
				t.Fatal(err)
			}
		}
	}
	rs := byID(t, readResults(t, out))
	if len(rs) != n {
		t.Fatalf("%d results, want %d", len(rs), n)
	}
	for id, r := range rs {
		if r.Error != nil || r.Response.StatusCode != 200 {
			t.Errorf("%s: %+v", id, r.Error)
		}
	}
}

// TestRunMemoryIsFlat guards the memory bound of issue 11: the live heap
// of a run over 20,000 requests of ~1 KB is no more than that of a run
// over 2,000 plus 12 MB (holding the requests, as before streaming, costs
// about 60 MB more). The live heap after each GC (/gc/heap/live:bytes) is
// sampled while the run goes; the in-process simulator is included.
func TestRunMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("memory bound: skipped under -short")
	}
	// The simulator without simtest, which records every request.
	simSrv, err := sim.New(sim.Config{Tier: "none"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(simSrv)
	defer hs.Close()
	client := api.New(api.Options{BaseURL: hs.URL + "/v1", APIKey: "sk-test-runner-000000000000"})
	pad := strings.Repeat("lorem ipsum dolor sit amet ", 30)
	// heap returns the peak and the median of the live heap sampled
	// during a run over n requests.
	heap := func(n int) (peak, median uint64) {
		dir := t.TempDir()
		lines := make([]string, n)
		for i := range lines {
			lines[i] = fmt.Sprintf(`{"custom_id":"m%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"id:m%d %s"}],"max_tokens":1}}`, i, i, pad)
		}
		in := writeLines(t, dir, "in.jsonl", lines)
		lines = nil
		runtime.GC()
		var samples []uint64 // read after done
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
			for {
				metrics.Read(s)
				samples = append(samples, s[0].Value.Uint64())
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		o := baseOptions(dir+"/out.jsonl", in)
		o.Client, o.MaxConcurrent, o.RPM, o.TPM = client, 50, 1_000_000_000, 1_000_000_000_000
		sum, err := Run(context.Background(), o)
		runtime.GC() // one more sample after the run's garbage is gone
		close(stop)
		<-done
		if err != nil || sum.Succeeded != n {
			t.Fatalf("%v: %d of %d", err, sum.Succeeded, n)
		}
		slices.Sort(samples)
		return samples[len(samples)-1], samples[len(samples)/2]
	}
	smallPeak, small := heap(2_000)
	largePeak, large := heap(20_000)
	mb := func(v uint64) float64 { return float64(v) / 1e6 }
	t.Logf("live heap (median, peak): 2,000 requests %.1f, %.1f MB; 20,000 requests %.1f, %.1f MB", mb(small), mb(smallPeak), mb(large), mb(largePeak))
	// The typical live heap during the run is flat. On a loaded machine
	// one GC cycle can stretch and count the garbage allocated meanwhile
	// as live (seen: +13 MB at one sample), so the peak gets a wider
	// bound, still well under the ~60 MB of holding the requests.
	if large > small+12<<20 {
		t.Errorf("live heap grows with the input: median %.1f MB for 2,000 requests, %.1f MB for 20,000", mb(small), mb(large))
	}
	if largePeak > smallPeak+36<<20 {
		t.Errorf("peak live heap grows with the input: %.1f MB for 2,000 requests, %.1f MB for 20,000", mb(smallPeak), mb(largePeak))
	}
}

var _ = input.Source{}
var _ = json.Valid

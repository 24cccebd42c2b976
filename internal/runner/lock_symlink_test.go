package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// F9: two runs, one with -o link.jsonl where link.jsonl is a symlink to
// real.jsonl, which does not exist yet, and one with -o real.jsonl, share
// one lock: the second is refused (exit 1) and sends nothing, so every
// request reaches the simulator once.
func TestLockCoversSymlinkToMissingResults(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir := t.TempDir()
	const n = 6
	in := writeLines(t, dir, "in.jsonl", chatLines("s", "gpt-4o-mini", n, 5))
	real := filepath.Join(dir, "real.jsonl")
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink("real.jsonl", link); err != nil {
		t.Skip("no symlinks here:", err)
	}

	// Run 1 (through the link, which it locks while real.jsonl is still
	// missing) holds its first request until run 2 (on real.jsonl, created
	// by run 1 meanwhile) has been tried, so the two runs overlap whatever
	// the scheduling.
	bp := &blockingPoster{p: simClient(srv), release: make(chan struct{})}
	done := make(chan error, 1)
	var sum1 *Summary
	go func() {
		o := baseOptions(link, in)
		o.Client, o.RPM, o.TPM = bp, 10_000, 10_000_000
		var err error
		sum1, err = Run(context.Background(), o)
		done <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); bp.started.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			close(bp.release)
			t.Fatal("run 1 never sent")
		}
	}

	o := baseOptions(real, in)
	o.Client, o.RPM, o.TPM = simClient(srv), 10_000, 10_000_000
	sum2, err2 := Run(context.Background(), o)
	close(bp.release)
	if err := <-done; err != nil || sum1.ExitCode != exitcode.OK {
		t.Fatalf("run 1: %v (exit %d)", err, sum1.ExitCode)
	}
	if err2 == nil || sum2.ExitCode != exitcode.Failure || !strings.Contains(err2.Error(), "in use by another oairl run") {
		t.Fatalf("run 2 on the symlink's target: err %v exit %d, want a lock refusal (exit 1)", err2, sum2.ExitCode)
	}
	if !strings.Contains(err2.Error(), ".real.jsonl.lock") {
		t.Errorf("refusal does not name the shared lock: %v", err2)
	}
	if got := len(srv.Sim.Requests()); got != n {
		t.Errorf("simulator received %d requests, want %d (each once)", got, n)
	}
	if rs := byID(t, readResults(t, real)); len(rs) != n {
		t.Errorf("%d results, want %d", len(rs), n)
	}
}

// resolveOutput follows a dangling symlink chain (relative and absolute
// hops, through a symlinked directory and "..") to the file that opening
// the name would create.
func TestResolveOutputDangling(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Skip("no symlinks here:", err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
	must(os.Mkdir(filepath.Join(dir, "c"), 0o755))
	// dlink -> a/b (a directory symlink); "dlink/.." is a, not dir.
	must(os.Symlink(filepath.Join("a", "b"), filepath.Join(dir, "dlink")))
	// l1 -> dlink/../l2 (= a/l2), a/l2 -> /abs/c/final.jsonl (missing).
	must(os.Symlink("dlink/../l2", filepath.Join(dir, "l1")))
	must(os.Symlink(filepath.Join(dir, "c", "final.jsonl"), filepath.Join(dir, "a", "l2")))
	want := filepath.Join(dir, "c", "final.jsonl")
	for _, name := range []string{
		filepath.Join(dir, "l1"),
		filepath.Join(dir, "a", "l2"),
		dir + "/dlink/../l2", // not filepath.Join: that would clean ".." away
		want,
	} {
		if got := resolveOutput(name); got != want {
			t.Errorf("resolveOutput(%s) = %s, want %s", name, got, want)
		}
	}
	// A relative name resolves against the working directory.
	wd, _ := os.Getwd()
	if got, want := resolveOutput("missing.jsonl"), filepath.Join(wd, "missing.jsonl"); got != want {
		t.Errorf("resolveOutput(missing.jsonl) = %s, want %s", got, want)
	}
}

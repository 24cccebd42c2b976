package cmd

// Golden files: testdata/<TestName>.golden ("/" in subtest names becomes
// "_"). `go test ./cmd/ -update` rewrites them from the current output
// (goreleaser internal/golden). Any test in package cmd may use
// assertGolden.

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under cmd/testdata/")

// goldenDir is absolute, so tests that t.Chdir still find it.
var goldenDir = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Join(wd, "testdata")
}()

// assertGolden compares got with testdata/<t.Name()>.golden, or rewrites
// that file under -update.
func assertGolden(t *testing.T, got string) {
	t.Helper()
	path := filepath.Join(goldenDir, strings.ReplaceAll(t.Name(), "/", "_")+".golden")
	if *updateGolden {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/ -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("output differs from %s (go test ./cmd/ -update rewrites it after an intended change)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

//go:build unix

package atomicfile_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/oairl/oairl/internal/atomicfile"
)

func write(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

// New files get 0666 minus the umask (they used to be 0600 whatever the
// umask); an existing file keeps its mode.
func TestModesUnderUmask(t *testing.T) {
	for _, tc := range []struct {
		umask int
		want  os.FileMode
	}{{0o022, 0o644}, {0o077, 0o600}, {0o002, 0o664}} {
		old := syscall.Umask(tc.umask)
		dir := t.TempDir()
		p := filepath.Join(dir, "sub", "results.jsonl")
		err := atomicfile.WriteFile(p, write("a\n"))
		f, cerr := atomicfile.Create(filepath.Join(dir, "b.jsonl"))
		if cerr == nil {
			io.WriteString(f, "b\n")
			cerr = f.Commit()
		}
		syscall.Umask(old)
		if err != nil || cerr != nil {
			t.Fatal(err, cerr)
		}
		for _, q := range []string{p, filepath.Join(dir, "b.jsonl")} {
			st, err := os.Stat(q)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tc.want {
				t.Errorf("umask %03o: %s has mode %03o, want %03o", tc.umask, filepath.Base(q), st.Mode().Perm(), tc.want)
			}
		}
	}
}

func TestExistingModeKept(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(p, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o640)
	if err := atomicfile.WriteFile(p, write("new")); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	b, _ := os.ReadFile(p)
	if st.Mode().Perm() != 0o640 || string(b) != "new" {
		t.Fatalf("mode %03o content %q, want 640 \"new\"", st.Mode().Perm(), b)
	}
}

// A failed write or an Abort leaves the old content and no temporary file.
func TestFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.jsonl")
	os.WriteFile(p, []byte("old"), 0o644)
	boom := errors.New("boom")
	if err := atomicfile.WriteFile(p, func(w io.Writer) error { io.WriteString(w, "partial"); return boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	f, err := atomicfile.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "partial")
	f.Abort()
	if err := f.Commit(); err != nil { // after Abort: nothing
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	ents, _ := os.ReadDir(dir)
	if string(b) != "old" || len(ents) != 1 {
		t.Fatalf("content %q, %d entries (want the old file alone)", b, len(ents))
	}
}

//go:build windows

package atomicfile

import (
	"os"
	"path/filepath"
)

// pending is a temporary file beside the destination (renameio/v2 does
// not support Windows).
type pending struct {
	*os.File
	dest string
}

func newPending(path string) (pending, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return pending{}, err
	}
	mode := os.FileMode(0o666)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	_ = f.Chmod(mode)
	return pending{File: f, dest: path}, nil
}

func (p pending) replace() error {
	if err := p.Sync(); err != nil {
		return err
	}
	if err := p.File.Close(); err != nil {
		return err
	}
	return os.Rename(p.Name(), p.dest)
}

func (p pending) cleanup() {
	p.File.Close()
	os.Remove(p.Name())
}

// syncDir is a no-op: Windows cannot fsync a directory handle.
func syncDir(string) error { return nil }

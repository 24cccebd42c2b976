//go:build !windows

package atomicfile

import (
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// pending is renameio's PendingFile: a temporary file in the destination's
// directory, created 0666 minus the umask, or with the existing file's
// mode.
type pending struct {
	*renameio.PendingFile
}

func newPending(path string) (pending, error) {
	p, err := renameio.NewPendingFile(path,
		renameio.WithTempDir(filepath.Dir(path)),
		renameio.WithPermissions(0o666),
		renameio.WithExistingPermissions())
	return pending{p}, err
}

func (p pending) replace() error { return p.CloseAtomicallyReplace() }
func (p pending) cleanup()       { _ = p.Cleanup() }

// syncDir fsyncs a directory so that a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

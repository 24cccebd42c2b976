package runner

import (
	"path/filepath"

	"github.com/oairl/oairl/internal/exitcode"
)

// lockPath is the lock file of a results file: ".NAME.lock" beside it,
// after symlinks are resolved (two names of one file share one lock; hard
// links are covered by also locking the file itself, see lockOutput).
func lockPath(output string) string {
	if r, err := filepath.EvalSymlinks(output); err == nil {
		output = r
	}
	return filepath.Join(filepath.Dir(output), "."+filepath.Base(output)+".lock")
}

// errLocked is the error of a run refused because another run holds the
// results file (exit 1).
func errLocked(output string) error {
	return exitcode.Errorf(exitcode.Failure, "%s is in use by another oairl run (lock %s): two runs on one results file would send every request twice; wait for it to finish or use another -o", output, lockPath(output))
}

package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/gofrs/flock"

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

// lockOutput takes an exclusive, non-blocking lock (gofrs/flock: flock(2)
// on Unix, LockFileEx on Windows) on the lock file beside the results file
// (lockPath), so that two runs never append to the same results file (each
// would send every request). The operating system releases the lock when
// the process ends, even on a crash, on every platform; the lock file
// itself is left in place (removing it would race with a run that is
// opening it).
func lockOutput(output string) (func(), error) {
	p := lockPath(output)
	l := flock.New(p, flock.SetPermissions(0o666))
	ok, err := l.TryLock()
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	if !ok {
		return nil, errLocked(output)
	}
	// A hard link is another name of the same inode: lock the results file
	// itself too when it exists (flock is per inode). Not on Windows, where
	// a lock is mandatory and would block the run's own writes.
	var rl *flock.Flock
	if _, err := os.Stat(output); err == nil && runtime.GOOS != "windows" {
		rl = flock.New(output, flock.SetFlag(os.O_RDONLY))
		ok, err := rl.TryLock()
		if err != nil || !ok {
			_ = l.Unlock()
			if err != nil {
				return nil, fmt.Errorf("locking %s: %w", output, err)
			}
			return nil, errLocked(output)
		}
	}
	return func() {
		if rl != nil {
			_ = rl.Unlock()
		}
		_ = l.Unlock()
	}, nil
}

//go:build unix

package runner

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lockOutput takes an exclusive, non-blocking flock(2) on the lock file
// beside the results file (lockPath), so that two runs never append to the
// same results file (each would send every request). The lock is released
// when the process ends, even on a crash; the lock file itself is left in
// place (removing it would race with a run that is opening it).
func lockOutput(output string) (func(), error) {
	p := lockPath(output)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating the lock file %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errLocked(output)
		}
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	// A hard link is another name of the same inode: lock the results file
	// itself too when it exists (flock is per inode).
	var rf *os.File
	if g, err := os.Open(output); err == nil {
		if err := unix.Flock(int(g.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			g.Close()
			_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, errLocked(output)
			}
			return nil, fmt.Errorf("locking %s: %w", output, err)
		}
		rf = g
	}
	return func() {
		if rf != nil {
			_ = unix.Flock(int(rf.Fd()), unix.LOCK_UN)
			rf.Close()
		}
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

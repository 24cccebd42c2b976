package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/gofrs/flock"

	"github.com/oairl/oairl/internal/exitcode"
)

// lockPath is the lock file of a results file: ".NAME.lock" beside the
// file the name resolves to (resolveOutput), so that every name of one file
// shares one lock, even before the file exists (hard links are covered by
// also locking the file itself, see lockOutput).
func lockPath(output string) string {
	r := resolveOutput(output)
	return filepath.Join(filepath.Dir(r), "."+filepath.Base(r)+".lock")
}

// maxSymlinkHops bounds the symlink chain resolveOutput follows (Linux
// gives up with ELOOP after 40).
const maxSymlinkHops = 40

// resolveOutput returns the absolute path of the file that opening output
// would create or append to: the symlink chain is followed link by link
// (os.Readlink) even when its last target does not exist yet, and the
// directory part of each hop is resolved with filepath.EvalSymlinks (which
// applies ".." after resolving the links before it, as the kernel does).
// A directory that does not exist, or a chain longer than maxSymlinkHops,
// ends the resolution at the path reached so far (opening it fails anyway).
func resolveOutput(output string) string {
	p := output
	for hop := 0; ; hop++ {
		// filepath.Split, not Dir: Dir cleans "link/.." lexically, which is
		// not where the kernel goes when link is a symlink.
		dir, base := filepath.Split(p)
		if dir == "" {
			dir = "."
		}
		rdir, err := filepath.EvalSymlinks(dir)
		if err != nil {
			break
		}
		if abs, err := filepath.Abs(rdir); err == nil {
			rdir = abs
		}
		if base == "" || base == "." || base == ".." {
			p = filepath.Join(rdir, base)
			break
		}
		p = filepath.Join(rdir, base)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 || hop >= maxSymlinkHops {
			break
		}
		target, err := os.Readlink(p)
		if err != nil {
			break
		}
		if !filepath.IsAbs(target) {
			// Unclean on purpose (see Split above): the next hop resolves it.
			target = rdir + string(filepath.Separator) + target
		}
		p = target
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return p
}

// errLocked is the error of a run refused because another run holds the
// results file (exit 1).
func errLocked(output string) error {
	name := output
	if r := resolveOutput(output); r != output {
		if a, err := filepath.Abs(output); err != nil || a != r {
			name = fmt.Sprintf("%s (%s)", output, r)
		}
	}
	return exitcode.Errorf(exitcode.Failure, "%s is in use by another oairl run (lock %s): two runs on one results file would send every request twice; wait for it to finish or use another -o", name, lockPath(output))
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

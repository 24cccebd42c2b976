// Package atomicfile is oairl's one way to write a file that readers must
// never see half-written: results, failed and unmatched lines, batch job
// state, metrics. A File is written under a temporary name in the
// destination's own directory (a rename is only atomic within one file
// system), then Commit syncs it (fsync), renames it over the destination
// and syncs the directory, so that after a crash the path holds either the
// old content or the new, never a truncated file or none.
//
// Permissions: a new file gets 0666 minus the process umask (0644 under
// the usual umask 022, 0600 under 077), as a file made by os.Create would;
// replacing an existing file keeps that file's mode. Directories that do
// not exist are created with 0755 minus the umask.
//
// On Unix this is github.com/google/renameio/v2 plus a directory fsync
// (renameio leaves that to the caller); elsewhere a temporary file and
// os.Rename (Windows replaces the destination with MoveFileEx).
package atomicfile

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
)

// File is a file being written under a temporary name. Write to it, then
// Commit; Abort (or a crash) leaves the destination as it was and, except
// after a crash, no temporary file behind. Not safe for concurrent use.
type File struct {
	pending
	path string
	done bool
}

// Create starts a File for path, creating its directory if needed.
func Create(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	p, err := newPending(path)
	if err != nil {
		return nil, err
	}
	return &File{pending: p, path: path}, nil
}

// Path returns the destination path.
func (f *File) Path() string { return f.path }

// Commit syncs the file, renames it over the destination and syncs the
// directory. After a failed Commit the temporary file is removed and the
// destination is as it was (unless only the directory sync failed). A
// second Commit, or a Commit after Abort, does nothing.
func (f *File) Commit() error {
	if f.done {
		return nil
	}
	f.done = true
	if err := f.replace(); err != nil {
		f.cleanup()
		return err
	}
	return syncDir(filepath.Dir(f.path))
}

// Abort closes and removes the temporary file; it does nothing after
// Commit, so `defer f.Abort()` is the usual way to clean up on errors.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.cleanup()
}

// WriteFile writes path atomically with the content write produces
// (through a 1 MiB buffer). When write fails, path is left as it was and
// the temporary file is removed.
func WriteFile(path string, write func(io.Writer) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Commit()
}

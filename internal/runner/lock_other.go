//go:build !unix

package runner

import (
	"errors"
	"fmt"
	"os"
)

// lockOutput creates the lock file beside the results file exclusively
// (O_EXCL) and removes it on release. A crash leaves it behind: the
// message then says to delete it.
func lockOutput(output string) (func(), error) {
	p := lockPath(output)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%w (if no other run is going, delete %s)", errLocked(output), p)
	}
	if err != nil {
		return nil, fmt.Errorf("creating the lock file %s: %w", p, err)
	}
	return func() {
		f.Close()
		os.Remove(p)
	}, nil
}

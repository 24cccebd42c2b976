package batch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// Job locking. Every command that changes a job's state (submit, wait,
// status, results, cancel) holds an exclusive advisory lock (flock(2),
// through gofrs/flock) while it reads the state, talks to the server and
// saves: two `batch submit` of the same file at once, or a submit beside a
// `batch wait JOB`, used to see the same pending shard and each create a
// batch for it (billed twice; issue 14 §0). The lock is held for one step
// (a poll round, an upload and create), not while sleeping between polls,
// so a long `batch wait` never blocks `batch cancel` or `batch status`;
// each step starts by re-reading the state file, so it sees what another
// process did meanwhile.
//
// The lock file is ".FAMILY.lock" beside the state file, where FAMILY is
// the state file's name without ".json" and without a job's "-N" suffix:
// every job of one input (JOB, JOB-2, ...) shares one lock, because
// choosing the next job id reads their state files.

// lockRetry is how often a blocked lock is tried again.
const lockRetry = 20 * time.Millisecond

var jobSuffixRE = regexp.MustCompile(`^(job_[0-9a-f]{16})-[0-9]+$`)

// LockPath returns the lock file that guards the job kept in statePath.
func LockPath(statePath string) string {
	name := strings.TrimSuffix(filepath.Base(statePath), ".json")
	if m := jobSuffixRE.FindStringSubmatch(name); m != nil {
		name = m[1]
	}
	return filepath.Join(filepath.Dir(statePath), "."+name+".lock")
}

// LockState takes the exclusive lock guarding the job kept in statePath,
// waiting for another process to release it (or ctx to end). It returns
// the func that releases it.
func LockState(ctx context.Context, statePath string) (unlock func(), err error) {
	p := LockPath(statePath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	l := flock.New(p)
	ok, err := l.TryLockContext(ctx, lockRetry)
	if err != nil || !ok {
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			err = ctx.Err()
		}
		if err == nil {
			err = errors.New("not acquired")
		}
		return nil, fmt.Errorf("locking job state %s: %w", statePath, err)
	}
	return func() { _ = l.Unlock() }, nil
}

// lock takes the job's lock and re-reads its state file into j (a job not
// backed by a file is not locked). Call the returned func to release it.
func (j *Job) lock(ctx context.Context) (unlock func(), err error) {
	if j.path == "" {
		return func() {}, nil
	}
	unlock, err = LockState(ctx, j.path)
	if err != nil {
		return nil, err
	}
	fresh, err := LoadJob(j.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return unlock, nil // not saved yet: j is the newest
		}
		unlock()
		return nil, err
	}
	*j = *fresh
	return unlock, nil
}

// WithLock runs fn holding the job's lock, after re-reading its state file
// into j (see LockState). A job not backed by a file runs fn unlocked.
func (j *Job) WithLock(ctx context.Context, fn func() error) error {
	unlock, err := j.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

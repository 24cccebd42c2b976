// Package exitcode defines oairl's process exit codes, shared by every
// command and fixed for good (scripts and CI depend on them), and an error
// type that carries one.
//
//	0   OK          success
//	1   Failure     any other failure
//	2   Usage       bad flags or arguments
//	3   Input       invalid input: lines the API would reject, an unreadable saved response
//	4   Auth        401/403, model not found or not allowed
//	5   Quota       insufficient_quota and the billing codes
//	6   RateLimited still rate-limited after retries, or a limit that will not clear soon
//	7   Partial     some requests failed; results were written
//	8   Pending     a batch is still pending
//	130 Interrupted interrupted (state saved)
//
// When several apply, the worst wins (Worst).
package exitcode

import (
	"errors"
	"fmt"
)

// Exit codes. Never renumber.
const (
	OK          = 0
	Failure     = 1
	Usage       = 2
	Input       = 3
	Auth        = 4
	Quota       = 5
	RateLimited = 6
	Partial     = 7
	Pending     = 8
	Interrupted = 130
)

// severity orders codes for Worst: interrupted beats everything, then
// account problems, limits, input, partial, pending, generic failure.
var severity = map[int]int{
	OK: 0, Pending: 1, Partial: 2, Failure: 3, Input: 4, RateLimited: 5,
	Usage: 6, Auth: 7, Quota: 8, Interrupted: 9,
}

// Worst returns the most severe of the codes (OK when none is given).
func Worst(codes ...int) int {
	w := OK
	for _, c := range codes {
		if severity[c] > severity[w] {
			w = c
		}
	}
	return w
}

// Error is an error that carries an exit code. The message is the wrapped
// error's; a nil Err with a code means "exit with this code, nothing more
// to say" (the command already printed what mattered).
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// New wraps err with code. New(code, nil) is a silent exit with code.
func New(code int, err error) error { return &Error{Code: code, Err: err} }

// Errorf formats an error that carries code.
func Errorf(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Of returns the exit code err carries: OK for nil, the code of the first
// *Error in its chain, else Failure.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Failure
}

// Help is the text of `oairl help exit-codes`.
const Help = `oairl exits with one of these codes, the same for every command. They are
fixed: scripts and CI may depend on them. When several apply, the worst wins
(130 > 5 > 4 > 2 > 6 > 3 > 1 > 7 > 8 > 0).

  0    success
  1    any other failure: the API cannot be reached, a file cannot be read or
       is locked by another run, a server error outside run (run exits 7 when
       results were written and some requests failed after their retries)
  2    usage: bad flags or arguments
  3    invalid input: lines the API would reject (count, batch submit; run
       reports and skips them, sends the valid lines and still exits 3 — they
       have no line in the results file; --strict sends nothing), or a saved
       response that cannot be read (diagnose --from)
  4    auth: 401/403, wrong organization or project, model not found or not
       allowed for this key
  5    quota or billing: insufficient_quota, credit_balance_exhausted, spend or
       usage limits, billing_hard_limit_reached. Waiting will not fix these.
  6    rate-limited: still limited after the retries, or a limit that will not
       clear soon (a daily limit, a Retry-After above --max-wait)
  7    partial: some requests failed; the results file has one line for each,
       with the error (invalid input lines are 3, not 7)
  8    a batch is still pending (batch wait --timeout)
  130  interrupted (Ctrl-C); state was saved, rerun the same command to resume
`

package input

// STUB: replaced by the real implementation (input/count helper).

import (
	"context"
	"errors"
)

// Scan reads every source in order, validates and counts each line, and
// calls fn once per non-blank line, in input order (even though counting
// runs on Workers goroutines), with cross-line checks (duplicate
// custom_id, one endpoint) already applied. Memory stays bounded whatever
// the file size. fn returning an error stops the scan with that error. A
// source that cannot be opened or read is an error naming it.
func Scan(ctx context.Context, sources []Source, opts Options, fn func(*Request) error) (Summary, error) {
	return Summary{}, errors.New("input.Scan not implemented yet")
}

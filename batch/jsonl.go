package batch

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

var bom = []byte{0xEF, 0xBB, 0xBF}

// readLines calls fn for every non-blank line of r with its physical
// 1-based line number, tolerating what real files contain: a UTF-8 BOM at
// byte 0, CRLF endings, trailing whitespace and blank or whitespace-only
// lines (case B06; the same tolerance applies to result files). Lines may
// be of any length. The slice passed to fn is valid only during the call.
func readLines(r io.Reader, fn func(line int, b []byte) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	n := 0
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, chunk...)
			continue
		}
		line := chunk
		if len(long) > 0 {
			long = append(long, chunk...)
			line = long
		}
		if len(line) > 0 {
			n++
			if n == 1 {
				line = bytes.TrimPrefix(line, bom)
			}
			line = bytes.TrimRight(line, " \t\r\n")
			if len(bytes.TrimLeft(line, " \t")) > 0 {
				if ferr := fn(n, line); ferr != nil {
					return ferr
				}
			}
		}
		long = long[:0]
		if cap(long) > 4<<20 {
			long = nil // do not keep a huge buffer for short lines
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

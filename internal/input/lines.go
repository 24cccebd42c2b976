package input

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
)

// physLine is one physical line of a source, as read.
type physLine struct {
	n       int    // 1-based physical line number
	off     int64  // offset of its first byte in the (decompressed) stream
	data    []byte // without the line ending and trailing whitespace; owned
	crlf    bool   // ended with "\r\n"
	size    int64  // bytes on disk including the ending (for the 200 MB check)
	tooLong bool   // longer than the limit: data holds only the first bytes
	lastEOF bool   // the last line of the file had no newline
}

// lineReader splits a stream into physical lines with bufio.Reader (no
// token limit: a line may be hundreds of MB), keeping at most max bytes
// of any one line in memory.
//
// When the stream is a plain file (ra set), a line that grows past
// spillBytes is not accumulated: the reader streams on to its end to
// learn its length, then reads it in one exact-size allocation with
// ReadAt (no growth copies), or, when it is over max, skips it having
// held only a short prefix. A compressed or piped stream's long line is
// spilled to a temporary file instead, and read back the same way (or
// deleted unread when over max); if no temporary file can be created, it
// is accumulated in memory.
type lineReader struct {
	br   *bufio.Reader
	n    int
	max  int
	err  error
	bomN int // 1 when a UTF-8 BOM was stripped at byte 0
	ra   io.ReaderAt
	off  int64 // bytes of the stream consumed so far
	// noSpill is set once a temporary file could not be created.
	noSpill bool
}

func (lr *lineReader) spillOK() bool { return !lr.noSpill }

// spillBytes is the line length (bytes) from which a plain file's line is
// measured first and then read in one piece.
const spillBytes = 1 << 20

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next physical line, or ok false at the end of input
// (lr.err then holds a read error, if any).
func (lr *lineReader) next() (physLine, bool) {
	if lr.err != nil {
		return physLine{}, false
	}
	var buf []byte
	var size int64
	start := lr.off
	tooLong, spilled := false, false
	var tmp *os.File // the spill file of a non-seekable stream's long line
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	for {
		chunk, err := lr.br.ReadSlice('\n')
		size += int64(len(chunk))
		lr.off += int64(len(chunk))
		switch {
		case tooLong:
			// only measuring: nothing kept past the prefix
		case spilled:
			if size > int64(lr.max)+2 {
				tooLong = true // stop writing: it will be skipped
			} else if tmp != nil {
				if _, err := tmp.Write(chunk); err != nil {
					lr.err = err
					return physLine{}, false
				}
			}
		case len(buf)+len(chunk) > lr.max+2: // +2: the line ending is not content
			// Keep only a short prefix (for the message), never the line.
			room := tooLongPrefix - len(buf)
			if room > len(chunk) {
				room = len(chunk)
			}
			if room > 0 {
				buf = append(buf, chunk[:room]...)
			} else if len(buf) > tooLongPrefix {
				buf = buf[:tooLongPrefix:tooLongPrefix]
			}
			tooLong = true
		case len(buf)+len(chunk) > spillBytes && (lr.ra != nil || lr.spillOK()):
			if lr.ra == nil {
				f, err := os.CreateTemp("", "oairl-line-*")
				if err != nil {
					lr.noSpill = true
					buf = append(buf, chunk...)
					break
				}
				tmp = f
				if _, err := tmp.Write(buf); err == nil {
					_, err = tmp.Write(chunk)
				}
				if err != nil {
					lr.err = err
					return physLine{}, false
				}
			}
			spilled = true
			if len(buf) > tooLongPrefix {
				buf = append([]byte(nil), buf[:tooLongPrefix]...)
			}
		default:
			buf = append(buf, chunk...)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != io.EOF {
			lr.err = err
			return physLine{}, false
		}
		if size == 0 {
			return physLine{}, false
		}
		break
	}
	if spilled {
		if size > int64(lr.max)+2 {
			tooLong = true
		} else {
			full := make([]byte, size)
			var src io.ReaderAt = lr.ra
			off := start
			if tmp != nil {
				src, off = tmp, 0
			}
			if _, err := src.ReadAt(full, off); err != nil && !(errors.Is(err, io.EOF)) {
				lr.err = err
				return physLine{}, false
			}
			buf = full
		}
	}
	lr.n++
	pl := physLine{n: lr.n, off: start, size: size, tooLong: tooLong}
	if lr.n == 1 && bytes.HasPrefix(buf, bom) {
		buf = buf[len(bom):]
		lr.bomN = 1
	}
	if !tooLong {
		if bytes.HasSuffix(buf, []byte("\r\n")) {
			pl.crlf = true
			buf = buf[:len(buf)-2]
		} else if bytes.HasSuffix(buf, []byte("\n")) {
			buf = buf[:len(buf)-1]
		} else {
			pl.lastEOF = true
		}
		buf = bytes.TrimRight(buf, " \t\r")
	} else if len(buf) > tooLongPrefix {
		buf = append([]byte(nil), buf[:tooLongPrefix]...)
	}
	pl.data = buf
	return pl, true
}

// tooLongPrefix is how much of a too-long line is kept (bytes).
const tooLongPrefix = 1024

var bom = []byte{0xEF, 0xBB, 0xBF}

// depthScan walks a line as JSON text, tracking strings and the stack of
// open brackets, continuing from stack (for continuation lines). It
// returns the stack at the end of the line (non-empty: an object or array
// is still open), whether the line ended inside a string, and whether a
// bracket closed something it did not open (bad).
func depthScan(b []byte, stack []byte) (out []byte, inString, bad bool) {
	esc := false
	for _, c := range b {
		if inString {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			stack = append(stack, c)
		case '}', ']':
			open := byte('{')
			if c == ']' {
				open = '['
			}
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return stack, inString, true
			}
			stack = stack[:len(stack)-1]
		}
	}
	return stack, inString, bad
}

// opensBlock reports whether a line starts an object or array that it does
// not close: the first line of a pretty-printed record.
func opensBlock(b []byte) bool {
	t := bytes.TrimLeft(b, " \t")
	if len(t) == 0 || (t[0] != '{' && t[0] != '[') {
		return false
	}
	st, inStr, bad := depthScan(t, nil)
	return len(st) > 0 && !inStr && !bad
}

// looksLikeRecord reports whether a line, met while collecting a
// pretty-printed block, is instead a fresh one-line record: it starts at
// column 0 with '{' or '[' and is complete (and not empty) on its own.
// Pretty-printers split every non-empty nested object over several lines,
// so a complete one-line object at column 0 is never inside a block.
func looksLikeRecord(b []byte) bool {
	if len(b) < 3 || (b[0] != '{' && b[0] != '[') {
		return false
	}
	st, inStr, bad := depthScan(b, nil)
	return len(st) == 0 && !inStr && !bad
}

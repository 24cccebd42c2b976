// Package extsort sorts and spools fixed-width records of any number in
// bounded memory, on disk: a Sorter buffers records, writes them out in
// sorted runs to unlinked temporary files and merges the runs when read; a
// Spool is an append-only record file read back once in order. oairl run
// (the job spool, --ordered) and batch results (the join of outputs with
// the input) use them so that memory does not grow with the input.
package extsort

import (
	"bufio"
	"container/heap"
	"errors"
	"io"
	"os"
	"slices"
)

// DefaultRunRecords is how many records an Sorter sorts in memory before
// writing them out as one sorted run (a few MB).
var DefaultRunRecords = 128 << 10

// Sorter sorts fixed-width records of any number in bounded memory:
// records are buffered, sorted and written to unlinked temporary files in
// runs, and each merges the runs. Equal records keep their insertion order.
type Sorter[T any] struct {
	dir   string
	width int
	enc   func([]byte, T)
	dec   func([]byte) T
	cmp   func(a, b T) int
	Max   int // records sorted in memory per run (default DefaultRunRecords)
	buf   []T
	runs  []*os.File
	n     int64 // records added
}

func New[T any](dir string, width int, enc func([]byte, T), dec func([]byte) T, cmp func(a, b T) int) *Sorter[T] {
	return &Sorter[T]{dir: dir, width: width, enc: enc, dec: dec, cmp: cmp, Max: DefaultRunRecords}
}

func (s *Sorter[T]) Add(v T) error {
	s.buf = append(s.buf, v)
	s.n++
	if len(s.buf) >= s.Max {
		return s.spill()
	}
	return nil
}

// TempFile creates a temporary file in dir (the results file's directory,
// not /tmp, which may be a small tmpfs in memory) and unlinks it at once
// where the system allows it, so that nothing is left behind.
func TempFile(dir, pattern string) (*os.File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name()) // POSIX: the open file lives on, unnamed
	return f, nil
}

func (s *Sorter[T]) spill() error {
	slices.SortStableFunc(s.buf, s.cmp)
	f, err := TempFile(s.dir, ".oairl-sort-*")
	if err != nil {
		return err
	}
	s.runs = append(s.runs, f)
	bw := bufio.NewWriterSize(f, 256<<10)
	rec := make([]byte, s.width)
	for _, v := range s.buf {
		s.enc(rec, v)
		if _, err := bw.Write(rec); err != nil {
			return err
		}
	}
	s.buf = s.buf[:0]
	return bw.Flush()
}

// Each calls fn with every record in sorted order (equal records in the
// order added); fn returning an error stops it with that error. Call Each
// or Reader once.
func (s *Sorter[T]) Each(fn func(T) error) error {
	rd, err := s.Reader()
	if err != nil {
		return err
	}
	for {
		v, ok, err := rd.Next()
		if err != nil || !ok {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
	}
}

// Reader returns an Sorter's records one by one, in order.
type Reader[T any] struct {
	s    *Sorter[T]
	mem  []T // no runs: the sorted buffer
	h    *mergeHeap[T]
	head *runCursor[T] // returned last; advanced on the next call
}

// Reader starts reading the records in sorted order; call it once.
func (s *Sorter[T]) Reader() (*Reader[T], error) {
	rd := &Reader[T]{s: s}
	if len(s.runs) == 0 {
		slices.SortStableFunc(s.buf, s.cmp)
		rd.mem = s.buf
		return rd, nil
	}
	if len(s.buf) > 0 {
		if err := s.spill(); err != nil {
			return nil, err
		}
	}
	s.buf = nil
	rd.h = &mergeHeap[T]{cmp: s.cmp}
	for i, f := range s.runs {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		c := &runCursor[T]{r: bufio.NewReaderSize(f, 64<<10), rec: make([]byte, s.width), i: i}
		ok, err := c.next(s.dec)
		if err != nil {
			return nil, err
		}
		if ok {
			rd.h.c = append(rd.h.c, c)
		}
	}
	heap.Init(rd.h)
	return rd, nil
}

func (rd *Reader[T]) Next() (v T, ok bool, err error) {
	if rd.h == nil {
		if len(rd.mem) == 0 {
			return v, false, nil
		}
		v, rd.mem = rd.mem[0], rd.mem[1:]
		return v, true, nil
	}
	if c := rd.head; c != nil {
		rd.head = nil
		more, err := c.next(rd.s.dec)
		if err != nil {
			return v, false, err
		}
		if more {
			heap.Fix(rd.h, 0)
		} else {
			heap.Pop(rd.h)
		}
	}
	if rd.h.Len() == 0 {
		return v, false, nil
	}
	rd.head = rd.h.c[0]
	return rd.head.v, true, nil
}

func (s *Sorter[T]) Close() {
	for _, f := range s.runs {
		f.Close()
		_ = os.Remove(f.Name())
	}
	s.runs, s.buf = nil, nil
}

type runCursor[T any] struct {
	r   *bufio.Reader
	rec []byte
	v   T
	i   int
}

func (c *runCursor[T]) next(dec func([]byte) T) (bool, error) {
	if _, err := io.ReadFull(c.r, c.rec); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, err
	}
	c.v = dec(c.rec)
	return true, nil
}

type mergeHeap[T any] struct {
	c   []*runCursor[T]
	cmp func(a, b T) int
}

func (h *mergeHeap[T]) Len() int { return len(h.c) }
func (h *mergeHeap[T]) Less(i, j int) bool {
	if c := h.cmp(h.c[i].v, h.c[j].v); c != 0 {
		return c < 0
	}
	return h.c[i].i < h.c[j].i // earlier run first: stable
}
func (h *mergeHeap[T]) Swap(i, j int) { h.c[i], h.c[j] = h.c[j], h.c[i] }
func (h *mergeHeap[T]) Push(x any)    { h.c = append(h.c, x.(*runCursor[T])) }
func (h *mergeHeap[T]) Pop() any {
	x := h.c[len(h.c)-1]
	h.c = h.c[:len(h.c)-1]
	return x
}

// Spool is an append-only file of fixed-width records, read back once in
// the order written.
type Spool[T any] struct {
	f     *os.File
	w     *bufio.Writer
	width int
	enc   func([]byte, T)
	dec   func([]byte) T
	rec   []byte
	n     int64 // records added
}

func NewSpool[T any](dir string, width int, enc func([]byte, T), dec func([]byte) T) (*Spool[T], error) {
	f, err := TempFile(dir, ".oairl-jobs-*")
	if err != nil {
		return nil, err
	}
	return &Spool[T]{f: f, w: bufio.NewWriterSize(f, 256<<10), width: width, enc: enc, dec: dec, rec: make([]byte, width)}, nil
}

func (s *Spool[T]) Add(v T) error {
	s.enc(s.rec, v)
	s.n++
	_, err := s.w.Write(s.rec)
	return err
}

// each calls fn with every record in the order written; fn returning an
// error stops it with that error.
func (s *Spool[T]) Each(fn func(T) error) error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	br := bufio.NewReaderSize(s.f, 256<<10)
	rec := make([]byte, s.width)
	for {
		if _, err := io.ReadFull(br, rec); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := fn(s.dec(rec)); err != nil {
			return err
		}
	}
}

func (s *Spool[T]) Close() {
	if s == nil || s.f == nil {
		return
	}
	s.f.Close()
	_ = os.Remove(s.f.Name())
	s.f = nil
}

// Len is the number of records added.
func (s *Sorter[T]) Len() int64 { return s.n }

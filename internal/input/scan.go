package input

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/oairl/oairl/internal/humanize"
	"github.com/oairl/oairl/tokens"
)

// Batch API file limits. Source: OpenAI's OpenAPI spec, CreateBatchRequest
// input_file_id ("up to 50,000 requests and 200 MB", shared/spec/NOTES.md
// §2) and the observed upload error "The batch input file is larger than
// the 209715200 maximum" (shared/research/wire-formats.md §1.6).
const (
	BatchMaxRequests = 50_000
	BatchMaxBytes    = 209_715_200 // bytes (200 MiB)
)

// DefaultMaxLineBytes is the longest line Scan reads into memory (bytes):
// a line longer than a whole Batch input file can never be sent, so it is
// reported (line_too_large) and skipped without being held in memory.
const DefaultMaxLineBytes = BatchMaxBytes

// batchMaxBytes is BatchMaxBytes, a variable so tests can lower it.
var batchMaxBytes int64 = BatchMaxBytes

// inflightBytes bounds the bytes of lines read but not yet delivered, across
// all workers (a line larger than this is processed alone).
const inflightBytes = 24 << 20

// maxBlockLines caps how many lines a pretty-printed object may span
// before Scan gives up joining them.
const maxBlockLines = 100_000

// item is one unit of work: a record (a line, or a pretty-printed block of
// lines) or the end-of-file marker of a source, in input order.
type item struct {
	file    int
	line    int
	endLine int
	raw     []byte
	pretty  bool // lines line..endLine joined (a pretty-printed object)
	unterm  bool // a block the file ended inside
	tooLong bool
	size    int64 // bytes on disk
	off     int64 // offset of the first line in the (decompressed) stream

	eof *fileStats // non-nil: the end-of-file marker of a source

	done chan struct{}
	req  *Request
	// Set by the worker for the ordered stage.
	idKind   idKind
	endpoint string // exact Batch endpoint of the line's url, "" if wrong
	envelope bool
}

type idKind int

const (
	idNone idKind = iota // no usable custom_id (missing, not a string, bare line)
	idString
	idAuto // the "line-N" id of a bare body (AutoID)
)

// fileStats is what the reader learned about one source.
type fileStats struct {
	name      string
	bom       bool
	crlfLine  int   // first line that ended with CRLF (0 = none)
	blank     []int // first blank lines (at most maxListed)
	blankN    int
	bytes     int64 // uncompressed bytes
	skipped   *Problem
	extra     []Problem // more file-level findings (gzip_without_gz_extension)
	requests  int
	envelopes int
	over      int // line of the 50,001st request (0 = none)
}

const maxListed = 20

// Scan reads every source in order, validates and counts each line, and
// calls fn once per non-blank line, in input order (even though counting
// runs on Workers goroutines), with cross-line checks (duplicate
// custom_id, one endpoint) already applied. Memory stays bounded whatever
// the file size and line length: at most a few dozen lines per worker
// (and at most inflightBytes, 24 MB, of line bytes) are in flight; a line
// of a quarter of that or more is alone in flight (the next is read only
// once it is delivered), is read in one exact-size allocation (lineReader)
// and a line over MaxLineBytes is skipped without being held; plus 16
// bytes per custom_id seen, for the duplicate check. fn returning an error
// stops the scan with that error. A source that cannot be opened or read
// is an error naming it (or, with Options.KeepGoing, an unreadable_file
// file problem, and the scan goes on); Scan checks that every source can
// be opened before it reads any, so a typo in the third file name costs
// no work.
func Scan(ctx context.Context, sources []Source, opts Options, fn func(*Request) error) (Summary, error) {
	var sum Summary
	if len(sources) == 0 {
		return sum, errors.New("no input files")
	}
	unreadable := map[int]error{} // sources skipped up front (KeepGoing)
	for i, s := range sources {
		if s.Name == "-" {
			continue
		}
		st, err := os.Stat(s.Name)
		if err == nil && st.IsDir() {
			err = fmt.Errorf("cannot read %s: it is a directory", s.Name)
		} else if err != nil {
			err = fmt.Errorf("cannot open %s: %w", s.Name, unwrapPath(err))
		}
		if err != nil {
			if !opts.KeepGoing {
				return sum, err
			}
			unreadable[i] = err
		}
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	maxLine := opts.MaxLineBytes
	if maxLine <= 0 {
		maxLine = DefaultMaxLineBytes
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inflight := workers * 32
	order := make(chan *item, inflight)
	jobs := make(chan *item, inflight)
	budget := newBudget(inflightBytes)

	p := &parser{opts: opts, sources: sources}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range jobs {
				p.process(it)
				close(it.done)
			}
		}()
	}
	var readErr error
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(jobs)
		defer close(order)
		r := &reader{opts: opts, maxLine: maxLine, ctx: ctx, budget: budget, unreadable: unreadable,
			emit: func(it *item) bool {
				it.done = make(chan struct{})
				select {
				case order <- it:
				case <-ctx.Done():
					return false
				}
				if it.eof != nil {
					close(it.done)
					return true
				}
				select {
				case jobs <- it:
					return true
				case <-ctx.Done():
					return false
				}
			}}
		readErr = r.run(sources)
	}()

	st := &ordered{opts: opts, seed: maphash.MakeSeed(), ids: map[uint64]uint64{},
		norm: map[uint64]uint64{}, sources: sources}
	var fnErr error
	for it := range order {
		select {
		case <-it.done:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if it.eof != nil {
			sum.FileProblems = append(sum.FileProblems, st.endFile(it.eof)...)
			sum.Bytes += it.eof.bytes
			continue
		}
		req := it.req
		st.crossCheck(it)
		sum.Requests++
		if req.Valid() {
			sum.Valid++
		}
		budget.release(int64(len(it.raw)))
		if err := fn(req); err != nil {
			fnErr = err
			break
		}
	}
	cancel()
	for range order { // let the reader finish after an early stop
	}
	<-readDone
	wg.Wait()
	if fnErr != nil {
		return sum, fnErr
	}
	if readErr != nil {
		return sum, readErr
	}
	if err := parent.Err(); err != nil {
		return sum, err
	}
	return sum, nil
}

// unreadableProblem is the unreadable_file error of a source that could
// not be opened or read (after lines lines were read).
func unreadableProblem(name string, err error, lines int) *Problem {
	msg := err.Error()
	if lines > 0 {
		msg = fmt.Sprintf("%s; reading stopped after line %d (the lines before it are counted)", msg, lines)
	} else {
		msg += "; nothing of it is counted"
	}
	return &Problem{File: name, Severity: tokens.Error, Code: "unreadable_file", Message: msg}
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// budget bounds the bytes of lines in flight. A line larger than the whole
// budget may still go when nothing else is in flight.
type budget struct {
	mu   sync.Mutex
	cond *sync.Cond
	used int64
	max  int64
}

func newBudget(max int64) *budget {
	b := &budget{max: max}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *budget) acquire(ctx context.Context, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.used > 0 && b.used+n > b.max {
		if ctx.Err() != nil {
			return false
		}
		b.cond.Wait()
	}
	b.used += n
	return true
}

// waitIdle waits until no bytes are in flight; false when ctx is done.
func (b *budget) waitIdle(ctx context.Context) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.used > 0 {
		if ctx.Err() != nil {
			return false
		}
		b.cond.Wait()
	}
	return ctx.Err() == nil
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}

// reader turns sources into items: physical lines, blank lines skipped,
// pretty-printed blocks joined.
type reader struct {
	opts    Options
	maxLine int
	ctx     context.Context
	budget  *budget
	emit    func(*item) bool
	read    int64 // bytes read on disk, all sources (for Progress)
	// unreadable are the sources Scan found it cannot open (KeepGoing).
	unreadable map[int]error
}

func (r *reader) run(sources []Source) error {
	stop := context.AfterFunc(r.ctx, func() {
		// Under the lock, so a reader between its ctx check and Wait
		// cannot miss the wake-up.
		r.budget.mu.Lock()
		r.budget.cond.Broadcast()
		r.budget.mu.Unlock()
	})
	defer stop()
	for i, s := range sources {
		if r.ctx.Err() != nil {
			return nil
		}
		if err, bad := r.unreadable[i]; bad {
			r.emit(&item{file: i, eof: &fileStats{name: s.Name, skipped: unreadableProblem(s.Name, err, 0)}})
			continue
		}
		if err := r.runOne(i, s); err != nil {
			if !r.opts.KeepGoing || r.ctx.Err() != nil {
				return err
			}
			// runOne failed before reading any line (gzip header, .gz
			// name): a file-level problem, then the next source.
			r.emit(&item{file: i, eof: &fileStats{name: s.Name, skipped: unreadableProblem(s.Name, err, 0)}})
		}
	}
	return nil
}

// countingReader reports bytes read on disk to Options.Progress.
type countingReader struct {
	r        io.Reader
	rd       *reader
	reported int64
	n        int64 // bytes read from this source
}

// Gzip bombs: a gzip source that expands more than MaxGzipRatio times
// once past MaxGzipFloor bytes is refused (unreadable_file), so 1 MB of
// gzip holding 1 GB of newlines stops after ~32 MB instead of running for
// a minute and a half. Real JSONL compresses 5–20× (even identical
// prompts differing only in custom_id stay far under 200×); the Batch API
// takes at most 200 MB per file.
const (
	MaxGzipRatio = 200
	MaxGzipFloor = 32 << 20
)

// ratioGuard fails a decompressed stream that outgrows its source.
type ratioGuard struct {
	r    io.Reader
	comp *countingReader
	out  int64
}

func (g *ratioGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	g.out += int64(n)
	if g.out > MaxGzipFloor && g.out > MaxGzipRatio*max(g.comp.n, 1) {
		return n, fmt.Errorf("its gzip data expands more than %d× (%s compressed → over %s so far): a decompression bomb or an unusually repetitive file; if it is genuine, decompress it and pass the plain file",
			MaxGzipRatio, humanBytes(g.comp.n), humanBytes(g.out))
	}
	return n, err
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.rd.read += int64(n)
	if c.rd.opts.Progress != nil && (c.rd.read-c.reported >= 1<<20 || err != nil) {
		c.reported = c.rd.read
		c.rd.opts.Progress(c.rd.read)
	}
	return n, err
}

// uncompressedCounter counts the bytes of the decompressed stream.
type uncompressedCounter struct {
	r io.Reader
	n int64
}

func (c *uncompressedCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (r *reader) runOne(idx int, s Source) error {
	var src io.Reader
	var ra io.ReaderAt // the plain file, for lineReader's exact reads
	if s.Name == "-" {
		if r.opts.Stdin == nil {
			return fmt.Errorf("cannot read -: no standard input")
		}
		src = r.opts.Stdin
	} else {
		fh, err := os.Open(s.Name)
		if err != nil {
			return fmt.Errorf("cannot open %s: %w", s.Name, unwrapPath(err))
		}
		defer fh.Close()
		src = fh
		if st, err := fh.Stat(); err == nil && st.Mode().IsRegular() {
			ra = fh
		}
	}
	cr := &countingReader{r: src, rd: r}
	br := bufio.NewReaderSize(cr, 64<<10)
	st := &fileStats{name: s.Name}
	var body io.Reader = br
	head, _ := br.Peek(4)
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b: // gzip magic, whatever the name
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", s.Name, err)
		}
		defer zr.Close()
		body = &ratioGuard{r: zr, comp: cr}
		if s.Name != "-" && !strings.HasSuffix(strings.ToLower(s.Name), ".gz") {
			st.extra = append(st.extra, Problem{File: s.Name, Severity: tokens.Warning, Code: "gzip_without_gz_extension",
				Message: "file is gzip-compressed but its name does not end in .gz; oairl reads it, but the Batch API would reject this upload (it wants plain JSONL): decompress it, or name it .gz"})
		}
	case strings.HasSuffix(s.Name, ".gz"):
		return fmt.Errorf("cannot read %s: named .gz but not gzip-compressed", s.Name)
	case len(head) >= 2 && ((head[0] == 0xFF && head[1] == 0xFE) || (head[0] == 0xFE && head[1] == 0xFF)):
		st.skipped = &Problem{File: s.Name, Line: 1, Severity: tokens.Error, Code: "not_utf8",
			Message: "file is UTF-16 (it starts with a UTF-16 byte-order mark); the API reads UTF-8 only: convert it, e.g. iconv -f UTF-16 -t UTF-8"}
		if !r.emit(&item{file: idx, eof: st}) {
			return nil
		}
		return nil
	}
	if r.opts.Spill != nil && (body != io.Reader(br) || ra == nil) {
		// Compressed or piped: the caller keeps a copy of the decompressed
		// stream to read requests back by offset (Request.Offset).
		w, err := r.opts.Spill(idx)
		if err != nil {
			return fmt.Errorf("cannot copy %s: %w", s.Name, err)
		}
		body = io.TeeReader(body, w)
	}
	uc := &uncompressedCounter{r: body}
	lr := newLineReader(uc, r.maxLine)
	if body == io.Reader(br) {
		lr.ra = ra // not compressed: stream offsets are file offsets
	}
	err := r.lines(idx, lr, st)
	st.bytes = uc.n
	st.bom = lr.bomN == 1
	if err != nil {
		return err
	}
	if lr.err != nil {
		err := fmt.Errorf("cannot read %s: %w", s.Name, lr.err)
		if !r.opts.KeepGoing {
			return err
		}
		st.skipped = unreadableProblem(s.Name, err, lr.n)
	}
	r.emit(&item{file: idx, eof: st})
	return nil
}

// lines reads the physical lines of one source and emits records.
func (r *reader) lines(idx int, lr *lineReader, st *fileStats) error {
	var pending []physLine // lines to re-process (after a block gave up)
	nextLine := func() (physLine, bool) {
		if len(pending) > 0 {
			pl := pending[0]
			pending = pending[1:]
			return pl, true
		}
		pl, ok := lr.next()
		if ok && pl.crlf && st.crlfLine == 0 {
			st.crlfLine = pl.n
		}
		return pl, ok
	}
	send := func(it *item) bool {
		if !r.budget.acquire(r.ctx, int64(len(it.raw))) {
			return false
		}
		it.file = idx
		st.requests++
		if st.requests == BatchMaxRequests+1 {
			st.over = it.line
		}
		if !r.emit(it) {
			return false
		}
		// After a big line (a quarter of the in-flight budget or more), read
		// nothing more until it is delivered: two big lines are never in
		// memory at once.
		if int64(len(it.raw)) >= inflightBytes/4 {
			return r.budget.waitIdle(r.ctx)
		}
		return true
	}
	for {
		pl, ok := nextLine()
		if !ok {
			return nil
		}
		if pl.tooLong {
			if !send(&item{line: pl.n, endLine: pl.n, raw: pl.data, tooLong: true, size: pl.size}) {
				return nil
			}
			continue
		}
		if len(bytes.TrimSpace(pl.data)) == 0 {
			if len(st.blank) < maxListed {
				st.blank = append(st.blank, pl.n)
			}
			st.blankN++
			continue
		}
		if !opensBlock(pl.data) {
			if !send(&item{line: pl.n, endLine: pl.n, raw: pl.data, size: pl.size, off: pl.off}) {
				return nil
			}
			continue
		}
		// A line that opens an object it does not close: collect lines
		// until the brackets balance (a pretty-printed record), a fresh
		// one-line record appears (the first line was cut short), the file
		// ends, or the block grows past the limits.
		block := []physLine{pl}
		stack, _, _ := depthScan(bytes.TrimLeft(pl.data, " \t"), nil)
		total := len(pl.data)
		closed, fresh := false, false
		for {
			nl, ok := nextLine()
			if !ok {
				break
			}
			if nl.tooLong || looksLikeRecord(nl.data) {
				pending = append(pending, nl)
				fresh = true
				break
			}
			block = append(block, nl)
			total += len(nl.data) + 1
			var bad bool
			stack, _, bad = depthScan(nl.data, stack)
			if len(stack) == 0 || bad {
				closed = true
				break
			}
			if len(block) >= maxBlockLines || total > r.maxLine {
				break
			}
		}
		switch {
		case closed:
			joined := joinLines(block)
			var size int64
			for _, b := range block {
				size += b.size
			}
			if !send(&item{line: block[0].n, endLine: block[len(block)-1].n, raw: joined, pretty: true, size: size, off: block[0].off}) {
				return nil
			}
		case !fresh && len(block) > 1 && len(block) < maxBlockLines && total <= r.maxLine:
			// The file ended inside the block: one problem for all of it.
			if !send(&item{line: block[0].n, endLine: block[len(block)-1].n, raw: joinLines(block), pretty: true, unterm: true}) {
				return nil
			}
		default:
			// Not a pretty-printed record after all: the first line stands
			// alone (and fails as cut short); the rest are read again.
			if !send(&item{line: block[0].n, endLine: block[0].n, raw: block[0].data, size: block[0].size, off: block[0].off}) {
				return nil
			}
			pending = append(append([]physLine{}, block[1:]...), pending...)
		}
	}
}

func joinLines(ls []physLine) []byte {
	var b bytes.Buffer
	for i, l := range ls {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.Write(l.data)
	}
	return b.Bytes()
}

// ordered holds the cross-line state, touched only by Scan's goroutine.
type ordered struct {
	opts    Options
	sources []Source
	seed    maphash.Seed
	// ids maps the 64-bit hash of each custom_id to where it was first
	// used (file<<32 | line). Two different ids with the same hash would
	// be reported as duplicates; with a 64-bit hash the chance is about
	// n²/2⁶⁵ (1 in 36 million for a million ids), accepted to keep memory
	// at 16 bytes per id.
	ids map[uint64]uint64
	// norm maps the hash of a normalised custom_id (foldID) to where the
	// first id with that form was used, for ids not already in normal
	// form (an id in normal form is found in ids under the same hash), so
	// that ordinary ids cost nothing here.
	norm map[uint64]uint64

	endpoint  string         // this file's batch endpoint (without --endpoint)
	models    map[string]int // this file's models → requests
	modelOrd  []string
	envelopes int // Batch-format lines in this file
}

const maxModelsTracked = 1000

func (o *ordered) pos(file, line int) uint64 { return uint64(file)<<32 | uint64(uint32(line)) }

func (o *ordered) where(p uint64, file int) string {
	f, l := int(p>>32), int(uint32(p))
	if f == file {
		return fmt.Sprintf("line %d", l)
	}
	return fmt.Sprintf("%s:%d", o.sources[f].Name, l)
}

func (o *ordered) crossCheck(it *item) {
	req := it.req
	add := func(sev Severity, code, msg string) {
		req.Problems = append(req.Problems, Problem{File: req.File, Line: req.Line, CustomID: req.CustomID,
			Severity: sev, Code: code, Message: msg})
	}
	if (it.idKind == idString || it.idKind == idAuto) && req.CustomID != "" {
		h := maphash.String(o.seed, req.CustomID)
		if first, dup := o.ids[h]; dup {
			msg := fmt.Sprintf("duplicate custom_id %s (first used on %s)", quote(req.CustomID), o.where(first, it.file))
			if it.idKind == idAuto {
				msg = fmt.Sprintf("the id %s given to this bare body (it has no custom_id) is already used on %s; give the lines explicit custom_ids",
					quote(req.CustomID), o.where(first, it.file))
			}
			add(tokens.Error, "duplicate_custom_id", msg)
		} else if it.idKind == idAuto {
			o.ids[h] = o.pos(it.file, it.line)
		} else {
			here := o.pos(it.file, it.line)
			o.ids[h] = here
			nh := maphash.String(o.seed, foldID(req.CustomID))
			// A new id (a repeat took the duplicate branch), so any earlier
			// id with the same normal form is a different one.
			first, ok := o.norm[nh]
			if !ok && nh != h {
				first, ok = o.ids[nh]
			}
			if ok {
				what := idOddities(req.CustomID, false)
				switch {
				case what != "":
				case !isASCII(req.CustomID):
					what = "accents or Unicode normalization (NFC vs NFD)"
				case strings.ToLower(req.CustomID) != req.CustomID:
					what = "case"
				default:
					what = "case, whitespace or invisible/look-alike characters of the other"
				}
				msg := fmt.Sprintf("it looks like the custom_id on %s (they differ only in %s); ids are compared byte-exactly, so both are accepted, but results are easy to mix up",
					o.where(first, it.file), what)
				merged := false
				for i := range req.Problems { // one look-alike warning per line
					if req.Problems[i].Code == "custom_id_lookalike" {
						req.Problems[i].Message += fmt.Sprintf(", and looks like the custom_id on %s", o.where(first, it.file))
						merged = true
						break
					}
				}
				if !merged {
					add(tokens.Warning, "custom_id_lookalike", fmt.Sprintf("custom_id %s: %s", quote(req.CustomID), msg))
				}
			} else if nh != h {
				o.norm[nh] = here
			}
		}
	}
	// One endpoint per batch (case B03, issue 14 §4): without --endpoint
	// the file's first valid Batch url sets its endpoint and every other
	// line is held to it, the same in count and batch submit; run
	// (MixedEndpoints) sends each line to its own url.
	if it.endpoint != "" && (o.opts.Endpoint != "" || !o.opts.MixedEndpoints) {
		want := o.opts.Endpoint
		if want == "" {
			want = o.endpoint
		}
		if want == "" {
			o.endpoint = it.endpoint
		} else if it.endpoint != want {
			if req.Bare {
				add(tokens.Error, "endpoint_mismatch", fmt.Sprintf(
					"this bare body is for %s (inferred from its fields) but the file's endpoint is %s — one endpoint per file (a batch takes one); put each endpoint's requests in its own file",
					quote(it.endpoint), quote(want)))
			} else {
				add(tokens.Error, "endpoint_mismatch", fmt.Sprintf(
					"url %s differs from the batch endpoint %s — one endpoint per batch", quote(it.endpoint), quote(want)))
			}
		}
	}
	if o.models == nil {
		o.models = map[string]int{}
	}
	if req.Model != "" {
		if _, seen := o.models[req.Model]; seen || len(o.models) < maxModelsTracked {
			if !seen {
				o.modelOrd = append(o.modelOrd, req.Model)
			}
			o.models[req.Model]++
		}
	}
	if it.envelope {
		o.envelopes++
	}
	sortProblems(req.Problems)
}

func (o *ordered) endFile(st *fileStats) []Problem {
	var out []Problem
	add := func(line int, sev Severity, code, msg string) {
		out = append(out, Problem{File: st.name, Line: line, Severity: sev, Code: code, Message: msg})
	}
	if st.skipped != nil {
		out = append(out, *st.skipped)
	}
	out = append(out, st.extra...)
	if st.requests == 0 && st.skipped == nil {
		add(0, tokens.Error, "no_requests", "file has no requests (it is empty or holds only blank lines); the Batch API rejects an empty file")
	}
	if st.bom {
		add(1, tokens.Warning, "bom", "file starts with a UTF-8 byte-order mark (ignored; some tools and older API versions reject it — save as UTF-8 without BOM)")
	}
	if st.crlfLine > 0 {
		add(st.crlfLine, tokens.Warning, "crlf", "lines end with CRLF (Windows line endings); accepted, but LF is safer for upload")
	}
	if st.blankN > 0 {
		add(st.blank[0], tokens.Warning, "blank_lines", blankMessage(st.blank, st.blankN))
	}
	if len(o.modelOrd) > 1 {
		parts := make([]string, 0, len(o.modelOrd))
		for i, m := range o.modelOrd {
			if i == 5 {
				parts = append(parts, fmt.Sprintf("and %d more", len(o.modelOrd)-5))
				break
			}
			parts = append(parts, fmt.Sprintf("%s ×%s", m, Thousands(int64(o.models[m]))))
		}
		add(0, tokens.Warning, "several_models", fmt.Sprintf(
			"file uses %d models (%s); the Batch API wants one model per batch — oairl batch submit splits by model",
			len(o.modelOrd), strings.Join(parts, ", ")))
	}
	if o.envelopes > 0 {
		if st.requests > BatchMaxRequests {
			add(st.over, tokens.Warning, "over_batch_requests", fmt.Sprintf(
				"file has %s requests, over the Batch API's %s per batch (Batch will need splitting; oairl batch submit splits it)",
				Thousands(int64(st.requests)), Thousands(BatchMaxRequests)))
		}
		if st.bytes > batchMaxBytes {
			add(0, tokens.Warning, "over_batch_bytes", fmt.Sprintf(
				"file is %s bytes, over the Batch API's %s-byte (200 MB) input file limit (Batch will need splitting; oairl batch submit splits it)",
				Thousands(st.bytes), Thousands(batchMaxBytes)))
		}
	}
	o.endpoint, o.models, o.modelOrd, o.envelopes = "", nil, nil, 0
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func blankMessage(lines []int, n int) string {
	s := make([]string, len(lines))
	for i, l := range lines {
		s[i] = fmt.Sprint(l)
	}
	list := strings.Join(s, ", ")
	if n > len(lines) {
		list += fmt.Sprintf(" and %d more", n-len(lines))
	}
	if n == 1 {
		return "line " + list + ": blank, ignored"
	}
	return "lines " + list + ": blank, ignored"
}

var sevRank = map[Severity]int{tokens.Error: 0, tokens.Warning: 1, tokens.Note: 2}

// sortProblems orders a request's problems errors first, keeping the order
// they were found in within a severity.
func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool { return sevRank[ps[i].Severity] < sevRank[ps[j].Severity] })
}

// Thousands formats n with comma separators: 32017 → "32,017".
func Thousands(n int64) string { return humanize.Int(n) }

package runner

// Flat memory for inputs of any size (issue 11). A run reads its input
// twice: the validating pass (input.Scan) writes one fixed-size record per
// request to send (jobRec: where the line is, its fingerprint, model, url
// and TPM charge) to a temporary spool file, and the sending pass reads the
// spool back in order and reads each request's line from its file by offset
// just before it is sent (a gzip or piped input is copied, decompressed, to
// a temporary file during the first pass, through input.Options.Spill). The
// resume index (resumeIndex) holds 16 bytes per custom_id: a 64-bit hash of
// the id and 48 bits of the body fingerprint. --ordered sorts on disk
// (extSorter: sorted runs of at most sortRunRecords records, merged).
// What stays in memory grows with the number of models, not of requests,
// apart from the resume index, the duplicate-id check of input.Scan (16
// bytes per custom_id each) and the per-success rate samples.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"sync"

	"github.com/oairl/oairl/internal/extsort"
	"github.com/oairl/oairl/internal/input"
)

// jobRec is a request to send, in fixed size (jobRecWidth bytes): which
// source and where in it, its line number, its fingerprints, model, url
// and TPM charge. The rest (custom_id, body) is read back from the line.
type jobRec struct {
	off     int64
	size    int64
	line    int64
	fp      uint64 // bodyFingerprint as a number
	rawHash uint64 // hash of the line as read: detects a file changed under the run
	charge  int64
	src     uint32
	model   uint32 // index into run.names
	url     uint32 // index into run.names
	bare    bool
}

const jobRecWidth = 8*6 + 4*3 + 1

func encJobRec(b []byte, j jobRec) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(j.off))
	le.PutUint64(b[8:], uint64(j.size))
	le.PutUint64(b[16:], uint64(j.line))
	le.PutUint64(b[24:], j.fp)
	le.PutUint64(b[32:], j.rawHash)
	le.PutUint64(b[40:], uint64(j.charge))
	le.PutUint32(b[48:], j.src)
	le.PutUint32(b[52:], j.model)
	le.PutUint32(b[56:], j.url)
	b[60] = 0
	if j.bare {
		b[60] = 1
	}
}

func decJobRec(b []byte) jobRec {
	le := binary.LittleEndian
	return jobRec{off: int64(le.Uint64(b[0:])), size: int64(le.Uint64(b[8:])), line: int64(le.Uint64(b[16:])),
		fp: le.Uint64(b[24:]), rawHash: le.Uint64(b[32:]), charge: int64(le.Uint64(b[40:])),
		src: le.Uint32(b[48:]), model: le.Uint32(b[52:]), url: le.Uint32(b[56:]), bare: b[60] == 1}
}

// fpNum turns a recorded fingerprint into a number: the 16 hex digits of
// bodyFingerprint, or (another tool's value) a hash of the text. 0 means
// none.
func fpNum(seed maphash.Seed, fp string) uint64 {
	if fp == "" {
		return 0
	}
	if len(fp) == 16 {
		var b [8]byte
		if _, err := hex.Decode(b[:], []byte(fp)); err == nil {
			if v := binary.BigEndian.Uint64(b[:]); v != 0 {
				return v
			}
		}
	}
	return maphash.String(seed, fp) | 1
}

func fpString(v uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return hex.EncodeToString(b[:])
}

// inputFiles reads request lines back by offset: the input files
// themselves, or the decompressed copies of gzip and piped sources made
// during the validating pass.
type inputFiles struct {
	dir     string
	sources []input.Source
	mu      sync.Mutex
	files   map[int]*os.File
	spills  map[int]*bufio.Writer
}

func newInputFiles(dir string, sources []input.Source) *inputFiles {
	return &inputFiles{dir: dir, sources: sources, files: map[int]*os.File{}, spills: map[int]*bufio.Writer{}}
}

// spill is input.Options.Spill: a temporary copy of source i.
func (in *inputFiles) spill(i int) (io.Writer, error) {
	f, err := extsort.TempFile(in.dir, ".oairl-input-*")
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.files[i] = f
	w := bufio.NewWriterSize(f, 256<<10)
	in.spills[i] = w
	return w, nil
}

// flush ends the copies (after the validating pass).
func (in *inputFiles) flush() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, w := range in.spills {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("copying %s: %w", in.sources[i].Name, err)
		}
		delete(in.spills, i)
	}
	return nil
}

// read returns the line of rec, without a BOM, line ending and trailing
// whitespace (input.Request.Raw).
func (in *inputFiles) read(rec jobRec) ([]byte, error) {
	in.mu.Lock()
	f := in.files[int(rec.src)]
	if f == nil {
		var err error
		f, err = os.Open(in.sources[rec.src].Name)
		if err != nil {
			in.mu.Unlock()
			return nil, err
		}
		in.files[int(rec.src)] = f
	}
	in.mu.Unlock()
	b := make([]byte, rec.size)
	if _, err := f.ReadAt(b, rec.off); err != nil && !(errors.Is(err, io.EOF)) {
		return nil, err
	}
	if rec.off == 0 {
		b = bytes.TrimPrefix(b, bom)
	}
	return bytes.TrimRight(b, " \t\r\n"), nil
}

var bom = []byte{0xEF, 0xBB, 0xBF}

func (in *inputFiles) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, f := range in.files {
		f.Close()
	}
	in.files = map[int]*os.File{}
}

// reread rebuilds the job of rec from its line.
func (r *run) reread(rec jobRec) (*job, error) {
	raw, err := r.inputs.read(rec)
	name := r.o.Sources[rec.src].Name
	if err == nil && maphash.Bytes(r.seed, raw) != rec.rawHash {
		err = errors.New("the line changed while oairl was running")
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s:%d back: %w", name, rec.line, err)
	}
	j := &job{file: name, line: int(rec.line), url: r.names[rec.url], fp: fpString(rec.fp),
		model: r.names[rec.model], charge: rec.charge}
	r.mu.Lock()
	j.res = r.res[j.model]
	r.mu.Unlock()
	var body []byte
	if rec.bare {
		body = bytes.TrimLeft(raw, " \t")
		j.customID = input.AutoID(r.o.Sources, int(rec.src), int(rec.line))
	} else {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(raw, &top); err != nil {
			return nil, fmt.Errorf("reading %s:%d back: %w", name, rec.line, err)
		}
		_ = json.Unmarshal(top["custom_id"], &j.customID)
		body = top["body"]
	}
	if r.o.Model != "" {
		body = withModel(body, j.model)
	}
	j.body = body
	return j, nil
}

// intern returns the index of s in r.names (models and urls: few).
func (r *run) intern(s string) uint32 {
	if i, ok := r.nameIdx[s]; ok {
		return i
	}
	i := uint32(len(r.names))
	r.names = append(r.names, s)
	r.nameIdx[s] = i
	return i
}

// resumeIndex is what the results file says about each custom_id, in 16
// bytes per id (plus a second map for the rare id recorded with several
// body fingerprints): keyed by a 64-bit hash of the custom_id, the value
// packs the best state of any line, the best state of the lines with the
// recorded fingerprint, and 48 bits of that fingerprint. Two ids with the
// same 64-bit hash would share an entry: about n²/2⁶⁵ (1 in 36 million for
// a million ids), as in input.Scan's duplicate check.
type resumeIndex struct {
	seed maphash.Seed
	ids  map[uint64]uint64
	// multi holds the state per (id, fingerprint) of the ids recorded
	// with more than one fingerprint.
	multi map[[2]uint64]recState
}

const (
	riBest   = 0x3      // best state of any line
	riFPBest = 0x3 << 2 // best state of the lines with the fingerprint
	riHasFP  = 1 << 4
	riMulti  = 1 << 5
	riFPMask = ^uint64(0xffff)
)

func newResumeIndex(seed maphash.Seed) *resumeIndex {
	return &resumeIndex{seed: seed, ids: map[uint64]uint64{}, multi: map[[2]uint64]recState{}}
}

func (x *resumeIndex) key(id string) uint64 { return maphash.String(x.seed, id) }

func (x *resumeIndex) add(id, fp string, st recState) {
	k := x.key(id)
	v, seen := x.ids[k]
	if !seen || better(st, recState(v&riBest)) {
		v = v&^riBest | uint64(st)
	}
	if fp != "" {
		f := fpNum(x.seed, fp) << 16 // 48 bits kept
		switch {
		case v&riMulti != 0:
			mk := [2]uint64{k, f}
			if cur, ok := x.multi[mk]; !ok || better(st, cur) {
				x.multi[mk] = st
			}
		case v&riHasFP == 0:
			v = v&^(riFPMask|riFPBest) | f | riHasFP | uint64(st)<<2
		case v&riFPMask == f:
			if better(st, recState(v&riFPBest>>2)) {
				v = v&^riFPBest | uint64(st)<<2
			}
		default:
			// A second fingerprint: from now on the states per
			// fingerprint live in multi.
			x.multi[[2]uint64{k, v & riFPMask}] = recState(v & riFPBest >> 2)
			x.multi[[2]uint64{k, f}] = st
			v |= riMulti
		}
	}
	x.ids[k] = v
}

// state is the best state recorded for id (0: none).
func (x *resumeIndex) state(id string) recState { return recState(x.ids[x.key(id)] & riBest) }

// lookup returns the recorded state of id for a body with fingerprint fp;
// mismatch when the id has results with fingerprints, none equal to fp.
func (x *resumeIndex) lookup(id, fp string) (st recState, ok, mismatch bool) {
	k := x.key(id)
	v, seen := x.ids[k]
	if !seen {
		return 0, false, false
	}
	if v&riHasFP == 0 {
		st = recState(v & riBest)
		return st, st != 0, false
	}
	f := fpNum(x.seed, fp) << 16
	if v&riMulti != 0 {
		st, ok = x.multi[[2]uint64{k, f}]
		return st, ok, !ok
	}
	if v&riFPMask == f {
		return recState(v & riFPBest >> 2), true, false
	}
	return 0, false, true
}

// dropRetryable forgets the ids whose best state is retryable
// (--retry-failed, after their lines were removed) and returns how many.
func (x *resumeIndex) dropRetryable() int {
	n := 0
	for k, v := range x.ids {
		if recState(v&riBest) == recRetryable {
			delete(x.ids, k)
			n++
		}
	}
	return n
}

func (x *resumeIndex) countRetryable() int {
	n := 0
	for _, v := range x.ids {
		if recState(v&riBest) == recRetryable {
			n++
		}
	}
	return n
}

// orderEntry is one valid input request for --ordered: the hash of its
// custom_id, its position in the input and its body fingerprint.
type orderEntry struct{ id, pos, fp uint64 }

func newOrderLog(dir string) *extsort.Sorter[orderEntry] {
	return extsort.New(dir, 24,
		func(b []byte, e orderEntry) {
			binary.LittleEndian.PutUint64(b, e.id)
			binary.LittleEndian.PutUint64(b[8:], e.pos)
			binary.LittleEndian.PutUint64(b[16:], e.fp)
		},
		func(b []byte) orderEntry {
			return orderEntry{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:])}
		},
		func(a, b orderEntry) int {
			if a.id != b.id {
				return cmpU64(a.id, b.id)
			}
			return cmpU64(a.pos, b.pos)
		})
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lineEntry is one line of the results file for --ordered: the hash of
// its custom_id (with ok), its place, state rank and fingerprint.
type lineEntry struct {
	id   uint64
	off  uint64
	n    uint64
	fp   uint64
	rank uint8
}

func newLineSorter(dir string, byID bool) *extsort.Sorter[lineEntry] {
	cmp := func(a, b lineEntry) int { return cmpU64(a.off, b.off) }
	if byID {
		cmp = func(a, b lineEntry) int {
			if a.id != b.id {
				return cmpU64(a.id, b.id)
			}
			return cmpU64(a.off, b.off)
		}
	}
	return extsort.New(dir, 33,
		func(b []byte, e lineEntry) {
			le := binary.LittleEndian
			le.PutUint64(b, e.id)
			le.PutUint64(b[8:], e.off)
			le.PutUint64(b[16:], e.n)
			le.PutUint64(b[24:], e.fp)
			b[32] = e.rank
		},
		func(b []byte) lineEntry {
			le := binary.LittleEndian
			return lineEntry{le.Uint64(b), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:]), b[32]}
		}, cmp)
}

package runner

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/atomicfile"
	"github.com/oairl/oairl/internal/extsort"
	"github.com/oairl/oairl/internal/send"
)

// Result is one line of the results file, in the Batch API output format
// (platform.openai.com/docs/api-reference/batch/request-output):
//
//	{"id":"batch_req_…","custom_id":"…","response":{"status_code":200,"request_id":"req_…","body":{…}},"error":null}
//
// Response is null when no HTTP answer was received (a network error after
// the retries, or a request refused before sending: request_too_large).
// Error is null on success; for a failure it carries the last error's code
// (the API error envelope's code, else the diagnose verdict such as
// "network_error" or "request_too_large") and message, whether or not an
// HTTP answer came (Batch output files set it only for the former).
//
// BodySHA256 (oairl_body_sha256, an extra top-level field that Batch
// readers ignore) is the first 16 hex digits of the SHA-256 of the request
// body as sent: on resume a recorded result only counts for an input line
// whose body has the same fingerprint (bodyFingerprint).
type Result struct {
	ID         string          `json:"id"`
	CustomID   string          `json:"custom_id"`
	Response   *ResultResponse `json:"response"`
	Error      *ResultError    `json:"error"`
	BodySHA256 string          `json:"oairl_body_sha256,omitempty"`
}

// bodyFingerprint is the fingerprint recorded with a result: the first 16
// hex digits (64 bits) of the SHA-256 of the body's canonical JSON (keys
// sorted, insignificant whitespace dropped, strings re-escaped, numbers kept
// as written), so reformatting a file (jq -c, key order, \u00e9 vs é)
// does not count as a changed request. A body that is not valid JSON is
// hashed as its bytes.
func bodyFingerprint(body []byte) string {
	h := sha256.Sum256(canonicalJSON(body))
	return hex.EncodeToString(h[:8])
}

func canonicalJSON(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return body
	}
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

// better reports whether state a outranks b for one custom_id: a success
// wins over any failure (a success is never removed or resent), a final
// failure over a retryable one.
func better(a, b recState) bool {
	rank := func(s recState) int {
		switch s {
		case recSucceeded:
			return 3
		case recFailed:
			return 2
		case recRetryable:
			return 1
		}
		return 0
	}
	return rank(a) > rank(b)
}

// ResultResponse is the HTTP answer of a Result.
type ResultResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

// ResultError is the error of a failed Result.
type ResultError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// recState is what the results file says about a custom_id.
type recState uint8

const (
	recSucceeded recState = iota + 1
	recFailed             // a final failure: not sent again
	recRetryable          // a failure that --retry-failed sends again
)

// resultsFile is the append-only results file. Every line is written with
// one write(2) of the whole line and its "\n" on an O_APPEND descriptor, so
// a crash leaves either the whole line or, at worst, a torn last line that
// the next open truncates away.
type resultsFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
	rng  *rand.Rand
	buf  bytes.Buffer
}

// loadReport is what loadResults found in an existing file.
type loadReport struct {
	Lines     int   // complete result lines read
	Size      int64 // bytes of complete lines (where a torn line starts)
	TornBytes int64 // bytes of a torn last line, to be truncated away
	BadLines  []int // line numbers that are not a result (kept, ignored; the first maxBadLines)
	BadN      int   // lines that are not a result
	// Index is the best state per custom_id, and per custom_id and body
	// fingerprint for lines that carry oairl_body_sha256 (a success wins,
	// then a final failure), in 16 bytes per custom_id.
	Index   *resumeIndex
	Dropped int // retryable failures removed for --retry-failed
	// TailKept is true when the last line had no "\n" but is a complete
	// result: openResults appends the "\n" instead of truncating it.
	TailKept bool
}

// maxBadLines is how many line numbers of non-result lines are kept.
const maxBadLines = 100

// add records one result line's state.
func (rep *loadReport) add(id, fp string, st recState) {
	rep.Lines++
	rep.Index.add(id, fp, st)
}

// lookup returns the recorded state of custom_id id for a line whose body
// has fingerprint fp. mismatch is true when the id has results recorded
// with fingerprints but none equal to fp (the input line changed).
func (rep *loadReport) lookup(id, fp string) (st recState, ok, mismatch bool) {
	return rep.Index.lookup(id, fp)
}

// loadResults reads what an earlier run left in path, without changing
// it: the custom_ids already answered and a torn last line (no "\n"),
// which openResults later truncates away. A missing file is empty.
func loadResults(path string) (loadReport, error) {
	rep := newLoadReport()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return rep, nil
	}
	if err != nil {
		return rep, fmt.Errorf("opening results file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return rep, err
	}
	size := st.Size()
	end, err := lastNewline(f, size)
	if err != nil {
		return rep, fmt.Errorf("reading %s: %w", path, err)
	}
	rep.Size, rep.TornBytes = end, size-end
	if err := readDone(io.LimitReader(f, end), &rep); err != nil {
		return rep, fmt.Errorf("reading %s: %w", path, err)
	}
	if rep.TornBytes > 0 && rep.TornBytes < 64<<20 {
		// A last line without "\n" that is a whole result (written by
		// hand or by another tool) is kept: openResults adds the "\n".
		tail := make([]byte, rep.TornBytes)
		if _, err := f.ReadAt(tail, end); err == nil || errors.Is(err, io.EOF) {
			if id, st, fp, ok := parseResultState(bytes.TrimSpace(tail)); ok {
				rep.add(id, fp, st)
				rep.TailKept = true
			}
		}
	}
	return rep, nil
}

func newLoadReport() loadReport {
	return loadReport{Index: newResumeIndex(maphash.MakeSeed())}
}

// openResults opens (creating) path for appending: a torn last line found
// by loadResults is truncated away first, and with retryFailed the
// retryable failures are removed (via a temporary file and a rename, so
// that each custom_id keeps one line) and dropped from rep.Done.
func openResults(path string, rep *loadReport, retryFailed bool, seed uint64) (*resultsFile, error) {
	if rep.TornBytes > 0 && rep.TailKept {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, fmt.Errorf("opening results file: %w", err)
		}
		_, err = f.Write([]byte("\n"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("ending the last line of %s: %w", path, err)
		}
	} else if rep.TornBytes > 0 {
		if err := os.Truncate(path, rep.Size); err != nil {
			return nil, fmt.Errorf("truncating the torn last line of %s: %w", path, err)
		}
	}
	if retryFailed {
		if n := rep.Index.countRetryable(); n > 0 {
			if err := rewriteWithout(path, rep.Index); err != nil {
				return nil, err
			}
			rep.Dropped = rep.Index.dropRetryable()
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening results file: %w", err)
	}
	return &resultsFile{path: path, f: f, rng: rand.New(rand.NewPCG(seed, seed+1))}, nil
}

// lastNewline returns the offset just after the last "\n" of f (0 if none).
func lastNewline(f *os.File, size int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		start := max(0, end-chunk)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// readDone reads every result line into rep.
func readDone(r io.Reader, rep *loadReport) error {
	br := bufio.NewReaderSize(r, 1<<20)
	line := 0
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			line++
			b = bytes.TrimSpace(b)
			if len(b) > 0 {
				id, st, fp, ok := parseResultState(b)
				if !ok {
					rep.BadN++
					if len(rep.BadLines) < maxBadLines {
						rep.BadLines = append(rep.BadLines, line)
					}
				} else {
					rep.add(id, fp, st)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// parseResultState reads a result line's custom_id, state and body
// fingerprint. Only a line with a response.status_code or a non-null error
// is a result; anything else (a copy of an input line, {"custom_id":…}
// alone) is not (ok false). A failure is retryable when the diagnose
// classifier says its recorded answer was (5xx, rate limits, network
// errors, an error inside a 200) or the endpoint's fault (send.EndpointFault:
// a 404 Invalid URL), never for quota or other 4xx.
func parseResultState(b []byte) (id string, st recState, fp string, ok bool) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil || r.CustomID == "" {
		return "", 0, "", false
	}
	hasStatus := r.Response != nil && r.Response.StatusCode != 0
	if !hasStatus && r.Error == nil {
		return "", 0, "", false
	}
	id, fp = r.CustomID, r.BodySHA256
	if r.Error == nil && r.Response.StatusCode/100 == 2 {
		return id, recSucceeded, fp, true
	}
	if hasStatus {
		f := diagnose.Classify(r.Response.StatusCode, nil, r.Response.Body, timeZero)
		// A failure the endpoint caused (404 Invalid URL from a wrong
		// --base-url, recorded by an older version) is resent too.
		if f.Retryable || r.Response.StatusCode/100 == 2 || send.EndpointFault(f) {
			return id, recRetryable, fp, true
		}
		return id, recFailed, fp, true
	}
	if r.Error.Code == string(diagnose.NetworkError) {
		return id, recRetryable, fp, true
	}
	return id, recFailed, fp, true
}

// rewriteWithout rewrites path without the lines whose custom_id is
// retryable in done (a temporary file in the same directory, then a rename:
// never a partial file).
func rewriteWithout(path string, idx *resumeIndex) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeAtomic(path, func(w io.Writer) error {
		br := bufio.NewReaderSize(in, 1<<20)
		for {
			b, err := br.ReadBytes('\n')
			if len(b) > 0 {
				id, _, _, ok := parseResultState(bytes.TrimSpace(b))
				if !ok || idx.state(id) != recRetryable {
					if _, err := w.Write(b); err != nil {
						return err
					}
				}
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
}

// writeAtomic writes path through fill atomically (internal/atomicfile).
func writeAtomic(path string, fill func(io.Writer) error) error {
	return atomicfile.WriteFile(path, fill)
}

// newID returns a Batch-style result id, "batch_req_" + 32 hex digits.
func (rf *resultsFile) newID() string {
	return fmt.Sprintf("batch_req_%016x%016x", rf.rng.Uint64(), rf.rng.Uint64())
}

// write appends one result: the whole line and its "\n" in one write call.
func (rf *resultsFile) write(r *Result) error {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if r.ID == "" {
		r.ID = rf.newID()
	}
	rf.buf.Reset()
	enc := json.NewEncoder(&rf.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil { // Encode ends the line with "\n"
		return fmt.Errorf("encoding the result of custom_id %q: %w", r.CustomID, err)
	}
	if _, err := rf.f.Write(rf.buf.Bytes()); err != nil {
		return fmt.Errorf("writing the result of custom_id %q to %s: %w", r.CustomID, rf.path, err)
	}
	return nil
}

func (rf *resultsFile) close() error {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if rf.f == nil {
		return nil
	}
	err := rf.f.Sync()
	if cerr := rf.f.Close(); err == nil {
		err = cerr
	}
	rf.f = nil
	return err
}

// compactBody returns body as a JSON value fit for one line: compacted when
// it is JSON, else a JSON string of it (an HTML error page from a proxy).
func compactBody(body []byte) json.RawMessage {
	var buf bytes.Buffer
	if len(bytes.TrimSpace(body)) > 0 && json.Valid(body) {
		if err := json.Compact(&buf, body); err == nil {
			return buf.Bytes()
		}
	}
	s, _ := json.Marshal(string(body))
	return s
}

// rewriteOrdered rewrites path so that it holds exactly one line per
// custom_id of order, in that order (the input order): for each, the line
// that belongs to the current body (order's fingerprint; a line without a
// fingerprint matches any body), then the best state (success, final
// failure, retryable failure), then the latest. Lines of custom_ids not in
// order keep their relative order after them. Superseded lines are not
// dropped: they are appended to PATH.superseded.jsonl. Atomic (temporary
// file + rename). Memory is bounded whatever the sizes: custom_ids are
// hashed with seed (as in order) and every list is sorted on disk
// (extSorter) beside path.
func rewriteOrdered(path string, order *extsort.Sorter[orderEntry], seed maphash.Seed) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	dir := filepath.Dir(path)
	byID, rest, superseded, winners := newLineSorter(dir, true), newLineSorter(dir, false), newLineSorter(dir, false), newLineSorter(dir, true)
	defer func() {
		for _, s := range []*extsort.Sorter[lineEntry]{byID, rest, superseded, winners} {
			s.Close()
		}
	}()
	br := bufio.NewReaderSize(in, 1<<20)
	var off uint64
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line over 1 MB: read the rest of it.
			long := append([]byte(nil), b...)
			for errors.Is(err, bufio.ErrBufferFull) {
				b, err = br.ReadSlice('\n')
				long = append(long, b...)
			}
			b = long
		}
		if len(b) > 0 {
			e := lineEntry{off: off, n: uint64(len(b))}
			id, st, fp, ok := parseResultState(bytes.TrimSpace(b))
			var aerr error
			if !ok {
				aerr = rest.Add(e)
			} else {
				e.id, e.fp = maphash.String(seed, id), fpNum(seed, fp)
				switch st {
				case recSucceeded:
					e.rank = 3
				case recFailed:
					e.rank = 2
				case recRetryable:
					e.rank = 1
				}
				aerr = byID.Add(e)
			}
			if aerr != nil {
				return aerr
			}
			off += uint64(len(b))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	// Join the input (by custom_id hash) with the lines (by custom_id
	// hash, then place): one winner per input custom_id.
	ord, err := order.Reader()
	if err != nil {
		return err
	}
	lines, err := byID.Reader()
	if err != nil {
		return err
	}
	ov, ook, err := ord.Next()
	if err != nil {
		return err
	}
	lv, lok, err := lines.Next()
	for err == nil && lok {
		for err == nil && ook && ov.id < lv.id {
			ov, ook, err = ord.Next()
		}
		if err != nil {
			break
		}
		id := lv.id
		if !ook || ov.id != id {
			for err == nil && lok && lv.id == id {
				if err = rest.Add(lv); err == nil {
					lv, lok, err = lines.Next()
				}
			}
			continue
		}
		var best lineEntry
		bestRank, have := -1, false
		for err == nil && lok && lv.id == id {
			rank := int(lv.rank)
			if lv.fp == 0 || ov.fp == 0 || lv.fp == ov.fp {
				rank += 10
			}
			switch {
			case !have:
				best, bestRank, have = lv, rank, true
			case rank >= bestRank: // ties: the later line wins
				err = superseded.Add(best)
				best, bestRank = lv, rank
			default:
				err = superseded.Add(lv)
			}
			if err == nil {
				lv, lok, err = lines.Next()
			}
		}
		if err == nil {
			err = winners.Add(lineEntry{id: ov.pos, off: best.off, n: best.n})
		}
	}
	if err != nil {
		return err
	}
	copySpan := func(w io.Writer, e lineEntry) error {
		_, err := io.Copy(w, io.NewSectionReader(in, int64(e.off), int64(e.n)))
		return err
	}
	if superseded.Len() > 0 {
		f, err := os.OpenFile(path+".superseded.jsonl", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(f, 256<<10)
		err = superseded.Each(func(e lineEntry) error { return copySpan(bw, e) })
		if err == nil {
			err = bw.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return writeAtomic(path, func(w io.Writer) error {
		if err := winners.Each(func(e lineEntry) error { return copySpan(w, e) }); err != nil {
			return err
		}
		return rest.Each(func(e lineEntry) error { return copySpan(w, e) })
	})
}

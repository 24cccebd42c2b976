package runner

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"sync"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/atomicfile"
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
	Lines     int                 // complete result lines read
	Size      int64               // bytes of complete lines (where a torn line starts)
	TornBytes int64               // bytes of a torn last line, to be truncated away
	BadLines  []int               // line numbers that are not a result (kept, ignored)
	Done      map[string]recState // best state per custom_id (success wins)
	// ByFP is the best state per custom_id and body fingerprint
	// (fpKey), for lines that carry oairl_body_sha256; HasFP marks the
	// custom_ids that have at least one such line.
	ByFP    map[string]recState
	HasFP   map[string]bool
	Dropped int // retryable failures removed for --retry-failed
	// TailKept is true when the last line had no "\n" but is a complete
	// result: openResults appends the "\n" instead of truncating it.
	TailKept bool
}

func fpKey(id, fp string) string { return id + "\x00" + fp }

// add records one result line's state.
func (rep *loadReport) add(id, fp string, st recState) {
	rep.Lines++
	if cur, ok := rep.Done[id]; !ok || better(st, cur) {
		rep.Done[id] = st
	}
	if fp != "" {
		k := fpKey(id, fp)
		if cur, ok := rep.ByFP[k]; !ok || better(st, cur) {
			rep.ByFP[k] = st
		}
		rep.HasFP[id] = true
	}
}

// lookup returns the recorded state of custom_id id for a line whose body
// has fingerprint fp. mismatch is true when the id has results recorded
// with fingerprints but none equal to fp (the input line changed).
func (rep *loadReport) lookup(id, fp string) (st recState, ok, mismatch bool) {
	if rep.HasFP[id] {
		st, ok = rep.ByFP[fpKey(id, fp)]
		return st, ok, !ok
	}
	st, ok = rep.Done[id]
	return st, ok, false
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
	return loadReport{Done: map[string]recState{}, ByFP: map[string]recState{}, HasFP: map[string]bool{}}
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
		n := 0
		for _, s := range rep.Done {
			if s == recRetryable {
				n++
			}
		}
		if n > 0 {
			if err := rewriteWithout(path, rep.Done); err != nil {
				return nil, err
			}
			for id, s := range rep.Done {
				if s == recRetryable {
					delete(rep.Done, id)
				}
			}
			rep.Dropped = n
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
					rep.BadLines = append(rep.BadLines, line)
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
// errors, an error inside a 200), never for quota or 4xx.
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
		if f.Retryable || r.Response.StatusCode/100 == 2 {
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
func rewriteWithout(path string, done map[string]recState) error {
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
				if !ok || done[id] != recRetryable {
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
// that belongs to the current body (fps: custom_id → bodyFingerprint; a
// line without a fingerprint matches any body), then the best state
// (success, final failure, retryable failure), then the latest. Lines of
// custom_ids not in order keep their relative order after them. Superseded
// lines are not dropped: they are appended to PATH.superseded.jsonl. Atomic
// (temporary file + rename).
func rewriteOrdered(path string, order []string, fps map[string]string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	type cand struct {
		sp   span
		rank int
	}
	inOrder := make(map[string]bool, len(order))
	for _, id := range order {
		inOrder[id] = true
	}
	best := map[string]cand{}
	var superseded, rest []span
	br := bufio.NewReaderSize(in, 1<<20)
	var off int64
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			sp := span{off, int64(len(b))}
			id, st, fp, ok := parseResultState(bytes.TrimSpace(b))
			switch {
			case !ok || !inOrder[id]:
				rest = append(rest, sp)
			default:
				rank := 0
				switch st {
				case recSucceeded:
					rank = 3
				case recFailed:
					rank = 2
				case recRetryable:
					rank = 1
				}
				if cur := fps[id]; fp == "" || cur == "" || fp == cur {
					rank += 10
				}
				if prev, seen := best[id]; !seen {
					best[id] = cand{sp, rank}
				} else if rank >= prev.rank { // ties: the later line wins
					superseded = append(superseded, prev.sp)
					best[id] = cand{sp, rank}
				} else {
					superseded = append(superseded, sp)
				}
			}
			off += int64(len(b))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	copySpan := func(w io.Writer, sp span) error {
		_, err := io.Copy(w, io.NewSectionReader(in, sp.off, sp.n))
		return err
	}
	if len(superseded) > 0 {
		sortSpans(superseded)
		f, err := os.OpenFile(path+".superseded.jsonl", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		for _, sp := range superseded {
			if err := copySpan(f, sp); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return writeAtomic(path, func(w io.Writer) error {
		for _, id := range order {
			if c, ok := best[id]; ok {
				delete(best, id) // a custom_id listed twice is written once
				if err := copySpan(w, c.sp); err != nil {
					return err
				}
			}
		}
		sortSpans(rest)
		for _, sp := range rest {
			if err := copySpan(w, sp); err != nil {
				return err
			}
		}
		return nil
	})
}

// span is a line's place in a file.
type span struct{ off, n int64 }

func sortSpans(s []span) { sort.Slice(s, func(i, j int) bool { return s[i].off < s[j].off }) }

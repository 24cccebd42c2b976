package batch

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/oairl/oairl/internal/extsort"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/tokens"
)

// InputLine is one request of the input, in input order, as the merger
// joins results to it.
type InputLine struct {
	CustomID string
	Raw      []byte // the line to resubmit (Batch input format)
	Shard    int    // index of the shard it was sent in
	File     string
	Line     int
}

// InputIter yields the input requests in input order; Next returns io.EOF
// after the last.
type InputIter interface {
	Next() (InputLine, error)
	Close() error
}

// Merger joins Batch output and error files to the input strictly on
// custom_id, in memory that does not grow with the files: output lines are
// copied to a temporary file as they are read, with a fixed-size index
// entry each (a 64-bit hash of the custom_id, the line's place, its
// outcome and usage); Merge copies the input the same way and joins the
// two indexes sorted on disk (internal/extsort), then writes the lines in
// input order by reading them back. Add every output and error file
// first, then call Merge (once). Two custom_ids with the same 64-bit hash
// would be joined as one: about n²/2⁶⁵ (1 in 36 million for a million).
type Merger struct {
	// Dir holds the temporary files (default: the system's); set it
	// before the first AddOutput.
	Dir string
	// Duplicates counts output lines whose custom_id was already seen;
	// Warnings names the first of them (file:line). Both are filled by
	// Merge.
	Duplicates int
	Warnings   []string

	seed   maphash.Seed
	lines  *os.File // the output lines, each followed by "\n"
	lw     *bufio.Writer
	off    uint64
	outs   *extsort.Sorter[outEntry]
	seq    uint64
	strs   []string // codes, models and file names of the index
	strIdx map[string]uint32
}

// maxWarnings is how many duplicate warnings Merge keeps.
const maxWarnings = 20

// NewMerger returns an empty Merger.
func NewMerger() *Merger {
	return &Merger{seed: maphash.MakeSeed(), strs: []string{""}, strIdx: map[string]uint32{"": 0}}
}

func (m *Merger) str(s string) uint32 {
	if i, ok := m.strIdx[s]; ok {
		return i
	}
	i := uint32(len(m.strs))
	m.strs = append(m.strs, s)
	m.strIdx[s] = i
	return i
}

func (m *Merger) dir() string {
	if m.Dir != "" {
		return m.Dir
	}
	return os.TempDir()
}

// outEntry indexes one output line.
type outEntry struct {
	id, seq, off   uint64
	n              uint32
	ok             bool
	code, model    uint32
	src, srcLine   uint32
	prompt, output int64
}

const outEntryWidth = 8*3 + 4 + 1 + 4*4 + 8*2

func encOut(b []byte, e outEntry) {
	le := binary.LittleEndian
	le.PutUint64(b, e.id)
	le.PutUint64(b[8:], e.seq)
	le.PutUint64(b[16:], e.off)
	le.PutUint32(b[24:], e.n)
	b[28] = 0
	if e.ok {
		b[28] = 1
	}
	le.PutUint32(b[29:], e.code)
	le.PutUint32(b[33:], e.model)
	le.PutUint32(b[37:], e.src)
	le.PutUint32(b[41:], e.srcLine)
	le.PutUint64(b[45:], uint64(e.prompt))
	le.PutUint64(b[53:], uint64(e.output))
}

func decOut(b []byte) outEntry {
	le := binary.LittleEndian
	return outEntry{id: le.Uint64(b), seq: le.Uint64(b[8:]), off: le.Uint64(b[16:]), n: le.Uint32(b[24:]), ok: b[28] == 1,
		code: le.Uint32(b[29:]), model: le.Uint32(b[33:]), src: le.Uint32(b[37:]), srcLine: le.Uint32(b[41:]),
		prompt: int64(le.Uint64(b[45:])), output: int64(le.Uint64(b[53:]))}
}

func byIDSeq(a, b outEntry) int {
	if c := cmp.Compare(a.id, b.id); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

type outputLine struct {
	CustomID *string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error json.RawMessage `json:"error"`
}

type apiErrorObj struct {
	Code    any    `json:"code"`
	Type    string `json:"type"`
	Message string `json:"message"`
}

type responseBody struct {
	Model string       `json:"model"`
	Error *apiErrorObj `json:"error"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		InputTokens      int64 `json:"input_tokens"`
		OutputTokens     int64 `json:"output_tokens"`
	} `json:"usage"`
}

func codeString(c any) string {
	switch v := c.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// classifyLine decides whether an output line succeeded: only if error is
// null AND 200 <= response.status_code < 300 (case B13: a line with error
// null and status 400 is a failure). For a failure, code is error.code,
// else the body's error.code, else its error.type, else "http_STATUS".
func classifyLine(o *outputLine) (ok bool, code string, body *responseBody) {
	errNull := len(o.Error) == 0 || bytes.Equal(bytes.TrimSpace(o.Error), []byte("null"))
	if o.Response != nil && len(o.Response.Body) > 0 {
		var rb responseBody
		if json.Unmarshal(o.Response.Body, &rb) == nil {
			body = &rb
		}
	}
	if !errNull {
		var e apiErrorObj
		_ = json.Unmarshal(o.Error, &e)
		code = codeString(e.Code)
		if code == "" {
			code = "error"
		}
		return false, code, body
	}
	if o.Response == nil {
		return false, "no_response", body
	}
	st := o.Response.StatusCode
	if st >= 200 && st < 300 {
		return true, "", body
	}
	if body != nil && body.Error != nil {
		if c := codeString(body.Error.Code); c != "" {
			return false, c, body
		}
		if body.Error.Type != "" {
			return false, body.Error.Type, body
		}
	}
	return false, "http_" + strconv.Itoa(st), body
}

// AddOutput reads one output or error file (JSONL, any order). name is used
// in warnings. A line that is not a JSON object with a custom_id is an
// error naming name:line. When a custom_id appears twice, a success wins
// over a failure and the duplicate is counted (by Merge).
func (m *Merger) AddOutput(name string, r io.Reader) error {
	if m.lines == nil {
		f, err := extsort.TempFile(m.dir(), ".oairl-outputs-*")
		if err != nil {
			return err
		}
		m.lines, m.lw = f, bufio.NewWriterSize(f, 256<<10)
		m.outs = extsort.New(m.dir(), outEntryWidth, encOut, decOut, byIDSeq)
	}
	src := m.str(name)
	return readLines(r, func(n int, b []byte) error {
		var o outputLine
		if err := json.Unmarshal(b, &o); err != nil {
			return fmt.Errorf("%s:%d: not a Batch output line: %w", name, n, err)
		}
		if o.CustomID == nil {
			return fmt.Errorf("%s:%d: output line has no custom_id", name, n)
		}
		ok, code, body := classifyLine(&o)
		e := outEntry{id: maphash.String(m.seed, *o.CustomID), seq: m.seq, off: m.off, n: uint32(len(b)), ok: ok,
			code: m.str(code), src: src, srcLine: uint32(n)}
		if body != nil {
			e.model = m.str(body.Model)
			if u := body.Usage; u != nil {
				e.prompt = u.PromptTokens + u.InputTokens
				e.output = u.CompletionTokens + u.OutputTokens
			}
		}
		m.seq++
		if _, err := m.lw.Write(b); err != nil {
			return err
		}
		if err := m.lw.WriteByte('\n'); err != nil {
			return err
		}
		m.off += uint64(len(b)) + 1
		return m.outs.Add(e)
	})
}

// Close removes the temporary files (Merge does it too).
func (m *Merger) Close() {
	if m.lines != nil {
		m.lines.Close()
		os.Remove(m.lines.Name())
		m.lines = nil
	}
	if m.outs != nil {
		m.outs.Close()
	}
}

// MergeOptions say where Merge writes and how it explains missing lines.
type MergeOptions struct {
	// Out receives exactly one Batch output line per input request, in
	// input order (required).
	Out io.Writer
	// Failed, when set, receives the original input line of every request
	// that did not succeed, ready to resubmit.
	Failed io.Writer
	// Unmatched, when set, receives output lines whose custom_id is in no
	// input (never dropped: they are counted and reported either way).
	Unmatched io.Writer
	// Missing explains an input request that has no output line: it
	// returns the error code and message of the synthesized line (e.g.
	// batch_expired for a shard whose batch expired). Nil means
	// missing_result.
	Missing func(shard int) (code, message string)
	// Registry resolves the models in responses for the cost (optional).
	Registry *models.Registry
}

// ModelUsage is the tokens and Batch-price cost of one model's answers.
type ModelUsage struct {
	Model            string  `json:"model"`
	Requests         int     `json:"requests"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CostUSD          float64 `json:"cost_usd"` // at the Batch API price
}

// MergeSummary counts what Merge wrote.
type MergeSummary struct {
	Requests     int            `json:"requests"`  // input requests (= lines written to Out)
	Succeeded    int            `json:"succeeded"` // error null and 2xx
	Failed       int            `json:"failed"`    // everything else, missing lines included
	FailedByCode map[string]int `json:"failed_by_code"`
	Synthesized  int            `json:"synthesized"` // missing lines written with a synthesized error
	Unmatched    int            `json:"unmatched"`   // output lines for no input custom_id
	UnmatchedIDs []string       `json:"unmatched_ids,omitempty"`
	Duplicates   int            `json:"duplicates"`
	Usage        []*ModelUsage  `json:"usage"`
	// PromptTokens and CompletionTokens are the totals from the answers'
	// usage; CostUSD is their cost at the Batch API price (USD).
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CostUSD          float64 `json:"cost_usd"`
}

type synthLine struct {
	ID       *string   `json:"id"`
	CustomID string    `json:"custom_id"`
	Response *struct{} `json:"response"`
	Error    struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// inEntry indexes one input request (its custom_id and line are in the
// input copy at off: idLen bytes of id, then rawLen bytes of line).
type inEntry struct {
	id, pos, off  uint64
	shard         uint32
	idLen, rawLen uint32
}

// decision is what Merge writes for the input request at pos: kind
// decOutput (the output line at outOff), decRepeated or decMissing (a
// synthesized line).
type decision struct {
	pos           uint64
	kind          uint8
	out           outEntry
	inOff         uint64
	shard         uint32
	idLen, rawLen uint32
}

const (
	decOutput uint8 = iota
	decRepeated
	decMissing
)

// dupWarning is a duplicate output line, named later.
type dupWarning struct {
	dup, first outEntry
}

// Merge walks the input in order and writes, for each request, its output
// line (or a synthesized error line when none exists) to Out, and its
// input line to Failed when it did not succeed. Output lines left over
// (custom_ids in no input) go to Unmatched, in the order first read.
// Merge may be called once; it removes the temporary files.
func (m *Merger) Merge(in InputIter, opts MergeOptions) (MergeSummary, error) {
	defer m.Close()
	s := MergeSummary{FailedByCode: map[string]int{}}
	dir := m.dir()
	if m.lines == nil { // no output file at all
		if err := m.AddOutput("", strings.NewReader("")); err != nil {
			return s, err
		}
	}
	if err := m.lw.Flush(); err != nil {
		return s, err
	}

	// 1. The input, copied with its position.
	inCopy, err := extsort.TempFile(dir, ".oairl-input-*")
	if err != nil {
		return s, err
	}
	defer func() { inCopy.Close(); os.Remove(inCopy.Name()) }()
	iw := bufio.NewWriterSize(inCopy, 256<<10)
	ins := extsort.New(dir, 36,
		func(b []byte, e inEntry) {
			le := binary.LittleEndian
			le.PutUint64(b, e.id)
			le.PutUint64(b[8:], e.pos)
			le.PutUint64(b[16:], e.off)
			le.PutUint32(b[24:], e.shard)
			le.PutUint32(b[28:], e.idLen)
			le.PutUint32(b[32:], e.rawLen)
		},
		func(b []byte) inEntry {
			le := binary.LittleEndian
			return inEntry{id: le.Uint64(b), pos: le.Uint64(b[8:]), off: le.Uint64(b[16:]), shard: le.Uint32(b[24:]),
				idLen: le.Uint32(b[28:]), rawLen: le.Uint32(b[32:])}
		},
		func(a, b inEntry) int {
			if c := cmp.Compare(a.id, b.id); c != 0 {
				return c
			}
			return cmp.Compare(a.pos, b.pos)
		})
	defer ins.Close()
	var inOff uint64
	for {
		il, err := in.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s, err
		}
		e := inEntry{id: maphash.String(m.seed, il.CustomID), pos: uint64(s.Requests), off: inOff, shard: uint32(il.Shard),
			idLen: uint32(len(il.CustomID)), rawLen: uint32(len(il.Raw))}
		iw.WriteString(il.CustomID)
		if _, err := iw.Write(il.Raw); err != nil {
			return s, err
		}
		inOff += uint64(len(il.CustomID) + len(il.Raw))
		if err := ins.Add(e); err != nil {
			return s, err
		}
		s.Requests++
	}
	if err := iw.Flush(); err != nil {
		return s, err
	}

	// 2. Join on the custom_id hash: one decision per input request, the
	// left-over outputs, the duplicates.
	decs := extsort.New(dir, 8+1+outEntryWidth+8+4*3,
		func(b []byte, d decision) {
			le := binary.LittleEndian
			le.PutUint64(b, d.pos)
			b[8] = d.kind
			encOut(b[9:], d.out)
			o := 9 + outEntryWidth
			le.PutUint64(b[o:], d.inOff)
			le.PutUint32(b[o+8:], d.shard)
			le.PutUint32(b[o+12:], d.idLen)
			le.PutUint32(b[o+16:], d.rawLen)
		},
		func(b []byte) decision {
			le := binary.LittleEndian
			o := 9 + outEntryWidth
			return decision{pos: le.Uint64(b), kind: b[8], out: decOut(b[9:]), inOff: le.Uint64(b[o:]), shard: le.Uint32(b[o+8:]),
				idLen: le.Uint32(b[o+12:]), rawLen: le.Uint32(b[o+16:])}
		},
		func(a, b decision) int { return cmp.Compare(a.pos, b.pos) })
	defer decs.Close()
	left := extsort.New(dir, outEntryWidth, encOut, decOut, func(a, b outEntry) int { return cmp.Compare(a.seq, b.seq) })
	defer left.Close()
	var dups []dupWarning
	outR, err := m.outs.Reader()
	if err != nil {
		return s, err
	}
	inR, err := ins.Reader()
	if err != nil {
		return s, err
	}
	ov, ook, err := outR.Next()
	if err != nil {
		return s, err
	}
	iv, iok, err := inR.Next()
	for err == nil && (ook || iok) {
		id := ov.id
		if !ook || iok && iv.id < id {
			id = iv.id
		}
		var win, first outEntry
		have := false
		for err == nil && ook && ov.id == id {
			switch {
			case !have:
				win, first, have = ov, ov, true
			default:
				m.Duplicates++
				dups = append(dups, dupWarning{ov, first})
				if len(dups) > 10*maxWarnings {
					slices.SortFunc(dups, func(a, b dupWarning) int { return cmp.Compare(a.dup.seq, b.dup.seq) })
					dups = dups[:maxWarnings]
				}
				if !win.ok && ov.ok {
					win = ov
				}
			}
			ov, ook, err = outR.Next()
		}
		matched := false
		for err == nil && iok && iv.id == id {
			d := decision{pos: iv.pos, kind: decMissing, inOff: iv.off, shard: iv.shard, idLen: iv.idLen, rawLen: iv.rawLen}
			switch {
			case have && !matched:
				d.kind, d.out, matched = decOutput, win, true
			case have:
				d.kind = decRepeated
			}
			if err = decs.Add(d); err == nil {
				iv, iok, err = inR.Next()
			}
		}
		if err == nil && have && !matched {
			win.seq = first.seq // in the order first read
			err = left.Add(win)
		}
	}
	if err != nil {
		return s, err
	}
	s.Duplicates = m.Duplicates

	// 3. Write in input order, reading the lines back.
	usage := map[string]*ModelUsage{}
	out := bufio.NewWriterSize(opts.Out, 256<<10)
	var failed *bufio.Writer
	if opts.Failed != nil {
		failed = bufio.NewWriterSize(opts.Failed, 256<<10)
	}
	var buf []byte
	readAt := func(f *os.File, off uint64, n uint32) ([]byte, error) {
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		b := buf[:n]
		if got, err := f.ReadAt(b, int64(off)); got < len(b) {
			return nil, err
		}
		return b, nil
	}
	err = decs.Each(func(d decision) error {
		ok := false
		if d.kind == decOutput {
			line, err := readAt(m.lines, d.out.off, d.out.n)
			if err != nil {
				return err
			}
			out.Write(line)
			out.WriteByte('\n')
			if d.out.ok {
				ok = true
				s.Succeeded++
				model := m.strs[d.out.model]
				u := usage[model]
				if u == nil {
					u = &ModelUsage{Model: model}
					usage[model] = u
				}
				u.Requests++
				u.PromptTokens += d.out.prompt
				u.CompletionTokens += d.out.output
			} else {
				s.Failed++
				s.FailedByCode[m.strs[d.out.code]]++
			}
		} else {
			id, err := readAt(inCopy, d.inOff, d.idLen)
			if err != nil {
				return err
			}
			code, msg := CodeMissingResult, "no output line for this custom_id"
			if d.kind == decRepeated {
				msg = "custom_id repeated in the input; its only output line went to the first occurrence"
			} else if opts.Missing != nil {
				code, msg = opts.Missing(int(d.shard))
			}
			var sl synthLine
			sl.CustomID, sl.Error.Code, sl.Error.Message = string(id), code, msg
			b, _ := json.Marshal(sl)
			out.Write(b)
			out.WriteByte('\n')
			s.Failed++
			s.Synthesized++
			s.FailedByCode[code]++
		}
		if failed != nil && !ok {
			raw, err := readAt(inCopy, d.inOff+uint64(d.idLen), d.rawLen)
			if err != nil {
				return err
			}
			failed.Write(raw)
			failed.WriteByte('\n')
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	var um *bufio.Writer
	if opts.Unmatched != nil {
		um = bufio.NewWriter(opts.Unmatched)
	}
	err = left.Each(func(e outEntry) error {
		line, err := readAt(m.lines, e.off, e.n)
		if err != nil {
			return err
		}
		s.Unmatched++
		if len(s.UnmatchedIDs) < 20 {
			s.UnmatchedIDs = append(s.UnmatchedIDs, customIDOf(line))
		}
		if um != nil {
			um.Write(line)
			um.WriteByte('\n')
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	slices.SortFunc(dups, func(a, b dupWarning) int { return cmp.Compare(a.dup.seq, b.dup.seq) })
	for i, d := range dups {
		if i == maxWarnings {
			break
		}
		line, err := readAt(m.lines, d.dup.off, d.dup.n)
		if err != nil {
			return s, err
		}
		m.Warnings = append(m.Warnings, fmt.Sprintf("%s:%d: custom_id %q appears again (first at %s:%d)",
			m.strs[d.dup.src], d.dup.srcLine, customIDOf(line), m.strs[d.first.src], d.first.srcLine))
	}
	if m.Duplicates > maxWarnings {
		m.Warnings = append(m.Warnings, fmt.Sprintf("... and %d more output lines with a custom_id seen before", m.Duplicates-maxWarnings))
	}
	for _, u := range usage {
		s.PromptTokens += u.PromptTokens
		s.CompletionTokens += u.CompletionTokens
		if opts.Registry != nil && u.Model != "" {
			if r := opts.Registry.Lookup(u.Model); r.Model != nil {
				_, u.CostUSD = tokens.Cost(r.Model, u.PromptTokens, u.CompletionTokens)
				u.CostUSD = roundUSD(u.CostUSD)
			}
		}
		s.CostUSD = roundUSD(s.CostUSD + u.CostUSD)
		s.Usage = append(s.Usage, u)
	}
	sort.Slice(s.Usage, func(a, b int) bool { return s.Usage[a].Model < s.Usage[b].Model })
	for _, w := range []*bufio.Writer{out, failed, um} {
		if w != nil {
			if err := w.Flush(); err != nil {
				return s, err
			}
		}
	}
	return s, nil
}

// customIDOf is the custom_id of an output line (read when it was added).
func customIDOf(line []byte) string {
	var o struct {
		CustomID string `json:"custom_id"`
	}
	_ = json.Unmarshal(line, &o)
	return o.CustomID
}

// ---- input iterators ----

// FileInput iterates a request file directly (offline join, `batch results
// --from-file ... --input FILE`): custom_id from each line's envelope, or
// "line-N" for a bare request body (as input.Scan names them). Blank lines,
// a BOM and CRLF are tolerated; a line that is not a JSON object is an
// error naming file:line.
type FileInput struct {
	name  string
	f     io.ReadCloser
	lines chan fileLine
	done  chan struct{}
}

type fileLine struct {
	il  InputLine
	err error
}

// OpenFileInput opens path as a FileInput.
func OpenFileInput(path string) (*FileInput, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi := &FileInput{name: path, f: f, lines: make(chan fileLine, 256), done: make(chan struct{})}
	go fi.run()
	return fi, nil
}

func (fi *FileInput) run() {
	defer close(fi.lines)
	err := readLines(fi.f, func(n int, b []byte) error {
		var env struct {
			CustomID *string         `json:"custom_id"`
			Body     json.RawMessage `json:"body"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			return fmt.Errorf("%s:%d: not a JSON request object: %w", fi.name, n, err)
		}
		id := "line-" + strconv.Itoa(n)
		if env.CustomID != nil {
			id = *env.CustomID
		}
		select {
		case fi.lines <- fileLine{il: InputLine{CustomID: id, Raw: bytes.Clone(b), File: fi.name, Line: n}}:
			return nil
		case <-fi.done:
			return io.EOF
		}
	})
	if err != nil && !errors.Is(err, io.EOF) {
		select {
		case fi.lines <- fileLine{err: err}:
		case <-fi.done:
		}
	}
}

// Next returns the next request.
func (fi *FileInput) Next() (InputLine, error) {
	l, ok := <-fi.lines
	if !ok {
		return InputLine{}, io.EOF
	}
	return l.il, l.err
}

// Close stops reading.
func (fi *FileInput) Close() error {
	select {
	case <-fi.done:
	default:
		close(fi.done)
	}
	for range fi.lines {
	}
	return fi.f.Close()
}

// JobInput iterates a job's requests in input order from its order file
// and shard files.
type JobInput struct {
	order  *bufio.Reader
	orderF *os.File
	shards []*bufio.Reader
	files  []*os.File
	n      int
}

// OpenJobInput opens the order file and every shard file of job.
func OpenJobInput(job *Job) (*JobInput, error) {
	of, err := os.Open(job.OrderPath())
	if err != nil {
		return nil, fmt.Errorf("job %s: shard files are gone (%w); they are needed to join results in input order", job.ID, err)
	}
	ji := &JobInput{order: bufio.NewReader(of), orderF: of}
	for _, s := range job.Shards {
		f, err := os.Open(job.ShardPath(s))
		if err != nil {
			ji.Close()
			return nil, fmt.Errorf("job %s: %w", job.ID, err)
		}
		ji.files = append(ji.files, f)
		ji.shards = append(ji.shards, bufio.NewReaderSize(f, 256<<10))
	}
	return ji, nil
}

// Next returns the next request in input order.
func (ji *JobInput) Next() (InputLine, error) {
	var idx [4]byte
	if _, err := io.ReadFull(ji.order, idx[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return InputLine{}, fmt.Errorf("order file is truncated")
		}
		return InputLine{}, err
	}
	k := int(binary.LittleEndian.Uint32(idx[:]))
	if k >= len(ji.shards) {
		return InputLine{}, fmt.Errorf("order file names shard %d of %d", k, len(ji.shards))
	}
	line, err := ji.shards[k].ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return InputLine{}, fmt.Errorf("shard %d ends early: %w", k, err)
	}
	line = bytes.TrimRight(line, "\r\n")
	ji.n++
	var env struct {
		CustomID string `json:"custom_id"`
	}
	if err := json.Unmarshal(line, &env); err != nil {
		return InputLine{}, fmt.Errorf("shard %d: %w", k, err)
	}
	return InputLine{CustomID: env.CustomID, Raw: line, Shard: k, Line: ji.n}, nil
}

// Close closes every file.
func (ji *JobInput) Close() error {
	for _, f := range ji.files {
		f.Close()
	}
	return ji.orderF.Close()
}

// roundUSD rounds a cost to 1e-10 USD, dropping float noise
// (0.0000042000000000000004 → 0.0000042) while keeping the cost of a
// single token (≥ 1e-8 USD at today's prices) exact.
func roundUSD(x float64) float64 { return math.Round(x*1e10) / 1e10 }

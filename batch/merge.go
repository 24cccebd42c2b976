package batch

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"

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

// result is one output/error line kept for the join.
type result struct {
	line    []byte
	matched bool
	ok      bool
	code    string
	model   string
	prompt  int64
	output  int64
	source  string
	srcLine int
}

// Merger joins Batch output and error files to the input strictly on
// custom_id. Add every output and error file first, then call Merge.
type Merger struct {
	byID       map[string]*result
	seen       []string // custom_ids in the order first met (for unmatched)
	Duplicates int      // output lines whose custom_id was already seen
	Warnings   []string
}

// NewMerger returns an empty Merger.
func NewMerger() *Merger { return &Merger{byID: map[string]*result{}} }

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
// over a failure and the duplicate is counted.
func (m *Merger) AddOutput(name string, r io.Reader) error {
	return readLines(r, func(n int, b []byte) error {
		var o outputLine
		if err := json.Unmarshal(b, &o); err != nil {
			return fmt.Errorf("%s:%d: not a Batch output line: %w", name, n, err)
		}
		if o.CustomID == nil {
			return fmt.Errorf("%s:%d: output line has no custom_id", name, n)
		}
		ok, code, body := classifyLine(&o)
		res := &result{line: bytes.Clone(b), ok: ok, code: code, source: name, srcLine: n}
		if body != nil {
			res.model = body.Model
			if u := body.Usage; u != nil {
				res.prompt = u.PromptTokens + u.InputTokens
				res.output = u.CompletionTokens + u.OutputTokens
			}
		}
		id := *o.CustomID
		if prev, dup := m.byID[id]; dup {
			m.Duplicates++
			m.Warnings = append(m.Warnings, fmt.Sprintf("%s:%d: custom_id %q appears again (first at %s:%d)", name, n, id, prev.source, prev.srcLine))
			if prev.ok || !ok {
				return nil
			}
		} else {
			m.seen = append(m.seen, id)
		}
		m.byID[id] = res
		return nil
	})
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

// Merge walks the input in order and writes, for each request, its output
// line (or a synthesized error line when none exists) to Out, and its
// input line to Failed when it did not succeed. Output lines left over
// (custom_ids in no input) go to Unmatched. Merge may be called once.
func (m *Merger) Merge(in InputIter, opts MergeOptions) (MergeSummary, error) {
	s := MergeSummary{FailedByCode: map[string]int{}, Duplicates: m.Duplicates}
	usage := map[string]*ModelUsage{}
	out := bufio.NewWriterSize(opts.Out, 256<<10)
	var failed *bufio.Writer
	if opts.Failed != nil {
		failed = bufio.NewWriterSize(opts.Failed, 256<<10)
	}
	for {
		il, err := in.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s, err
		}
		s.Requests++
		res, found := m.byID[il.CustomID]
		if found && !res.matched {
			// Keep the entry (marked) so a repeated input custom_id is noticed.
			res.matched = true
			out.Write(res.line)
			out.WriteByte('\n')
			res.line = nil
			if res.ok {
				s.Succeeded++
				model := res.model
				u := usage[model]
				if u == nil {
					u = &ModelUsage{Model: model}
					usage[model] = u
				}
				u.Requests++
				u.PromptTokens += res.prompt
				u.CompletionTokens += res.output
				continue
			}
			s.Failed++
			s.FailedByCode[res.code]++
		} else {
			code, msg := CodeMissingResult, "no output line for this custom_id"
			if found {
				msg = "custom_id repeated in the input; its only output line went to the first occurrence"
			} else if opts.Missing != nil {
				code, msg = opts.Missing(il.Shard)
			}
			var sl synthLine
			sl.CustomID, sl.Error.Code, sl.Error.Message = il.CustomID, code, msg
			b, _ := json.Marshal(sl)
			out.Write(b)
			out.WriteByte('\n')
			s.Failed++
			s.Synthesized++
			s.FailedByCode[code]++
		}
		if failed != nil {
			failed.Write(il.Raw)
			failed.WriteByte('\n')
		}
	}
	var um *bufio.Writer
	if opts.Unmatched != nil {
		um = bufio.NewWriter(opts.Unmatched)
	}
	for _, id := range m.seen {
		res := m.byID[id]
		if res.matched {
			continue
		}
		s.Unmatched++
		if len(s.UnmatchedIDs) < 20 {
			s.UnmatchedIDs = append(s.UnmatchedIDs, id)
		}
		if um != nil {
			um.Write(res.line)
			um.WriteByte('\n')
		}
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

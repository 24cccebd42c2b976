package batch

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"os"
	"path/filepath"
)

const orderFile = "order"

// embeddingsURL is the endpoint whose batches are capped by embedding
// inputs too (MaxEmbeddingInputsPerBatch).
const embeddingsURL = "/v1/embeddings"

// SplitOptions configure a Splitter. Zero limits mean the Batch API's
// (MaxRequestsPerBatch, MaxBytesPerBatch); tests lower them.
type SplitOptions struct {
	// Dir is the directory the shard files are written to (created).
	Dir string
	// MaxRequests is the most requests per shard (≤ MaxRequestsPerBatch).
	MaxRequests int
	// MaxBytes is the largest shard file, in bytes (≤ MaxBytesPerBatch).
	MaxBytes int64
	// MaxInputs is the most embedding inputs per /v1/embeddings shard
	// (≤ MaxEmbeddingInputsPerBatch; tests lower it).
	MaxInputs int64
	// QueueLimit returns model's enqueued-token limit in tokens (0 = none
	// known). A shard never holds more tokens than that, so it can run
	// alone in an empty queue.
	QueueLimit func(model string) int64
}

// Line is one request as the splitter needs it: the normalised line to
// upload (Raw: no BOM, no line ending, no trailing whitespace), its
// endpoint, model, enqueued tokens (prompt + output budget × n) and where
// it came from (for error messages).
type Line struct {
	File     string
	Line     int
	CustomID string
	URL      string
	Model    string
	Tokens   int64
	// Inputs is the request's embedding inputs (/v1/embeddings only).
	Inputs int64
	Raw    []byte
	// Bare marks a bare request body: the splitter wraps it in the Batch
	// input envelope {"custom_id","method","url","body"}.
	Bare bool
}

// Splitter streams requests into shard files, one open shard per
// (endpoint, model) group, starting a new shard whenever the next request
// would push the open one over the request, byte or enqueued-token limit.
// It also records the input order (which shard each request went to) and
// hashes the normalised input. Memory use is the write buffers only.
type Splitter struct {
	opts   SplitOptions
	groups map[[2]string]*openShard
	shards []*Shard
	order  *bufio.Writer
	orderF *os.File
	hash   hash.Hash
	n      int
}

type openShard struct {
	shard *Shard
	f     *os.File
	w     *bufio.Writer
}

// NewSplitter creates opts.Dir and the order file in it.
func NewSplitter(opts SplitOptions) (*Splitter, error) {
	if opts.MaxRequests <= 0 || opts.MaxRequests > MaxRequestsPerBatch {
		opts.MaxRequests = MaxRequestsPerBatch
	}
	if opts.MaxBytes <= 0 || opts.MaxBytes > MaxBytesPerBatch {
		opts.MaxBytes = MaxBytesPerBatch
	}
	if opts.MaxInputs <= 0 || opts.MaxInputs > MaxEmbeddingInputsPerBatch {
		opts.MaxInputs = MaxEmbeddingInputsPerBatch
	}
	if opts.QueueLimit == nil {
		opts.QueueLimit = func(string) int64 { return 0 }
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	of, err := os.Create(filepath.Join(opts.Dir, orderFile))
	if err != nil {
		return nil, err
	}
	return &Splitter{
		opts: opts, groups: map[[2]string]*openShard{},
		order: bufio.NewWriterSize(of, 64<<10), orderF: of, hash: sha256.New(),
	}, nil
}

// envelope is the Batch input line a bare body is wrapped in.
type envelope struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// Add appends one request to the open shard of its group. A request that
// alone exceeds the byte or enqueued-token limit is an error naming its
// file, line and custom_id: no shard could ever carry it.
func (s *Splitter) Add(l Line) error {
	raw := l.Raw
	if l.Bare {
		b, err := json.Marshal(envelope{CustomID: l.CustomID, Method: "POST", URL: l.URL, Body: l.Raw})
		if err != nil {
			return fmt.Errorf("%s:%d: custom_id %q: wrapping bare body: %w", l.File, l.Line, l.CustomID, err)
		}
		raw = b
	}
	size := int64(len(raw)) + 1
	if size > s.opts.MaxBytes {
		return fmt.Errorf("%s:%d: custom_id %q: request is %d bytes, over the %d-byte limit of one batch file", l.File, l.Line, l.CustomID, size, s.opts.MaxBytes)
	}
	limit := s.opts.QueueLimit(l.Model)
	if limit > 0 && l.Tokens > limit {
		return fmt.Errorf("%s:%d: custom_id %q: request needs %d enqueued tokens, over the enqueued-token limit %d of %s", l.File, l.Line, l.CustomID, l.Tokens, limit, l.Model)
	}
	inputs := int64(0)
	if l.URL == embeddingsURL {
		inputs = l.Inputs
		if inputs > s.opts.MaxInputs {
			return fmt.Errorf("%s:%d: custom_id %q: request has %d embedding inputs, over the %d of one embeddings batch", l.File, l.Line, l.CustomID, inputs, s.opts.MaxInputs)
		}
	}
	key := [2]string{l.URL, l.Model}
	g := s.groups[key]
	if g != nil {
		sh := g.shard
		if sh.Requests+1 > s.opts.MaxRequests || sh.Bytes+size > s.opts.MaxBytes || (limit > 0 && sh.Tokens+l.Tokens > limit) ||
			sh.Inputs+inputs > s.opts.MaxInputs {
			if err := g.close(); err != nil {
				return err
			}
			g = nil
		}
	}
	if g == nil {
		var err error
		if g, err = s.open(l.URL, l.Model); err != nil {
			return err
		}
		s.groups[key] = g
	}
	if _, err := g.w.Write(raw); err != nil {
		return err
	}
	if err := g.w.WriteByte('\n'); err != nil {
		return err
	}
	s.hash.Write(raw)
	s.hash.Write([]byte{'\n'})
	g.shard.Requests++
	g.shard.Bytes += size
	g.shard.Tokens += l.Tokens
	g.shard.Inputs += inputs
	var idx [4]byte
	binary.LittleEndian.PutUint32(idx[:], uint32(g.shard.Index))
	_, err := s.order.Write(idx[:])
	s.n++
	return err
}

func (s *Splitter) open(url, model string) (*openShard, error) {
	sh := &Shard{Index: len(s.shards), Endpoint: url, Model: model, Status: StatusPending}
	sh.File = fmt.Sprintf("shard-%03d.jsonl", sh.Index)
	f, err := os.Create(filepath.Join(s.opts.Dir, sh.File))
	if err != nil {
		return nil, err
	}
	s.shards = append(s.shards, sh)
	return &openShard{shard: sh, f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (g *openShard) close() error {
	if g.f == nil {
		return nil
	}
	err := g.w.Flush()
	if cerr := g.f.Close(); err == nil {
		err = cerr
	}
	g.f = nil
	return err
}

// Close flushes and closes every shard file and the order file, and
// returns the shards in creation order, the number of requests added and
// the hex SHA-256 of the normalised input (each line + "\n", in input order).
func (s *Splitter) Close() (shards []*Shard, requests int, sha string, err error) {
	for _, g := range s.groups {
		if cerr := g.close(); err == nil {
			err = cerr
		}
	}
	if ferr := s.order.Flush(); err == nil {
		err = ferr
	}
	if cerr := s.orderF.Close(); err == nil {
		err = cerr
	}
	return s.shards, s.n, hex.EncodeToString(s.hash.Sum(nil)), err
}

// Abort closes everything and removes the shard directory.
func (s *Splitter) Abort() {
	s.Close()
	os.RemoveAll(s.opts.Dir)
}

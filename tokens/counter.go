package tokens

import (
	"fmt"
	"hash/maphash"
	"sort"
	"sync"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"

	"github.com/oairl/oairl/internal/models"
)

func init() {
	// Never download: pkoukk's default loader fetches the vocabularies over
	// HTTP; the offline loader reads the copies embedded in the binary.
	tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
}

// encoders loads each encoding once, on first use, and shares it.
type encoders struct {
	mu sync.Mutex
	m  map[string]*lazyEncoder
}

type lazyEncoder struct {
	once sync.Once
	enc  *encoder
	err  error
}

var defaultEncoders = &encoders{m: map[string]*lazyEncoder{}}

func (es *encoders) get(name string) (*encoder, error) {
	es.mu.Lock()
	l, ok := es.m[name]
	if !ok {
		l = &lazyEncoder{}
		es.m[name] = l
	}
	es.mu.Unlock()
	l.once.Do(func() { l.enc, l.err = loadEncoder(name) })
	return l.enc, l.err
}

// referenceEncoding returns pkoukk/tiktoken-go's own encoder for name
// (regexp2 + its merge; slow, quadratic on long words). Used by
// Options.Reference and by the exactness tests.
func referenceEncoding(name string) (*tiktoken.Tiktoken, error) {
	if _, ok := encodingSpecs[name]; !ok {
		return nil, fmt.Errorf("unknown encoding %q", name)
	}
	return tiktoken.GetEncoding(name)
}

var (
	refEncMu sync.Mutex
	refEncs  = map[string]*tiktoken.Tiktoken{}
)

func sharedReference(name string) (*tiktoken.Tiktoken, error) {
	refEncMu.Lock()
	defer refEncMu.Unlock()
	if e, ok := refEncs[name]; ok {
		return e, nil
	}
	e, err := referenceEncoding(name)
	if err != nil {
		return nil, err
	}
	refEncs[name] = e
	return e, nil
}

// textCache remembers the token counts of long texts that repeat (system
// prompts, shared instructions). It is keyed by a 64-bit hash of the text
// (one cache per encoding), not by the text: a text-keyed cache kept every
// distinct prompt alive and tripled peak memory (shared/research/tokenizers.md).
// A hash collision (probability ~n²/2⁶⁴) would return another text's count.
type textCache struct {
	shards [16]cacheShard
}

type cacheShard struct {
	mu sync.Mutex
	m  map[uint64]int32
}

const (
	cacheMinLen      = 256     // bytes; shorter texts are cheaper to count than to look up
	cacheShardMaxLen = 1 << 12 // entries per shard (65,536 per encoding, ~2 MB)
)

var cacheSeed = maphash.MakeSeed()

func (c *textCache) get(h uint64) (int, bool) {
	s := &c.shards[h&15]
	s.mu.Lock()
	n, ok := s.m[h]
	s.mu.Unlock()
	return int(n), ok
}

func (c *textCache) put(h uint64, n int) {
	s := &c.shards[h&15]
	s.mu.Lock()
	if s.m == nil || len(s.m) >= cacheShardMaxLen {
		s.m = make(map[uint64]int32, 64) // bounded: start over when full
	}
	s.m[h] = int32(n)
	s.mu.Unlock()
}

// Counter counts tokens and analyses request bodies. Safe for concurrent
// use; encodings load lazily, once per process, when a request first needs
// them (o200k_base ≈ 25–50 ms and ~7 MB, cl100k_base about half).
type Counter struct {
	opts  Options
	reg   *models.Registry
	mu    sync.Mutex
	cache map[string]*textCache
	ids   suggestIDs
}

// NewCounter returns a Counter. A nil Options.Registry means the built-in
// registry (models.Default()).
func NewCounter(opts Options) *Counter {
	reg := opts.Registry
	if reg == nil {
		reg = models.Default()
	}
	return &Counter{opts: opts, reg: reg, cache: map[string]*textCache{}}
}

// CountText returns the number of tokens of text in encoding
// ("o200k_base", "cl100k_base", "p50k_base", "p50k_edit", "r50k_base"),
// special-token literals counted as ordinary text (as the API does for
// user content). Invalid UTF-8 bytes count as U+FFFD each. Errors: unknown
// encoding, or a panic inside the tokenizer (recovered).
func (c *Counter) CountText(encoding, text string) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("counting tokens (%s): tokenizer panic: %v", encoding, r)
		}
	}()
	if c.opts.Reference {
		e, err := sharedReference(encoding)
		if err != nil {
			return 0, err
		}
		return len(e.EncodeOrdinary(text)), nil
	}
	e, err := defaultEncoders.get(encoding)
	if err != nil {
		return 0, err
	}
	if len(text) < cacheMinLen || c.opts.NoCache {
		return e.count(text), nil
	}
	tc := c.textCache(encoding)
	h := maphash.String(cacheSeed, text)
	if n, ok := tc.get(h); ok {
		return n, nil
	}
	n = e.count(text)
	tc.put(h, n)
	return n, nil
}

func (c *Counter) textCache(encoding string) *textCache {
	c.mu.Lock()
	defer c.mu.Unlock()
	tc, ok := c.cache[encoding]
	if !ok {
		tc = &textCache{}
		c.cache[encoding] = tc
	}
	return tc
}

// Encode returns the token ids of text in encoding (encode_ordinary:
// special-token literals are ordinary text). For tests and tools; counting
// should use CountText.
func (c *Counter) Encode(encoding, text string) (ids []int, err error) {
	defer func() {
		if r := recover(); r != nil {
			ids, err = nil, fmt.Errorf("encoding tokens (%s): tokenizer panic: %v", encoding, r)
		}
	}()
	if c.opts.Reference {
		e, err := sharedReference(encoding)
		if err != nil {
			return nil, err
		}
		return e.EncodeOrdinary(text), nil
	}
	e, err := defaultEncoders.get(encoding)
	if err != nil {
		return nil, err
	}
	return e.encode(text), nil
}

// Encodings returns the encoding names CountText and Options.Encoding
// accept, sorted: cl100k_base, o200k_base, p50k_base, p50k_edit, r50k_base.
func Encodings() []string {
	out := make([]string, 0, len(encodingSpecs))
	for name := range encodingSpecs {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

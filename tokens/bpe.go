package tokens

// The fast encoder: the same vocabularies as pkoukk/tiktoken-go (the
// .tiktoken files embedded by pkoukk/tiktoken-go-loader), a hand-written
// pre-tokeniser per encoding (pretok.go) instead of regexp2, and the
// tiktoken byte-pair merge. Pieces longer than heapMergeMin bytes use a
// heap-based merge, which gives the identical result (lowest rank first,
// leftmost on ties) in O(n log n) instead of O(n²): openai/tiktoken#195 and
// case B27 (1,000,000 × "a" must not hang).
//
// Exactness is checked against pkoukk's own Encode in encoding_test.go
// (fixed id vectors, a varied corpus and a fuzz test).

import (
	"fmt"
	"io"
	"math"
	"unicode/utf8"
	"unsafe"

	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// heapMergeMin is the piece length (bytes) from which the heap merge is
// used. Below it the simple quadratic scan is faster.
const heapMergeMin = 256

// encoder is one loaded encoding. Immutable after load; safe for
// concurrent use.
type encoder struct {
	name  string
	ranks *rankTable // token bytes → rank (= token id)
	split func(s string, fn func(piece string))
}

// encodingSpec says which vocabulary file and pre-tokeniser an encoding uses.
type encodingSpec struct {
	file  string
	split func(s string, fn func(piece string))
}

// encodingSpecs are the encodings oairl can count with. p50k_edit shares
// p50k_base's vocabulary and pattern (its special tokens never apply:
// special-token literals are ordinary text here).
var encodingSpecs = map[string]encodingSpec{
	"o200k_base":  {"o200k_base.tiktoken", splitO200k},
	"cl100k_base": {"cl100k_base.tiktoken", splitCl100k},
	"p50k_base":   {"p50k_base.tiktoken", splitP50k},
	"p50k_edit":   {"p50k_base.tiktoken", splitP50k},
	"r50k_base":   {"r50k_base.tiktoken", splitP50k},
}

// loadEncoder parses an embedded .tiktoken file ("base64-token rank" per
// line), streaming it (no copy of the 3.6 MB file) into one buffer of
// token bytes, and builds the rankTable in a second goroutine while the
// parse goes on (loading is what a one-line `oairl count` waits for).
func loadEncoder(name string) (*encoder, error) {
	spec, ok := encodingSpecs[name]
	if !ok {
		return nil, fmt.Errorf("unknown encoding %q (known: o200k_base, cl100k_base, p50k_base, p50k_edit, r50k_base)", name)
	}
	f, err := assets.Assets.Open(spec.file)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", name, err)
	}
	// Token bytes are at most 3/4 of the file, and a line has at least 7
	// bytes ("AA== 0\n"), so these never grow: the table builder reads
	// what the parser has published while the parser appends. Capacity
	// that is never written is never touched (no page faults).
	buf := make([]byte, st.Size()*3/4+4)
	maxLines := int(st.Size()/7) + 1
	offs := make([]uint32, 1, maxLines+1)
	ranks := make([]uint32, 0, maxLines)
	all := unsafe.String(&buf[0], len(buf))
	expect := int(st.Size() / 18) // ~18 bytes per line in these files
	if expect > maxTableSize {
		expect = maxTableSize
	}
	table := allocRankTable(all, expect)
	published := make(chan int, 64) // number of tokens parsed so far
	built := make(chan struct{})
	offsAll, ranksAll := offs[:cap(offs)], ranks[:cap(ranks)]
	go func() {
		defer close(built)
		lo := 0
		for hi := range published {
			if hi > len(table.slots)/2 {
				continue // more tokens than expected: rebuilt below
			}
			table.insert(lo, hi, offsAll, ranksAll)
			lo = hi
		}
	}()
	parseErr := func() error {
		defer close(published)
		// One pass over 256 KB chunks: "base64 SP digits LF" per line,
		// decoded in place (bufio + bytes.IndexByte + base64.Decode per
		// 18-byte line cost twice as much).
		chunk := make([]byte, 256<<10)
		have, used := 0, 0
		for eof := false; !eof; {
			m, err := io.ReadFull(f, chunk[have:])
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				eof = true
			} else if err != nil {
				return fmt.Errorf("encoding %s: %w", name, err)
			}
			data := chunk[:have+m]
			for len(data) > 0 {
				sp, end := -1, -1
				for i, c := range data {
					if c == ' ' && sp < 0 {
						sp = i
					} else if c == '\n' {
						end = i
						break
					}
				}
				if end < 0 {
					if !eof {
						break // partial line: keep it for the next chunk
					}
					end = len(data)
				}
				line := data[:end]
				if end < len(data) {
					data = data[end+1:]
				} else {
					data = nil
				}
				if len(line) == 0 {
					continue
				}
				if sp < 0 || sp+1 >= len(line) || used+sp > len(buf) || len(ranks) == cap(ranks) {
					return fmt.Errorf("encoding %s: malformed line %q", name, line)
				}
				n, ok := decodeBase64(buf[used:], line[:sp])
				if !ok {
					return fmt.Errorf("encoding %s: bad base64 in %q", name, line)
				}
				used += n
				rank := uint32(0)
				for _, c := range line[sp+1:] {
					if c < '0' || c > '9' {
						return fmt.Errorf("encoding %s: malformed rank in %q", name, line)
					}
					rank = rank*10 + uint32(c-'0')
				}
				offs = append(offs, uint32(used))
				ranks = append(ranks, rank)
				if len(ranks)%4096 == 0 {
					published <- len(ranks)
				}
			}
			have = copy(chunk, data)
			if have == len(chunk) {
				return fmt.Errorf("encoding %s: line longer than %d bytes", name, len(chunk))
			}
		}
		published <- len(ranks)
		return nil
	}()
	<-built
	if parseErr != nil {
		return nil, parseErr
	}
	if len(ranks) > maxTableSize {
		return nil, fmt.Errorf("encoding %s: %d tokens, more than the table holds", name, len(ranks))
	}
	if len(ranks) > len(table.slots)/2 {
		table = newRankTable(all, offs, ranks)
	}
	table.offs, table.ranks = offs, ranks
	return &encoder{name: name, ranks: table, split: spec.split}, nil
}

var b64 = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = byte(i)
	}
	return t
}()

// decodeBase64 decodes padded standard base64 src into dst (which has
// room for 3/4 of len(src)) and returns the number of bytes written.
func decodeBase64(dst, src []byte) (int, bool) {
	if len(src) == 0 || len(src)%4 != 0 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(src); i += 4 {
		a, b := b64[src[i]], b64[src[i+1]]
		if (a|b)&0xc0 != 0 {
			return 0, false
		}
		if src[i+3] == '=' {
			if i+4 != len(src) {
				return 0, false
			}
			dst[n] = a<<2 | b>>4
			if src[i+2] == '=' {
				return n + 1, true
			}
			c := b64[src[i+2]]
			if c&0xc0 != 0 {
				return 0, false
			}
			dst[n+1] = b<<4 | c>>2
			return n + 2, true
		}
		c, d := b64[src[i+2]], b64[src[i+3]]
		if (c|d)&0xc0 != 0 {
			return 0, false
		}
		dst[n], dst[n+1], dst[n+2] = a<<2|b>>4, b<<4|c>>2, c<<6|d
		n += 3
	}
	return n, true
}

// sanitize makes text valid UTF-8 the way pkoukk/regexp2 see it: each
// invalid byte becomes U+FFFD.
func sanitize(text string) string {
	if utf8.ValidString(text) {
		return text
	}
	return string([]rune(text))
}

// count returns the number of tokens of text, special-token literals
// counted as ordinary text (tiktoken encode_ordinary).
func (e *encoder) count(text string) int {
	text = sanitize(text)
	n := 0
	var scratch []int
	e.split(text, func(piece string) {
		if _, ok := e.ranks.get(piece); ok {
			n++
			return
		}
		scratch = e.bpe(piece, scratch[:0])
		n += len(scratch)
	})
	return n
}

// encode returns the token ids of text (encode_ordinary).
func (e *encoder) encode(text string) []int {
	text = sanitize(text)
	var out []int
	e.split(text, func(piece string) {
		if r, ok := e.ranks.get(piece); ok {
			out = append(out, int(r))
			return
		}
		out = e.bpe(piece, out)
	})
	return out
}

// bpe appends the token ids of one pre-tokenised piece to out.
func (e *encoder) bpe(piece string, out []int) []int {
	if len(piece) == 1 {
		r, _ := e.ranks.get(piece)
		return append(out, int(r))
	}
	if len(piece) >= heapMergeMin {
		return e.bpeHeap(piece, out)
	}
	return e.bpeSmall(piece, out)
}

const noRank = math.MaxUint32

// bpeSmall is tiktoken's _byte_pair_merge: parts[i] = (start offset, rank
// of merging part i with part i+1); repeatedly merge the lowest rank,
// leftmost first.
func (e *encoder) bpeSmall(piece string, out []int) []int {
	type part struct {
		start int
		rank  uint32
	}
	var stack [heapMergeMin + 1]part
	parts := stack[:0]
	rankOf := func(a, b int) uint32 {
		if r, ok := e.ranks.get(piece[a:b]); ok {
			return r
		}
		return noRank
	}
	for i := 0; i < len(piece)-1; i++ {
		parts = append(parts, part{i, rankOf(i, i+2)})
	}
	parts = append(parts, part{len(piece) - 1, noRank}, part{len(piece), noRank})
	getRank := func(i int) uint32 {
		if i+3 < len(parts) {
			return rankOf(parts[i].start, parts[i+3].start)
		}
		return noRank
	}
	for {
		minR, minI := uint32(noRank), -1
		for i := 0; i < len(parts)-1; i++ {
			if parts[i].rank < minR {
				minR, minI = parts[i].rank, i
			}
		}
		if minI < 0 {
			break
		}
		i := minI
		if i > 0 {
			parts[i-1].rank = getRank(i - 1)
		}
		parts[i].rank = getRank(i)
		parts = append(parts[:i+1], parts[i+2:]...)
	}
	for i := 0; i < len(parts)-1; i++ {
		r, _ := e.ranks.get(piece[parts[i].start:parts[i+1].start])
		out = append(out, int(r))
	}
	return out
}

// mergeItem is a candidate merge of the part starting at start with its
// successor, at rank.
type mergeItem struct {
	rank  uint32
	start int32
}

func (a mergeItem) less(b mergeItem) bool {
	return a.rank < b.rank || a.rank == b.rank && a.start < b.start
}

// mergeHeap is a binary min-heap of merge candidates (by rank, then start).
type mergeHeap []mergeItem

func (h *mergeHeap) push(it mergeItem) {
	*h = append(*h, it)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].less(q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *mergeHeap) pop() mergeItem {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(q) && q[l].less(q[m]) {
			m = l
		}
		if r := l + 1; r < len(q) && q[r].less(q[m]) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

// bpeHeap gives the same merges as bpeSmall: the lowest rank is merged
// first and, among equal ranks, the leftmost (smallest start offset, which
// is the leftmost position in the current part list). Parts are a linked
// list indexed by their start byte (next < 0: merged away). A popped
// candidate is acted on only if it still describes the current pair at
// its start (same rank); it is then the minimum of the current pairs, as
// in the quadratic scan. 16 bytes per byte of piece.
func (e *encoder) bpeHeap(piece string, out []int) []int {
	n := len(piece)
	next := make([]int32, n+1)
	prev := make([]int32, n+1)
	for i := 0; i <= n; i++ {
		next[i], prev[i] = int32(i+1), int32(i-1)
	}
	rankAt := func(i int32) uint32 { // rank of merging part i with next(i)
		j := next[i]
		if int(j) >= n {
			return noRank
		}
		if r, ok := e.ranks.get(piece[i:next[j]]); ok {
			return r
		}
		return noRank
	}
	h := make(mergeHeap, 0, n)
	for i := int32(0); int(i) < n-1; i++ {
		if r := rankAt(i); r != noRank {
			h = append(h, mergeItem{r, i})
		}
	}
	// heapify
	for i := len(h)/2 - 1; i >= 0; i-- {
		for j := i; ; {
			l, m := 2*j+1, j
			if l < len(h) && h[l].less(h[m]) {
				m = l
			}
			if r := l + 1; r < len(h) && h[r].less(h[m]) {
				m = r
			}
			if m == j {
				break
			}
			h[j], h[m] = h[m], h[j]
			j = m
		}
	}
	for len(h) > 0 {
		it := h.pop()
		i := it.start
		if next[i] < 0 || rankAt(i) != it.rank {
			continue // stale: the pair at i has changed
		}
		j := next[i]
		next[i] = next[j]
		next[j] = -1
		if int(next[i]) <= n {
			prev[next[i]] = i
		}
		if r := rankAt(i); r != noRank {
			h.push(mergeItem{r, i})
		}
		if p := prev[i]; p >= 0 {
			if r := rankAt(p); r != noRank {
				h.push(mergeItem{r, p})
			}
		}
	}
	for i := int32(0); int(i) < n; i = next[i] {
		r, _ := e.ranks.get(piece[i:next[i]])
		out = append(out, int(r))
	}
	return out
}

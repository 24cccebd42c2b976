package tokens

// Hand-written pre-tokenisers, one per tiktoken pattern. Each is an exact
// re-implementation of the backtracking regexp (dlclark/regexp2 semantics,
// as pkoukk/tiktoken-go runs them: leftmost alternative first, greedy
// quantifiers with backtracking, \s = unicode.IsSpace, \p{..} = Go's
// unicode tables, (?i) folds with unicode.ToLower) so that the pieces are
// byte-identical to pkoukk's. Profiling pkoukk showed regexp2 taking most
// of the time; this removes it. The patterns (pkoukk encoding.go, from
// openai/tiktoken tiktoken_ext/openai_public.py):
//
//	o200k_base: [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	          | [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	          | \p{N}{1,3} | ?[^\s\p{L}\p{N}]+[\r\n/]* | \s*[\r\n]+ | \s+(?!\S) | \s+
//	cl100k_base: (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
//	          | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
//	p50k_base, r50k_base: 's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
//
// Known difference from OpenAI's Rust tokenizer (inherited from regexp2,
// kept so that the fuzz test against pkoukk holds): "'ſ" (U+017F) is not
// folded to "'s"; and Go 1.26's Unicode 15 tables lag the reference's
// Unicode 16 for characters assigned since.

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

type cls uint8

const (
	cUp    cls = 1 << iota // Lu, Lt
	cLow                   // Ll
	cMod                   // Lm, Lo
	cMark                  // M
	cNum                   // N
	cSpace                 // unicode.IsSpace
	cCRLF                  // \r or \n

	cLetter = cUp | cLow | cMod
	cWord1  = cUp | cMod | cMark  // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	cWord2  = cLow | cMod | cMark // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
)

var (
	bmpOnce  sync.Once
	bmpTable []cls // classes of runes < 0x10000
)

func buildBMP() {
	t := make([]cls, 0x10000)
	set := func(rt *unicode.RangeTable, c cls) {
		for _, r := range rt.R16 {
			for x := int(r.Lo); x <= int(r.Hi); x += int(r.Stride) {
				t[x] |= c
			}
		}
	}
	set(unicode.Lu, cUp)
	set(unicode.Lt, cUp)
	set(unicode.Ll, cLow)
	set(unicode.Lm, cMod)
	set(unicode.Lo, cMod)
	set(unicode.M, cMark)
	set(unicode.N, cNum)
	for x := 0; x < 0x10000; x++ {
		if unicode.IsSpace(rune(x)) {
			t[x] |= cSpace
		}
	}
	t['\r'] |= cCRLF
	t['\n'] |= cCRLF
	bmpTable = t
}

func classOfRune(r rune) cls {
	if r < 0x10000 {
		return bmpTable[r]
	}
	var c cls
	switch {
	case unicode.In(r, unicode.Lu, unicode.Lt):
		c = cUp
	case unicode.Is(unicode.Ll, r):
		c = cLow
	case unicode.In(r, unicode.Lm, unicode.Lo):
		c = cMod
	case unicode.Is(unicode.M, r):
		c = cMark
	case unicode.Is(unicode.N, r):
		c = cNum
	}
	if unicode.IsSpace(r) {
		c |= cSpace
	}
	return c
}

// at returns the class of the rune at s[i] and its size; (0, 0) at the end.
func at(s string, i int) (cls, int) {
	if i >= len(s) {
		return 0, 0
	}
	if b := s[i]; b < utf8.RuneSelf {
		return bmpTable[b], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return classOfRune(r), n
}

// before returns the class of the rune ending at s[i] and its size.
func before(s string, i int) (cls, int) {
	if b := s[i-1]; b < utf8.RuneSelf {
		return bmpTable[b], 1
	}
	r, n := utf8.DecodeLastRuneInString(s[:i])
	return classOfRune(r), n
}

// isPrefix: [^\r\n\p{L}\p{N}] (a rune must be present: n > 0).
func isPrefix(c cls, n int) bool { return n > 0 && c&(cCRLF|cLetter|cNum) == 0 }

// isPunct: [^\s\p{L}\p{N}].
func isPunct(c cls, n int) bool { return n > 0 && c&(cSpace|cLetter|cNum) == 0 }

// runOf returns the end of the longest run from i of runes whose class
// intersects want.
func runOf(s string, i int, want cls) int {
	for i < len(s) {
		c, n := at(s, i)
		if c&want == 0 {
			break
		}
		i += n
	}
	return i
}

// contraction matches (?i:'s|'t|'re|'ve|'m|'ll|'d) (fold=true) or the
// case-sensitive version at i; it returns the end or -1.
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return -1
	}
	lower := func(b byte) byte {
		if fold && 'A' <= b && b <= 'Z' {
			return b + 'a' - 'A'
		}
		return b
	}
	switch lower(s[i+1]) {
	case 's', 't':
		return i + 2
	}
	if i+2 < len(s) {
		b1, b2 := lower(s[i+1]), lower(s[i+2])
		if (b1 == 'r' || b1 == 'v') && b2 == 'e' {
			return i + 3
		}
	}
	switch lower(s[i+1]) {
	case 'm':
		return i + 2
	case 'l':
		if i+2 < len(s) && lower(s[i+2]) == 'l' {
			return i + 3
		}
	case 'd':
		return i + 2
	}
	return -1
}

// optContraction applies an optional (?i:...) contraction at i.
func optContraction(s string, i int) int {
	if e := contraction(s, i, true); e >= 0 {
		return e
	}
	return i
}

// o200kWord1 matches [W1]*[W2]+(?i:contraction)? at p, or -1.
func o200kWord1(s string, p int) int {
	e1 := runOf(s, p, cWord1)
	// backtrack the greedy [W1]* until a [W2] rune follows
	k := e1
	for {
		if c, n := at(s, k); n > 0 && c&cWord2 != 0 {
			return optContraction(s, runOf(s, k, cWord2))
		}
		if k <= p {
			return -1
		}
		_, n := before(s, k)
		k -= n
	}
}

// o200kWord2 matches [W1]+[W2]*(?i:contraction)? at p, or -1.
func o200kWord2(s string, p int) int {
	e1 := runOf(s, p, cWord1)
	if e1 == p {
		return -1
	}
	return optContraction(s, runOf(s, e1, cWord2))
}

// punct matches " ?[^\s\p{L}\p{N}]+" then a run of tail bytes, or -1.
func punct(s string, i int, tail string) int {
	p := i
	if s[i] == ' ' {
		if c, n := at(s, i+1); isPunct(c, n) {
			p = i + 1
		}
	}
	if c, n := at(s, p); !isPunct(c, n) {
		return -1
	}
	e := p
	for {
		c, n := at(s, e)
		if !isPunct(c, n) {
			break
		}
		e += n
	}
	for e < len(s) && indexOf(tail, s[e]) {
		e++
	}
	return e
}

func indexOf(set string, b byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == b {
			return true
		}
	}
	return false
}

// spaces matches, at a whitespace rune i: \s*[\r\n]+ (when crlf), then
// \s+(?!\S), then \s+.
func spaces(s string, i int, crlf bool) int {
	e := runOf(s, i, cSpace)
	if crlf {
		for k := e - 1; k >= i; k-- {
			if s[k] == '\r' || s[k] == '\n' {
				return k + 1
			}
		}
	}
	if e == len(s) {
		return e
	}
	if _, n := before(s, e); e-n > i {
		return e - n
	}
	return e
}

func splitWith(s string, fn func(string), match func(s string, i int) int) {
	bmpOnce.Do(buildBMP)
	for i := 0; i < len(s); {
		e := match(s, i)
		if e <= i { // no alternative matched: regexp2 moves on one rune
			_, n := at(s, i)
			i += n
			continue
		}
		fn(s[i:e])
		i = e
	}
}

func splitO200k(s string, fn func(string)) { splitWith(s, fn, matchO200k) }

func matchO200k(s string, i int) int {
	c0, n0 := at(s, i)
	pre := isPrefix(c0, n0)
	if pre {
		if e := o200kWord1(s, i+n0); e >= 0 {
			return e
		}
	}
	if e := o200kWord1(s, i); e >= 0 {
		return e
	}
	if pre {
		if e := o200kWord2(s, i+n0); e >= 0 {
			return e
		}
	}
	if e := o200kWord2(s, i); e >= 0 {
		return e
	}
	if c0&cNum != 0 {
		return digits3(s, i+n0)
	}
	if e := punct(s, i, "\r\n/"); e >= 0 {
		return e
	}
	if c0&cSpace != 0 {
		return spaces(s, i, true)
	}
	return -1
}

// digits3 ends the \p{N}{1,3} piece whose first digit ends at e: at most
// two more digits follow (o200k_base and cl100k_base patterns).
func digits3(s string, e int) int {
	for k := 1; k < 3; k++ {
		c, n := at(s, e)
		if n == 0 || c&cNum == 0 {
			break
		}
		e += n
	}
	return e
}

func splitCl100k(s string, fn func(string)) { splitWith(s, fn, matchCl100k) }

func matchCl100k(s string, i int) int {
	if e := contraction(s, i, true); e >= 0 {
		return e
	}
	c0, n0 := at(s, i)
	if isPrefix(c0, n0) {
		if c, n := at(s, i+n0); n > 0 && c&cLetter != 0 {
			return runOf(s, i+n0, cLetter)
		}
	}
	if c0&cLetter != 0 {
		return runOf(s, i, cLetter)
	}
	if c0&cNum != 0 {
		return digits3(s, i+n0)
	}
	if e := punct(s, i, "\r\n"); e >= 0 {
		return e
	}
	if c0&cSpace != 0 {
		return spaces(s, i, true)
	}
	return -1
}

func splitP50k(s string, fn func(string)) { splitWith(s, fn, matchP50k) }

func matchP50k(s string, i int) int {
	if e := contraction(s, i, false); e >= 0 {
		return e
	}
	c0, _ := at(s, i)
	for _, want := range [2]cls{cLetter, cNum} {
		if s[i] == ' ' {
			if c, n := at(s, i+1); n > 0 && c&want != 0 {
				return runOf(s, i+1, want)
			}
		}
		if c0&want != 0 {
			return runOf(s, i, want)
		}
	}
	if e := punct(s, i, ""); e >= 0 {
		return e
	}
	if c0&cSpace != 0 {
		return spaces(s, i, false)
	}
	return -1
}

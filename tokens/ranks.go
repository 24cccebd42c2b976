package tokens

import "hash/maphash"

// rankTable maps token bytes to ranks: an open-addressing hash table over
// one string holding every token's bytes back to back. It is built in one
// pass without per-entry allocations and takes ~6 MB for o200k_base (a
// Go map of 200,000 string keys took ~3× longer to build and twice the
// memory, which dominated the start-up of a one-line `oairl count`); its
// lookups are as fast as a map's. Read-only after construction.
type rankTable struct {
	all   string
	offs  []uint32 // token i is all[offs[i]:offs[i+1]]
	ranks []uint32
	slots []uint32 // hash tag (high slotTagBits) | token index + 1; 0 = empty
	mask  uint64
	seed  maphash.Seed
}

const (
	slotIndexBits = 18 // up to 262,142 tokens (o200k_base has 199,998)
	slotIndexMask = 1<<slotIndexBits - 1
	maxTableSize  = slotIndexMask - 1
)

// newRankTable indexes len(ranks) tokens; offs has one more element than
// ranks. It panics if there are more than maxTableSize tokens (loadEncoder
// checks first).
func newRankTable(all string, offs, ranks []uint32) *rankTable {
	t := allocRankTable(all, len(ranks))
	t.insert(0, len(ranks), offs, ranks)
	t.offs, t.ranks = offs, ranks
	return t
}

// allocRankTable returns an empty table sized for n tokens.
func allocRankTable(all string, n int) *rankTable {
	size := uint64(1)
	for size < uint64(n)*2 {
		size <<= 1
	}
	return &rankTable{all: all, slots: make([]uint32, size), mask: size - 1, seed: maphash.MakeSeed()}
}

// insert adds tokens lo..hi-1 (all[offs[i]:offs[i+1]] with rank
// ranks[i]); the table must have room (at most half full).
func (t *rankTable) insert(lo, hi int, offs, ranks []uint32) {
	for i := lo; i < hi; i++ {
		h := maphash.String(t.seed, t.all[offs[i]:offs[i+1]])
		for j := h & t.mask; ; j = (j + 1) & t.mask {
			if t.slots[j] == 0 {
				t.slots[j] = uint32(h>>32)&^slotIndexMask | uint32(i+1)
				break
			}
		}
	}
}

// get returns the rank of the token with bytes key.
func (t *rankTable) get(key string) (uint32, bool) {
	h := maphash.String(t.seed, key)
	tag := uint32(h>>32) &^ slotIndexMask
	for j := h & t.mask; ; j = (j + 1) & t.mask {
		s := t.slots[j]
		if s == 0 {
			return 0, false
		}
		if s&^slotIndexMask == tag {
			i := s&slotIndexMask - 1
			if t.all[t.offs[i]:t.offs[i+1]] == key {
				return t.ranks[i], true
			}
		}
	}
}

// len returns the number of tokens.
func (t *rankTable) len() int { return len(t.ranks) }

package tokens

import (
	"strings"
	"sync"
)

// suggestIDs is the registry's ids, listed once per Counter.
type suggestIDs struct {
	once sync.Once
	ids  []string
}

// suggest returns the registry id closest to name when it is within a
// small edit distance (Levenshtein ≤ 1 for names up to 5 bytes, 2 up to
// 10, else 3; surrounding whitespace and case ignored), or "". Used for
// the "did you mean gpt-4o-mini?" of unknown_model.
func (c *Counter) suggest(name string) string {
	c.ids.once.Do(func() {
		for _, m := range c.reg.Models() {
			c.ids.ids = append(c.ids.ids, m.ID)
		}
	})
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" || len(n) > 64 {
		return ""
	}
	limit := 3
	switch {
	case len(n) <= 5:
		limit = 1
	case len(n) <= 10:
		limit = 2
	}
	best, bestD := "", limit+1
	for _, id := range c.ids.ids {
		if d := editDistance(n, strings.ToLower(id), bestD); d < bestD {
			best, bestD = id, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b in bytes, or a value
// ≥ max once it is certain to be at least max.
func editDistance(a, b string, max int) int {
	if d := len(a) - len(b); d >= max || -d >= max {
		return max
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= max {
			return max
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

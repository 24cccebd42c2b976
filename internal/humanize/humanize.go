// Package humanize formats numbers for people.
package humanize

import (
	"strconv"
	"strings"
)

// Int formats n with comma thousands separators: 2000000 → "2,000,000",
// -1234 → "-1,234".
func Int(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Count is n with its noun in the right number: Count(1, "line", "lines")
// is "1 line", Count(2000, …) "2,000 lines", Count(0, …) "0 lines".
func Count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return Int(n) + " " + many
}

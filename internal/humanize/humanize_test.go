package humanize

import "testing"

func TestInt(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 32017: "32,017", 2000000: "2,000,000", -1234: "-1,234", -999: "-999"} {
		if got := Int(n); got != want {
			t.Errorf("Int(%d) = %q, want %q", n, got, want)
		}
	}
}

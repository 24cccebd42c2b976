package send

import (
	"math/rand"
	"testing"
	"time"

	"github.com/oairl/oairl/diagnose"
)

// A server charging exactly the estimate, with 40 requests in flight that
// it admits in another order than they were sent: the meter reads ~1 and
// does not let pacing follow (breaker2 F7); one at a time, it reads the
// true ratio and is steady.
func TestChargeMeterReordered(t *testing.T) {
	const limit = 100000
	rate := float64(limit) / float64(time.Minute)
	run := func(inFlight int, ratio float64) ChargeStats {
		var m chargeMeter
		rng := rand.New(rand.NewSource(1))
		t0 := time.Unix(1_700_000_000, 0)
		bucket := float64(limit) / 2
		last := t0
		now := t0
		for wave := 0; wave < 60; wave++ {
			// Between waves the bucket refills about what a wave takes.
			now = now.Add(time.Duration(float64(inFlight) * 500 * ratio / rate))
			type att struct {
				mark attemptMark
				sent time.Time
				est  int64
			}
			var atts []att
			for i := 0; i < inFlight; i++ {
				now = now.Add(time.Millisecond)
				atts = append(atts, att{m.sending("k"), now, int64(300 + rng.Intn(400))})
			}
			// The server admits them in a shuffled order.
			order := rng.Perm(len(atts))
			rem := make([]int64, len(atts))
			for j, i := range order {
				at := atts[i].sent.Add(time.Duration(j) * time.Microsecond)
				bucket = min(limit, bucket+rate*float64(at.Sub(last)))
				last = at
				bucket -= ratio * float64(atts[i].est)
				rem[i] = int64(bucket)
			}
			for i, a := range atts {
				alone := m.returned(a.mark)
				m.answered(a.mark, alone, a.sent, a.est, diagnose.Window{Known: true, Limit: limit, Remaining: rem[i]})
			}
		}
		return m.stats()
	}
	if st := run(40, 1); st.Samples < 500 || st.Ratio < 0.97 || st.Ratio > 1.03 || st.Steady {
		t.Errorf("40 in flight, server charging the estimate: %+v, want ~1, not steady", st)
	}
	if st := run(1, 1.25); st.Samples < 50 || st.Ratio < 1.22 || st.Ratio > 1.28 || !st.Steady {
		t.Errorf("one at a time, server charging 1.25×: %+v, want ~1.25, steady", st)
	}
}

package send

import (
	"context"
	"sync"
	"time"

	"github.com/oairl/oairl/diagnose"
	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/pace"
)

// day is the window of a daily limit (RPD, TPD): a rolling day.
const day = 24 * time.Hour

// dailyPacer paces a model at its daily rate once a 429 named a daily
// limit (issue 14 §2): "… per day (RPD): Limit 10000 … try again in 8.64s"
// is one slot of a rolling day refilling, so the sustainable rate is
// limit ÷ 86,400 per second. From then on each admission of the model is
// spaced by the gap 86,400 s ÷ limit (for TPD, × the request's charge):
// in process, admissions take consecutive slots (no burst at every short
// reset); and each admission pauses the model's requests in the limiter
// (pace.Limiter.Pause) for the gap, so every process sharing a pace.Redis
// budget holds off too. At most one request per refill goes out.
type dailyPacer struct {
	mu   sync.Mutex
	gap  map[string]time.Duration // per limiter key; 0 = no daily limit known
	next map[string]time.Time     // the next free slot
}

// DailyLimit returns the size of the daily window a 429 names (RPD
// requests or TPD tokens per day): the limit quoted in its message, else
// the daily x-ratelimit-limit-* header of that kind; 0 when unknown.
func DailyLimit(f diagnose.Finding) int64 {
	if f.Limit > 0 {
		return f.Limit
	}
	w := f.RateLimits.Requests
	if f.Verdict == diagnose.TPDLimited {
		w = f.RateLimits.Tokens
	}
	if w.Known && w.Daily {
		return w.Limit
	}
	return 0
}

// learn reads a daily limit from f (a classified answer) for key.
func (d *dailyPacer) learn(key string, f diagnose.Finding, charge int64, now time.Time) {
	if f.Verdict != diagnose.RPDLimited && f.Verdict != diagnose.TPDLimited {
		return
	}
	limit := DailyLimit(f)
	if limit <= 0 {
		return // the window's size is unknown: the usual retries
	}
	per := int64(1)
	if f.Verdict == diagnose.TPDLimited {
		per = max(1, charge)
	}
	gap := time.Duration(float64(day) * float64(per) / float64(limit))
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gap == nil {
		d.gap, d.next = map[string]time.Duration{}, map[string]time.Time{}
	}
	d.gap[key] = max(d.gap[key], gap)
	if n := now.Add(gap); n.After(d.next[key]) {
		d.next[key] = n
	}
}

// wait takes key's next slot and waits for it (nil at once when no daily
// limit is known for key).
func (d *dailyPacer) wait(ctx context.Context, clk clock.Clock, key string) error {
	d.mu.Lock()
	gap := d.gap[key]
	if gap <= 0 {
		d.mu.Unlock()
		return nil
	}
	now := clk.Now()
	slot := d.next[key]
	if slot.Before(now) {
		slot = now
	}
	d.next[key] = slot.Add(gap)
	d.mu.Unlock()
	return clk.Sleep(ctx, slot.Sub(now))
}

// admitted pauses key's requests in the limiter for one gap after an
// admission (other processes sharing the budget see it).
func (d *dailyPacer) admitted(lim pace.Limiter, clk clock.Clock, key string) {
	d.mu.Lock()
	gap := d.gap[key]
	d.mu.Unlock()
	if gap > 0 {
		lim.Pause(key, pace.Requests, clk.Now().Add(gap))
	}
}

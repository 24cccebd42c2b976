package pace

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff decides how long to wait before a retry, modelled on openai-go
// requestconfig.go retryDelay (and the Python/Node SDKs): a wait the
// server asked for (retry-after-ms, retry-after in seconds or as an
// HTTP-date, "Please try again in 1.5s", x-ratelimit-reset-*; decided by
// the diagnose classifier) is honoured as given, with a floor so that
// "retry-after: 0" never becomes a hot loop; with no hint it is
// exponential backoff with full jitter: uniform in
// [Floor, min(Max, Base × 2^retry)].
type Backoff struct {
	// Base is the first backoff step (default 0.5 s, as the SDKs).
	Base time.Duration
	// Max caps the jittered backoff (default 20 s).
	Max time.Duration
	// Floor is the least wait before any retry (default 250 ms; case B17b:
	// "retry-after: 0" alone means no hint, never a zero-delay loop).
	Floor time.Duration

	mu  sync.Mutex
	rng *rand.Rand
}

// NewBackoff returns the default policy, its jitter drawn from a PCG seeded
// with seed (tests pass a fixed seed; callers a random one).
func NewBackoff(seed uint64) *Backoff {
	return &Backoff{
		Base: 500 * time.Millisecond, Max: 20 * time.Second, Floor: 250 * time.Millisecond,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

// Delay returns the wait before retry number retry (0 for the first
// retry). hint is the server's wait (valid when hasHint); a hint of 0 or
// less counts as none.
func (b *Backoff) Delay(retry int, hint time.Duration, hasHint bool) time.Duration {
	if hasHint && hint > 0 {
		return max(hint, b.Floor)
	}
	ceil := b.Base
	for i := 0; i < retry && ceil < b.Max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, b.Max)
	b.mu.Lock()
	f := b.rng.Float64()
	b.mu.Unlock()
	d := time.Duration(f * float64(ceil))
	return max(d, b.Floor)
}

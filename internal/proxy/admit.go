package proxy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oairl/oairl/internal/clock"
	"github.com/oairl/oairl/internal/pace"
)

// Priority is a request's admission class (header X-Oairl-Priority).
type Priority int

const (
	High Priority = iota
	Normal
	Low
	numPriorities
)

func (p Priority) String() string {
	switch p {
	case High:
		return "high"
	case Low:
		return "low"
	}
	return "normal"
}

// ParsePriority reads "high", "normal" or "low" (any case); ok is false
// for anything else.
func ParsePriority(s string) (Priority, bool) {
	switch s {
	case "high", "HIGH", "High":
		return High, true
	case "normal", "NORMAL", "Normal", "":
		return Normal, true
	case "low", "LOW", "Low":
		return Low, true
	}
	return Normal, false
}

// ticket is what the admit stage knows about a request: its class and
// the caller it belongs to (for fairness within the class).
type ticket struct {
	prio   Priority
	caller string
}

type ticketKey struct{}

func withTicket(ctx context.Context, t ticket) context.Context {
	return context.WithValue(ctx, ticketKey{}, t)
}

func ticketFrom(ctx context.Context) ticket {
	if t, ok := ctx.Value(ticketKey{}).(ticket); ok {
		return t
	}
	return ticket{prio: Normal}
}

// ShedError is returned by the admit stage when a request is not admitted
// within the queue wait, or the queue is full: the proxy answers 429 with
// a Retry-After.
type ShedError struct {
	Model  string
	Reason string        // "queue_full" or "queue_wait"
	Kind   pace.Kind     // the bucket most likely holding it up
	Wait   time.Duration // the queue wait that ran out (queue_wait)
}

func (e *ShedError) Error() string {
	if e.Reason == "queue_full" {
		return fmt.Sprintf("oairl proxy: the admission queue for %s is full", e.Model)
	}
	return fmt.Sprintf("oairl proxy: not admitted within the queue wait of %s for %s", e.Wait, e.Model)
}

// admitter is the admit stage: a pace.Limiter in front of the real one
// that decides the ORDER in which waiting requests may reserve. Per model
// one request at a time is reserving from the limiter; it is picked by
// priority (high before normal before low), then round-robin among the
// callers of that class, then first come first served. When a request of
// a higher class arrives while a lower one is reserving, the lower one's
// reservation is cancelled (the limiter keeps nothing of it) and it goes
// back to the head of its queue: low (bulk) work never takes the budget
// while higher work waits. The queue is bounded (maxQueue requests in
// all); a request waits at most maxWait (in the clock's time) and is then
// shed (*ShedError).
type admitter struct {
	next     pace.Limiter
	clk      clock.Clock
	maxWait  time.Duration
	maxQueue int
	// onDepth reports queue depth changes per class; onWait the time a
	// request waited for admission (admitted or not).
	onDepth func(p Priority, delta int)
	onWait  func(d time.Duration)

	mu     sync.Mutex
	queued int                // in a queue (not picked yet)
	depth  [numPriorities]int // waiting for admission: queued or reserving
	models map[string]*modelQueue
}

var _ pace.Limiter = (*admitter)(nil)

type modelQueue struct {
	classes [numPriorities]classQueue
	running bool    // a dispatcher serves this model
	current *waiter // being reserved for
	cancel  context.CancelFunc
	preempt bool
}

// classQueue holds one class's waiters per caller. The next caller served
// is the one served longest ago (never served first; ring order breaks
// ties), so a caller that just had a turn waits behind the others even if
// it queued first.
type classQueue struct {
	ring   []*callerQueue
	by     map[string]*callerQueue
	served map[string]uint64 // caller → turn number of its last admission
	turn   uint64
}

type callerQueue struct {
	id      string
	waiters []*waiter
}

type waiter struct {
	ctx    context.Context
	cancel context.CancelFunc
	tokens int64
	t      ticket
	queued bool // still in a queue (not picked)
	done   chan struct{}
	permit pace.Permit
	err    error
}

func newAdmitter(next pace.Limiter, clk clock.Clock, maxWait time.Duration, maxQueue int) *admitter {
	return &admitter{next: next, clk: clk, maxWait: maxWait, maxQueue: maxQueue, models: map[string]*modelQueue{},
		onDepth: func(Priority, int) {}, onWait: func(time.Duration) {}}
}

// Observe implements pace.Limiter.
func (a *admitter) Observe(model string, obs pace.Observation, now time.Time) {
	a.next.Observe(model, obs, now)
}

// Pause implements pace.Limiter.
func (a *admitter) Pause(model string, kind pace.Kind, until time.Time) {
	a.next.Pause(model, kind, until)
}

// Depth returns the requests of each class waiting for admission (in a
// queue, or reserving from the limiter).
func (a *admitter) Depth() [numPriorities]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.depth
}

// queuedFor returns the requests and tokens waiting for model.
func (a *admitter) queuedFor(model string) (reqs int, tokens int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	mq := a.models[model]
	if mq == nil {
		return 0, 0
	}
	for p := range mq.classes {
		for _, c := range mq.classes[p].ring {
			for _, w := range c.waiters {
				reqs++
				tokens += w.tokens
			}
		}
	}
	return reqs, tokens
}

// Reserve implements pace.Limiter: it queues the request (class and
// caller from its context), waits for its turn and for the limiter, and
// returns the permit, a *ShedError, a *pace.TooLargeError, or ctx.Err()
// when the client went away.
func (a *admitter) Reserve(ctx context.Context, model string, tokens int64) (pace.Permit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := a.clk.Now()
	t := ticketFrom(ctx)
	wctx, cancel := context.WithCancel(ctx)
	w := &waiter{ctx: wctx, cancel: cancel, tokens: tokens, t: t, done: make(chan struct{})}
	defer cancel()

	a.mu.Lock()
	if a.queued >= a.maxQueue {
		a.mu.Unlock()
		a.onWait(0)
		return nil, &ShedError{Model: model, Reason: "queue_full", Kind: pace.Tokens}
	}
	mq := a.models[model]
	if mq == nil {
		mq = &modelQueue{}
		a.models[model] = mq
	}
	a.depth[t.prio]++
	fast := !mq.running
	if fast {
		// Nobody waits for this model: reserve on this goroutine (no
		// hand-off), as the model's dispatcher for the time being.
		mq.running = true
		markServed(&mq.classes[t.prio], t.caller)
	} else {
		a.push(mq, w, false)
	}
	a.mu.Unlock()
	a.onDepth(t.prio, 1)
	defer func() {
		a.mu.Lock()
		a.depth[t.prio]--
		a.mu.Unlock()
		a.onDepth(t.prio, -1)
	}()
	if fast {
		if permit, err, done := a.serveInline(model, mq, w); done {
			a.onWait(a.clk.Now().Sub(start))
			return permit, err
		}
		// Pre-empted by a higher class: w is queued again; wait below.
	}
	a.mu.Lock()
	if cur := mq.current; cur != nil && cur.t.prio > t.prio && !mq.preempt {
		// A higher class arrived while a lower one reserves: take the
		// budget back from it.
		mq.preempt = true
		mq.cancel()
	}
	if !mq.running {
		mq.running = true
		go a.dispatch(model, mq)
	}
	a.mu.Unlock()

	expired := make(chan struct{})
	defer a.after(a.maxWait, func() { close(expired) })()
	var timedOut bool
	select {
	case <-w.done:
	case <-ctx.Done():
	case <-expired:
		timedOut = true
	}
	a.mu.Lock()
	if w.queued {
		// Still waiting for its turn: leave the queue.
		a.remove(mq, w)
		a.mu.Unlock()
		a.onWait(a.clk.Now().Sub(start))
		if timedOut {
			return nil, a.shed(model, w)
		}
		return nil, ctx.Err()
	}
	a.mu.Unlock()
	// Picked: the dispatcher is reserving for it (or has finished).
	// Cancelling makes it give up at once; a permit that came first wins.
	cancel()
	<-w.done
	a.onWait(a.clk.Now().Sub(start))
	if w.permit != nil {
		return w.permit, nil
	}
	if timedOut && ctx.Err() == nil {
		return nil, a.shed(model, w)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, w.err
}

// after runs f once d of a's clock has passed (the queue wait runs on
// the proxy's clock, like everything that waits: scaled by --time-scale,
// manual in tests), unless the returned stop is called first.
func (a *admitter) after(d time.Duration, f func()) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if a.clk.Sleep(ctx, d) == nil && ctx.Err() == nil {
			f()
		}
	}()
	return cancel
}

func (a *admitter) shed(model string, _ *waiter) error {
	return &ShedError{Model: model, Reason: "queue_wait", Kind: pace.Tokens, Wait: a.maxWait}
}

// push queues w (at the head of its caller's queue when front). a.mu held.
func (a *admitter) push(mq *modelQueue, w *waiter, front bool) {
	cq := &mq.classes[w.t.prio]
	if cq.by == nil {
		cq.by = map[string]*callerQueue{}
	}
	c := cq.by[w.t.caller]
	if c == nil {
		c = &callerQueue{id: w.t.caller}
		cq.by[w.t.caller] = c
		if front {
			cq.ring = append([]*callerQueue{c}, cq.ring...)
		} else {
			cq.ring = append(cq.ring, c)
		}
	}
	if front {
		c.waiters = append([]*waiter{w}, c.waiters...)
	} else {
		c.waiters = append(c.waiters, w)
	}
	w.queued = true
	a.queued++
}

// remove takes a queued w out. a.mu held.
func (a *admitter) remove(mq *modelQueue, w *waiter) {
	cq := &mq.classes[w.t.prio]
	c := cq.by[w.t.caller]
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			break
		}
	}
	if len(c.waiters) == 0 {
		a.dropCaller(cq, c)
	}
	w.queued = false
	a.queued--
}

func (a *admitter) dropCaller(cq *classQueue, c *callerQueue) {
	delete(cq.by, c.id)
	for i, x := range cq.ring {
		if x == c {
			cq.ring = append(cq.ring[:i], cq.ring[i+1:]...)
			return
		}
	}
}

// pick takes the next waiter: the highest class, the caller of that
// class served longest ago, its oldest request. a.mu held.
func (a *admitter) pick(mq *modelQueue) *waiter {
	for p := range mq.classes {
		cq := &mq.classes[p]
		if len(cq.ring) == 0 {
			continue
		}
		best := 0
		for i, c := range cq.ring {
			if cq.served[c.id] < cq.served[cq.ring[best].id] {
				best = i
			}
		}
		c := cq.ring[best]
		w := c.waiters[0]
		c.waiters = c.waiters[1:]
		cq.ring = append(cq.ring[:best], cq.ring[best+1:]...)
		if len(c.waiters) > 0 {
			cq.ring = append(cq.ring, c)
		} else {
			delete(cq.by, c.id)
		}
		markServed(cq, c.id)
		w.queued = false
		a.queued--
		return w
	}
	return nil
}

// serveInline reserves for w on the caller's goroutine while it is the
// model's dispatcher (mq.running set by the caller), within the queue
// wait. done is false when a higher class pre-empted it: w is then queued
// again (at its head) and a dispatcher serves the queue.
func (a *admitter) serveInline(model string, mq *modelQueue, w *waiter) (permit pace.Permit, err error, done bool) {
	a.mu.Lock()
	rctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	mq.current, mq.cancel, mq.preempt = w, cancel, false
	a.mu.Unlock()
	var timedOut atomic.Bool
	stop := a.after(a.maxWait, func() { timedOut.Store(true); cancel() })

	permit, err = a.next.Reserve(rctx, model, w.tokens)
	stop()

	a.mu.Lock()
	defer a.mu.Unlock()
	preempted := mq.preempt
	mq.current, mq.cancel, mq.preempt = nil, nil, false
	requeue := err != nil && preempted && !timedOut.Load() && w.ctx.Err() == nil
	if requeue {
		a.push(mq, w, true)
	}
	if a.hasQueued(mq) {
		go a.dispatch(model, mq)
	} else {
		mq.running = false
	}
	switch {
	case requeue:
		return nil, nil, false
	case err == nil:
		return permit, nil, true
	case w.ctx.Err() != nil:
		return nil, w.ctx.Err(), true
	case timedOut.Load():
		return nil, a.shed(model, w), true
	}
	return nil, err, true
}

// hasQueued reports whether mq has queued waiters. a.mu held.
func (a *admitter) hasQueued(mq *modelQueue) bool {
	for p := range mq.classes {
		if len(mq.classes[p].ring) > 0 {
			return true
		}
	}
	return false
}

// markServed records a turn of caller id in its class. a.mu held.
func markServed(cq *classQueue, id string) {
	if cq.served == nil || len(cq.served) > 4096 {
		// Bounded memory: forget callers with nothing queued.
		old := cq.served
		cq.served = map[string]uint64{}
		for k := range cq.by {
			cq.served[k] = old[k]
		}
	}
	cq.turn++
	cq.served[id] = cq.turn
}

// dispatch serves one model's queue until it is empty.
func (a *admitter) dispatch(model string, mq *modelQueue) {
	for {
		a.mu.Lock()
		w := a.pick(mq)
		if w == nil {
			mq.running = false
			a.mu.Unlock()
			return
		}
		rctx, cancel := context.WithCancel(w.ctx)
		mq.current, mq.cancel, mq.preempt = w, cancel, false
		a.mu.Unlock()

		permit, err := a.next.Reserve(rctx, model, w.tokens)

		a.mu.Lock()
		preempted := mq.preempt
		mq.current, mq.cancel, mq.preempt = nil, nil, false
		if err != nil && preempted && w.ctx.Err() == nil {
			// Pre-empted by a higher class: back to the head of its queue.
			a.push(mq, w, true)
			a.mu.Unlock()
			cancel()
			continue
		}
		a.mu.Unlock()
		cancel()
		w.permit, w.err = permit, err
		close(w.done)
	}
}

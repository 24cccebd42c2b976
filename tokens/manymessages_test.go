package tokens

import (
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// manyMessages is a chat body of n tiny messages (~30 bytes each).
func manyMessages(n int, role string) []byte {
	msg := `{"role":"` + role + `","content":"a"}`
	return []byte(`{"model":"gpt-4o-mini","max_tokens":5,"messages":[` + strings.TrimSuffix(strings.Repeat(msg+",", n), ",") + `]}`)
}

// Issue 14 §6: a line of many tiny messages is counted in memory bounded
// by its bytes (the messages are decoded one at a time), not ~500 bytes
// per message object (800 MB for 1.6 M messages before).
func TestManyMessagesBoundedMemory(t *testing.T) {
	const n = 200_000
	body := manyMessages(n, "user")
	c := newTestCounter(t)
	c.Analyze(EndpointChat, manyMessages(2, "user")) // load the encoding first
	// Collect garbage eagerly, so that HeapAlloc follows the live heap
	// (with the default GOGC, garbage may reach the size of whatever
	// earlier tests left live).
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	}()
	a := c.Analyze(EndpointChat, body)
	close(done)
	// Exact count: 3 per message + "user" + "a" (1 token each) + 3 priming.
	if want := int64(n*(3+1+1) + 3); a.Count.PromptTokens != want {
		t.Errorf("prompt tokens %d, want %d", a.Count.PromptTokens, want)
	}
	grown := int64(peak.Load()) - int64(base.HeapAlloc)
	// The eager tree held ~90 MB here; lazily, the body's few MB plus
	// 4 bytes per message and the collector's slack.
	if limit := int64(len(body)) * 6; grown > limit {
		t.Errorf("heap grew %d MB while counting a %d MB body (limit %d MB)", grown>>20, len(body)>>20, limit>>20)
	}
}

// Issue 14 §6: one request with many faulty messages keeps the first
// maxProblemsPerCode problems of a code and says how many more.
func TestProblemsPerCodeFolded(t *testing.T) {
	a := newTestCounter(t).Analyze(EndpointChat, manyMessages(50, "bogus"))
	var n int
	var last string
	for _, p := range a.Problems {
		if p.Code == CodeMessageInvalid {
			n++
			last = p.Message
		}
	}
	if n != maxProblemsPerCode+1 || !strings.Contains(last, "40 more") {
		t.Errorf("%d message_invalid problems, last %q", n, last)
	}
}

// The lazy messages keep their duplicate-member warnings and errors.
func TestLazyMessagesDupsAndErrors(t *testing.T) {
	a := newTestCounter(t).Analyze(EndpointChat, []byte(`{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"a","content":"b"}, 3, []]}`))
	got := strings.Join(codes(a), " ")
	for _, want := range []string{CodeDuplicateMember, CodeMessageInvalid} {
		if !strings.Contains(got, want) {
			t.Errorf("codes %s lack %s", got, want)
		}
	}
	if a := newTestCounter(t).Analyze(EndpointChat, []byte(`{"model":"gpt-4o-mini","messages":[]}`)); !strings.Contains(strings.Join(codes(a), " "), CodeMessagesEmpty) {
		t.Errorf("empty messages: %v", codes(a))
	}
}

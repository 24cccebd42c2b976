package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/oairl/oairl/internal/clock"
)

// fakeAPI is an in-memory Files + Batches API for unit tests. Batches move
// validating → in_progress → finalizing → completed on its clock; the
// enqueued-token limit per model is enforced when validation ends (like
// the real API: the batch fails with token_limit_exceeded). Each input line
// counts tokensPerLine tokens.
type fakeAPI struct {
	mu    sync.Mutex
	clk   clock.Clock
	files map[string]*fakeFile
	bs    []*fakeBatch
	n     int

	validating, running, finalizing time.Duration
	// expireAfter, when > 0, expires a batch that long after it started
	// running, with half of its lines done.
	expireAfter   time.Duration
	queueLimit    int64 // per model, tokens; 0 = none
	tokensPerLine int64
	// failCustomIDs get a 400 response line in the error file.
	failCustomIDs map[string]bool
	// external holds tokens enqueued by "other tools" per model; when
	// externalUntil has the model, only until that clock time.
	external      map[string]int64
	externalUntil map[string]time.Time

	creates, uploads, lists int
	// onUpload, when set, is called after the file is stored and before
	// UploadFile returns; a non-nil error is returned (the server kept the
	// file, the client never learnt its id: an interrupted upload).
	onUpload func() error
	// onContent, when set, is called by FileContent, which then returns
	// only half the file (a download interrupted by Ctrl-C).
	onContent func()
	// failGet makes the next n GetBatch calls fail with err.
	failGet    int
	failGetErr error
}

type fakeFile struct {
	id, name string
	data     []byte
}

type fakeBatch struct {
	b       Batch
	created time.Time
	model   string
	lines   [][]byte
	tokens  int64
	started time.Time // when validation ended (zero: still validating)
	final   bool      // outputs written
}

func newFakeAPI(clk clock.Clock) *fakeAPI {
	return &fakeAPI{clk: clk, files: map[string]*fakeFile{}, validating: 10 * time.Second,
		running: time.Minute, finalizing: 10 * time.Second, tokensPerLine: 100, external: map[string]int64{}}
}

func (f *fakeAPI) id(prefix string) string {
	f.n++
	return fmt.Sprintf("%s_%04d", prefix, f.n)
}

func (f *fakeAPI) UploadFile(ctx context.Context, path, name string) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uploads++
	ff := &fakeFile{id: f.id("file"), name: name, data: data}
	f.files[ff.id] = ff
	if f.onUpload != nil {
		if err := f.onUpload(); err != nil {
			return File{}, err
		}
	}
	return File{ID: ff.id, Filename: name, Bytes: int64(len(data))}, nil
}

func (f *fakeAPI) DeleteFile(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files[id] == nil {
		return fmt.Errorf("no such file %s", id)
	}
	delete(f.files, id)
	return nil
}

func (f *fakeAPI) ListFiles(ctx context.Context) ([]File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []File
	for _, ff := range f.files {
		out = append(out, File{ID: ff.id, Filename: ff.name, Bytes: int64(len(ff.data))})
	}
	return out, nil
}

func (f *fakeAPI) CreateBatch(ctx context.Context, fileID, endpoint string, md map[string]string) (Batch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ff := f.files[fileID]
	if ff == nil {
		return Batch{}, fmt.Errorf("no file %s", fileID)
	}
	f.creates++
	now := f.clk.Now()
	fb := &fakeBatch{created: now}
	fb.b = Batch{ID: f.id("batch"), Endpoint: endpoint, Status: StatusValidating, InputFileID: fileID,
		CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour), Metadata: md}
	for _, l := range bytes.Split(bytes.TrimSpace(ff.data), []byte("\n")) {
		fb.lines = append(fb.lines, l)
		var env struct {
			Body struct {
				Model string `json:"model"`
			} `json:"body"`
		}
		json.Unmarshal(l, &env)
		fb.model = env.Body.Model
	}
	fb.tokens = int64(len(fb.lines)) * f.tokensPerLine
	f.bs = append(f.bs, fb)
	return fb.b, nil
}

// queuedLocked returns the tokens of model's batches that hold the queue.
func (f *fakeAPI) queuedLocked(model string, except *fakeBatch) int64 {
	n := f.external[model]
	if until, ok := f.externalUntil[model]; ok && !f.clk.Now().Before(until) {
		n = 0
	}
	for _, o := range f.bs {
		if o != except && o.model == model && !o.started.IsZero() && Queued(o.b.Status) {
			n += o.tokens
		}
	}
	return n
}

// advance moves every batch along its lifecycle to the clock's now.
func (f *fakeAPI) advanceLocked() {
	now := f.clk.Now()
	for _, fb := range f.bs {
		b := &fb.b
		if b.Status == StatusValidating && !now.Before(fb.created.Add(f.validating)) {
			if f.queueLimit > 0 && f.queuedLocked(fb.model, fb)+fb.tokens > f.queueLimit {
				b.Status = StatusFailed
				b.Errors = []BatchError{{Code: CodeTokenLimitExceeded, Message: fmt.Sprintf("Enqueued token limit reached for %s in organization org-test. Limit: %d enqueued tokens. Please try again once some in_progress batches have been completed.", fb.model, f.queueLimit)}}
				continue
			}
			fb.started = fb.created.Add(f.validating)
			b.Status = StatusInProgress
			b.RequestCounts.Total = len(fb.lines)
		}
		if b.Status == StatusInProgress {
			el := now.Sub(fb.started)
			if f.expireAfter > 0 && el >= f.expireAfter && f.expireAfter < f.running {
				f.finishLocked(fb, len(fb.lines)/2)
				b.Status = StatusExpired
				continue
			}
			done := len(fb.lines)
			if el < f.running {
				done = int(float64(len(fb.lines)) * float64(el) / float64(f.running))
			}
			b.RequestCounts.Completed = done
			if el >= f.running {
				b.Status = StatusFinalizing
			}
		}
		if b.Status == StatusFinalizing && !now.Before(fb.started.Add(f.running+f.finalizing)) {
			f.finishLocked(fb, len(fb.lines))
			b.Status = StatusCompleted
		}
		if b.Status == StatusCancelling {
			f.finishLocked(fb, b.RequestCounts.Completed)
			b.Status = StatusCancelled
		}
	}
}

// finishLocked writes the output and error files for the first done lines,
// shuffled (output files are unordered).
func (f *fakeAPI) finishLocked(fb *fakeBatch, done int) {
	if fb.final {
		return
	}
	fb.final = true
	var out, errs [][]byte
	ok, failed := 0, 0
	for i, l := range fb.lines {
		if i >= done {
			break
		}
		var env struct {
			CustomID string `json:"custom_id"`
		}
		json.Unmarshal(l, &env)
		if f.failCustomIDs[env.CustomID] {
			failed++
			errs = append(errs, []byte(fmt.Sprintf(`{"id":"batch_req_%d","custom_id":%q,"response":{"status_code":400,"request_id":"req_%d","body":{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":"context_length_exceeded"}}},"error":null}`, i, env.CustomID, i)))
			continue
		}
		ok++
		out = append(out, []byte(fmt.Sprintf(`{"id":"batch_req_%d","custom_id":%q,"response":{"status_code":200,"request_id":"req_%d","body":{"id":"chatcmpl-%d","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"ok %s"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}},"error":null}`, i, env.CustomID, i, i, fb.model, env.CustomID)))
	}
	rnd := rand.New(rand.NewSource(int64(len(fb.lines))))
	rnd.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
	fb.b.RequestCounts = RequestCounts{Total: len(fb.lines), Completed: ok, Failed: failed}
	if len(out) > 0 {
		id := f.id("file")
		f.files[id] = &fakeFile{id: id, data: append(bytes.Join(out, []byte("\n")), '\n')}
		fb.b.OutputFileID = id
	}
	if len(errs) > 0 {
		id := f.id("file")
		f.files[id] = &fakeFile{id: id, data: append(bytes.Join(errs, []byte("\n")), '\n')}
		fb.b.ErrorFileID = id
	}
}

func (f *fakeAPI) find(id string) *fakeBatch {
	for _, fb := range f.bs {
		if fb.b.ID == id {
			return fb
		}
	}
	return nil
}

func (f *fakeAPI) GetBatch(ctx context.Context, id string) (Batch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failGet > 0 {
		f.failGet--
		return Batch{}, f.failGetErr
	}
	f.advanceLocked()
	fb := f.find(id)
	if fb == nil {
		return Batch{}, fmt.Errorf("no batch %s", id)
	}
	return fb.b, nil
}

func (f *fakeAPI) CancelBatch(ctx context.Context, id string) (Batch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked()
	fb := f.find(id)
	if fb == nil {
		return Batch{}, fmt.Errorf("no batch %s", id)
	}
	if !Terminal(fb.b.Status) {
		fb.b.Status = StatusCancelling
	}
	return fb.b, nil
}

func (f *fakeAPI) ListBatches(ctx context.Context, after string, limit int) (BatchPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	f.advanceLocked()
	all := make([]Batch, 0, len(f.bs))
	for i := len(f.bs) - 1; i >= 0; i-- { // newest first
		all = append(all, f.bs[i].b)
	}
	start := 0
	if after != "" {
		for i, b := range all {
			if b.ID == after {
				start = i + 1
			}
		}
	}
	end := start + limit
	if end > len(all) {
		end = len(all)
	}
	p := BatchPage{Data: all[start:end], HasMore: end < len(all)}
	if end > start {
		p.LastID = all[end-1].ID
	}
	return p, nil
}

func (f *fakeAPI) FileContent(ctx context.Context, id string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ff := f.files[id]
	if ff == nil {
		return nil, fmt.Errorf("no file %q", id)
	}
	if f.onContent != nil {
		// A download cut short: half of the file, then EOF.
		f.onContent()
		return io.NopCloser(bytes.NewReader(ff.data[:len(ff.data)/2])), nil
	}
	return io.NopCloser(bytes.NewReader(ff.data)), nil
}

// batchesByShard counts the batches of job per shard (all attempts).
func (f *fakeAPI) batchesByShard(job string) map[int][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int][]string{}
	for _, fb := range f.bs {
		if fb.b.Metadata[MetaJob] != job {
			continue
		}
		k, _ := strconv.Atoi(fb.b.Metadata[MetaShard])
		out[k] = append(out[k], fb.b.ID+":"+fb.b.Status)
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// virtualClock is a deterministic clock for tests of the single-goroutine
// engine loop: its time moves only when the engine sleeps, by exactly the
// duration asked, whatever the machine's speed or load (a Scaled clock
// turns a slow fsync into minutes of batch time). Sleep returns at once.
// at, when set, runs after each sleep with the new time (e.g. to cancel
// the context at a given clock time); the sleep then reports ctx's state.
type virtualClock struct {
	mu  sync.Mutex
	now time.Time
	at  func(now time.Time)
}

func newVirtualClock() *virtualClock {
	return &virtualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *virtualClock) Wall(d time.Duration) time.Duration { return d }

func (c *virtualClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	now, at := c.now, c.at
	c.mu.Unlock()
	if at != nil {
		at(now)
	}
	return ctx.Err()
}

package sim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

type batchObj struct {
	ID            string
	Status        string
	Model         *string
	OutputFileID  *string `json:"output_file_id"`
	ErrorFileID   *string `json:"error_file_id"`
	InProgressAt  *int64  `json:"in_progress_at"`
	FinalizingAt  *int64  `json:"finalizing_at"`
	CompletedAt   *int64  `json:"completed_at"`
	FailedAt      *int64  `json:"failed_at"`
	ExpiredAt     *int64  `json:"expired_at"`
	CancelledAt   *int64  `json:"cancelled_at"`
	ExpiresAt     int64   `json:"expires_at"`
	CreatedAt     int64   `json:"created_at"`
	RequestCounts struct {
		Total, Completed, Failed int
	} `json:"request_counts"`
	Errors *struct {
		Data []struct {
			Code    string
			Message string
			Line    *int
			Param   *string
		}
	}
	Metadata map[string]string
}

type outLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct{ Code, Message string } `json:"error"`
}

func createBatch(t *testing.T, srv *simtest.Server, fileID, meta string) batchObj {
	t.Helper()
	body := fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"%s}`, fileID, meta)
	r := post(t, srv, "/batches", body)
	if r.Status != 200 {
		t.Fatalf("create batch: %d %s", r.Status, r.Body)
	}
	return decode[batchObj](t, r.Body)
}

func getBatch(t *testing.T, srv *simtest.Server, id string) batchObj {
	t.Helper()
	r := get(t, srv, "/batches/"+id)
	if r.Status != 200 {
		t.Fatalf("get batch: %d %s", r.Status, r.Body)
	}
	return decode[batchObj](t, r.Body)
}

func fileLines(t *testing.T, srv *simtest.Server, id *string) []outLine {
	t.Helper()
	if id == nil {
		return nil
	}
	r := get(t, srv, "/files/"+*id+"/content")
	if r.Status != 200 {
		t.Fatalf("content: %d %s", r.Status, r.Body)
	}
	var out []outLine
	for _, l := range bytes.Split(bytes.TrimSpace(r.Body), []byte("\n")) {
		out = append(out, decode[outLine](t, l))
	}
	return out
}

func TestBatchLifecycle(t *testing.T) {
	srv, fc := newSim(t, sim.Config{BatchDuration: 100 * time.Second, Seed: 1})
	in := batchLines(40, "gpt-4o-mini", 20)
	fid := upload(t, srv, "in.jsonl", in)
	b := createBatch(t, srv, fid, `,"metadata":{"job":"j1","shard":"0"}`)
	if b.Status != "validating" || b.OutputFileID != nil || b.ErrorFileID != nil || b.RequestCounts.Total != 0 || b.Metadata["job"] != "j1" {
		t.Fatalf("created: %+v", b)
	}
	if b.ExpiresAt != b.CreatedAt+86400 {
		t.Errorf("expires_at - created_at = %d, want 86400", b.ExpiresAt-b.CreatedAt)
	}
	fc.Advance(10 * time.Second)
	b = getBatch(t, srv, b.ID)
	if b.Status != "in_progress" || b.InProgressAt == nil || b.RequestCounts.Total != 40 || b.RequestCounts.Completed != 0 {
		t.Fatalf("after validation: %+v", b)
	}
	fc.Advance(40 * time.Second) // half of the 80 s in_progress phase
	b = getBatch(t, srv, b.ID)
	if b.RequestCounts.Completed != 20 {
		t.Errorf("halfway: %+v", b.RequestCounts)
	}
	fc.Advance(40 * time.Second)
	b = getBatch(t, srv, b.ID)
	if b.Status != "finalizing" || b.FinalizingAt == nil {
		t.Fatalf("want finalizing: %+v", b)
	}
	fc.Advance(10 * time.Second)
	b = getBatch(t, srv, b.ID)
	if b.Status != "completed" || b.CompletedAt == nil || b.RequestCounts.Completed != 40 || b.RequestCounts.Failed != 0 {
		t.Fatalf("want completed: %+v", b)
	}
	if b.ErrorFileID != nil {
		t.Errorf("error_file_id = %v, want null for a clean batch", *b.ErrorFileID)
	}
	out := fileLines(t, srv, b.OutputFileID)
	if len(out) != 40 {
		t.Fatalf("%d output lines", len(out))
	}
	var ids []string
	inOrder := true
	for i, l := range out {
		ids = append(ids, l.CustomID)
		if l.CustomID != fmt.Sprintf("req-%d", i+1) {
			inOrder = false
		}
		if l.Response == nil || l.Response.StatusCode != 200 || l.Error != nil || !strings.HasPrefix(l.ID, "batch_req_") || !strings.HasPrefix(l.Response.RequestID, "req_") {
			t.Fatalf("line %+v", l)
		}
		var body struct {
			Object string
			Usage  usage
		}
		_ = json.Unmarshal(l.Response.Body, &body)
		if body.Object != "chat.completion" || body.Usage.CompletionTokens > 20 || body.Usage.PromptTokens <= 0 {
			t.Errorf("body %s", l.Response.Body)
		}
	}
	if inOrder {
		t.Error("output lines are in input order; the API shuffles them")
	}
	sort.Strings(ids)
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			t.Errorf("duplicate custom_id %s in output", ids[i])
		}
	}
	// The output file is a batch_output file.
	r := get(t, srv, "/files/"+*b.OutputFileID)
	if f := decode[struct{ Purpose string }](t, r.Body); f.Purpose != "batch_output" {
		t.Errorf("purpose %q", f.Purpose)
	}
}

func TestBatchFailRate(t *testing.T) {
	srv, fc := newSim(t, sim.Config{BatchDuration: time.Minute, BatchFailRate: 0.25, Seed: 3})
	fid := upload(t, srv, "in.jsonl", batchLines(200, "gpt-4o-mini", 10))
	b := createBatch(t, srv, fid, "")
	fc.Advance(2 * time.Minute)
	b = getBatch(t, srv, b.ID)
	rc := b.RequestCounts
	if b.Status != "completed" || rc.Total != 200 || rc.Completed+rc.Failed != 200 || rc.Failed < 30 || rc.Failed > 70 {
		t.Fatalf("%s %+v", b.Status, rc)
	}
	errs := fileLines(t, srv, b.ErrorFileID)
	outs := fileLines(t, srv, b.OutputFileID)
	if len(errs) != rc.Failed || len(outs) != rc.Completed {
		t.Errorf("error file %d lines, output %d; counts %+v", len(errs), len(outs), rc)
	}
	for _, l := range errs {
		if l.Response == nil || l.Response.StatusCode != 500 || l.Error != nil {
			t.Fatalf("error line %+v", l)
		}
	}
}

func TestBatchEnqueuedTokenLimit(t *testing.T) {
	// Tier-1 gpt-4o: 90,000 enqueued tokens (wire-formats.md §6.2).
	srv, fc := newSim(t, sim.Config{Tier: "1", BatchDuration: time.Minute})
	lines := batchLines(30, "gpt-4o", 2000) // ≥ 60,000 tokens
	a := createBatch(t, srv, upload(t, srv, "a.jsonl", lines), "")
	fc.Advance(7 * time.Second) // a is in_progress
	b := createBatch(t, srv, upload(t, srv, "b.jsonl", lines), "")
	fc.Advance(7 * time.Second)
	if got := getBatch(t, srv, a.ID); got.Status != "in_progress" {
		t.Fatalf("a: %s", got.Status)
	}
	got := getBatch(t, srv, b.ID)
	if got.Status != "failed" || got.FailedAt == nil || got.Errors == nil || len(got.Errors.Data) != 1 {
		t.Fatalf("b: %+v", got)
	}
	e := got.Errors.Data[0]
	want := "Enqueued token limit reached for gpt-4o in organization org-simulated0000. Limit: 90,000 enqueued tokens. Please try again once some in_progress batches have been completed."
	if e.Code != "token_limit_exceeded" || e.Message != want || e.Line != nil {
		t.Errorf("error %+v", e)
	}
	// Once a has completed, the same file goes through.
	fc.Advance(time.Minute)
	c := createBatch(t, srv, upload(t, srv, "c.jsonl", lines), "")
	fc.Advance(time.Minute)
	if got := getBatch(t, srv, c.ID); got.Status != "completed" {
		t.Errorf("c: %s", got.Status)
	}
	// An explicit limit overrides the tier's.
	srv2, fc2 := newSim(t, sim.Config{EnqueuedLimit: 100, BatchDuration: time.Minute})
	d := createBatch(t, srv2, upload(t, srv2, "d.jsonl", batchLines(1, "gpt-4o-mini", 200)), "")
	fc2.Advance(time.Minute)
	if got := getBatch(t, srv2, d.ID); got.Status != "failed" || !strings.Contains(got.Errors.Data[0].Message, "Limit: 100 enqueued tokens.") {
		t.Errorf("d: %+v", got)
	}
}

func TestBatchCancel(t *testing.T) {
	srv, fc := newSim(t, sim.Config{BatchDuration: 100 * time.Second, Seed: 5})
	b := createBatch(t, srv, upload(t, srv, "in.jsonl", batchLines(10, "gpt-4o-mini", 10)), "")
	fc.Advance(50 * time.Second) // 10 + 40 of 80 s: 5 of 10 done
	r := post(t, srv, "/batches/"+b.ID+"/cancel", "")
	c := decode[batchObj](t, r.Body)
	if r.Status != 200 || c.Status != "cancelling" {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	fc.Advance(10 * time.Second)
	c = getBatch(t, srv, b.ID)
	if c.Status != "cancelled" || c.CancelledAt == nil || c.RequestCounts.Completed != 5 || c.RequestCounts.Failed != 5 {
		t.Fatalf("cancelled: %+v", c)
	}
	if out := fileLines(t, srv, c.OutputFileID); len(out) != 5 {
		t.Errorf("%d partial output lines, want 5", len(out))
	}
	errs := fileLines(t, srv, c.ErrorFileID)
	if len(errs) != 5 || errs[0].Error == nil || errs[0].Error.Code != "batch_cancelled" || errs[0].Response != nil {
		t.Errorf("error lines %+v", errs)
	}
	r = post(t, srv, "/batches/"+b.ID+"/cancel", "")
	if r.Status < 400 {
		t.Errorf("cancelling a cancelled batch: %d", r.Status)
	}
}

func TestBatchExpiry(t *testing.T) {
	// A completion window shorter than the batch's duration: it expires
	// in_progress with partial output.
	srv, fc := newSim(t, sim.Config{BatchDuration: 100 * time.Second, BatchCompletionWindow: 50 * time.Second})
	b := createBatch(t, srv, upload(t, srv, "in.jsonl", batchLines(8, "gpt-4o-mini", 10)), "")
	fc.Advance(time.Minute)
	e := getBatch(t, srv, b.ID)
	if e.Status != "expired" || e.ExpiredAt == nil || *e.ExpiredAt != e.CreatedAt+50 {
		t.Fatalf("%+v", e)
	}
	out, errs := fileLines(t, srv, e.OutputFileID), fileLines(t, srv, e.ErrorFileID)
	if len(out) != 4 || len(errs) != 4 || errs[0].Error.Code != "batch_expired" {
		t.Errorf("out %d errs %d %+v", len(out), len(errs), errs)
	}

	// ExpireBatch forces it.
	srv2, fc2 := newSim(t, sim.Config{BatchDuration: 100 * time.Second})
	b2 := createBatch(t, srv2, upload(t, srv2, "in.jsonl", batchLines(8, "gpt-4o-mini", 10)), "")
	fc2.Advance(30 * time.Second) // 20 of 80 s: 2 of 8 done
	if err := srv2.Sim.ExpireBatch(b2.ID); err != nil {
		t.Fatal(err)
	}
	e2 := getBatch(t, srv2, b2.ID)
	if e2.Status != "expired" || e2.RequestCounts.Completed != 2 || e2.RequestCounts.Failed != 6 {
		t.Errorf("%+v", e2)
	}
	if err := srv2.Sim.ExpireBatch(b2.ID); err == nil {
		t.Error("expired twice")
	}
}

// casesDir holds the shared real-world cases (shared/cases/CASES.md).
const casesDir = "../../../shared/cases/inputs"

func TestBatchFileValidation(t *testing.T) {
	type want struct {
		code string
		line int
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(casesDir, name))
		if err != nil {
			t.Skipf("shared cases not available: %v", err)
		}
		return b
	}
	okLine := `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}}`
	var many strings.Builder
	for i := 0; i < 50001; i++ {
		fmt.Fprintf(&many, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}}`+"\n", i)
	}
	cases := []struct {
		name  string
		input []byte
		want  []want
	}{
		// B01: line 3 repeats req-1, line 4 has an empty custom_id, line 5 repeats req-2.
		{"B01 duplicate and empty custom_id", read("B01.jsonl"), []want{{"duplicate_custom_id", 3}, {"missing_required_parameter", 4}, {"duplicate_custom_id", 5}}},
		// B03: bad urls and method against the chat endpoint.
		{"B03 url and method", read("B03.jsonl"), []want{{"url_mismatch", 2}, {"url_mismatch", 3}, {"invalid_request", 4}, {"url_mismatch", 5}}},
		// B08: array, string, null, pretty-printed object.
		{"B08 not objects", read("B08.jsonl"), []want{{"invalid_json_line", 2}, {"invalid_json_line", 3}, {"invalid_json_line", 4}, {"invalid_json_line", 5}}},
		{"model mismatch", []byte(okLine + "\n" + strings.Replace(strings.Replace(okLine, `"a"`, `"b"`, 1), "gpt-4o-mini", "gpt-4o", 1) + "\n"), []want{{"model_mismatch", 2}}},
		{"empty", []byte("\n"), []want{{"empty_file", 0}}},
		{"too many", []byte(many.String()), []want{{"too_many_tasks", 0}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, fc := newSim(t, sim.Config{BatchDuration: time.Minute})
			b := createBatch(t, srv, upload(t, srv, "in.jsonl", c.input), "")
			fc.Advance(10 * time.Second)
			got := getBatch(t, srv, b.ID)
			if got.Status != "failed" || got.Errors == nil {
				t.Fatalf("%s, errors %+v", got.Status, got.Errors)
			}
			var have []want
			for _, e := range got.Errors.Data {
				l := 0
				if e.Line != nil {
					l = *e.Line
				}
				have = append(have, want{e.Code, l})
				if e.Message == "" {
					t.Errorf("empty message for %s", e.Code)
				}
			}
			if len(have) < len(c.want) {
				t.Fatalf("errors %v, want at least %v", have, c.want)
			}
			for i, w := range c.want {
				if have[i] != w {
					t.Errorf("error %d = %v, want %v (all: %v)", i, have[i], w, have)
				}
			}
			if got.OutputFileID != nil || got.ErrorFileID != nil {
				t.Error("a failed batch has result files")
			}
		})
	}
}

func TestBatchCreateErrors(t *testing.T) {
	srv, _ := newSim(t, sim.Config{})
	fid := upload(t, srv, "in.jsonl", batchLines(1, "gpt-4o-mini", 5))
	for _, c := range []struct{ body, param string }{
		{`{"endpoint":"/v1/chat/completions","completion_window":"24h"}`, "input_file_id"},
		{fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/nope","completion_window":"24h"}`, fid), "endpoint"},
		{fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"48h"}`, fid), "completion_window"},
		{`{"input_file_id":"file-missing","endpoint":"/v1/chat/completions","completion_window":"24h"}`, "input_file_id"},
	} {
		r := post(t, srv, "/batches", c.body)
		_, typ, param, _ := r.err(t)
		if r.Status != 400 || typ != "invalid_request_error" || deref(param) != c.param {
			t.Errorf("%s: %d %s", c.body, r.Status, r.Body)
		}
	}
	// Non-.jsonl batch uploads are refused (litellm#37527 capture).
	r := do(t, "POST", srv.URL+"/files", "text/plain", nil, testKey)
	if r.Status != 400 {
		t.Errorf("non-multipart upload: %d", r.Status)
	}
}

func TestBatchListPagination(t *testing.T) {
	srv, fc := newSim(t, sim.Config{})
	fid := upload(t, srv, "in.jsonl", batchLines(1, "gpt-4o-mini", 5))
	var created []string
	for i := 0; i < 5; i++ {
		created = append(created, createBatch(t, srv, fid, fmt.Sprintf(`,"metadata":{"n":"%d"}`, i)).ID)
		fc.Advance(time.Second)
	}
	type page struct {
		Object  string
		Data    []batchObj
		FirstID *string `json:"first_id"`
		LastID  *string `json:"last_id"`
		HasMore bool    `json:"has_more"`
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		q := "/batches?limit=2"
		if after != "" {
			q += "&after=" + after
		}
		p := decode[page](t, get(t, srv, q).Body)
		for _, b := range p.Data {
			got = append(got, b.ID)
		}
		if p.Object != "list" || (len(p.Data) > 0 && (*p.FirstID != p.Data[0].ID || *p.LastID != p.Data[len(p.Data)-1].ID)) {
			t.Fatalf("page %+v", p)
		}
		if !p.HasMore {
			if pages != 2 {
				t.Errorf("%d pages, want 3", pages+1)
			}
			break
		}
		after = *p.LastID
	}
	for i := range created { // newest first
		if got[i] != created[len(created)-1-i] {
			t.Fatalf("order %v, created %v", got, created)
		}
	}
	if p := decode[page](t, get(t, srv, "/batches?limit=5").Body); p.HasMore || len(p.Data) != 5 || p.Data[0].Metadata["n"] != "4" {
		t.Errorf("exact page: has_more %v len %d", p.HasMore, len(p.Data))
	}
	if r := get(t, srv, "/batches?limit=101"); r.Status != 400 {
		t.Errorf("limit 101: %d", r.Status)
	}
}

func TestFilesEndpoints(t *testing.T) {
	srv, _ := newSim(t, sim.Config{})
	content := batchLines(2, "gpt-4o-mini", 5)
	id := upload(t, srv, "in.jsonl", content)
	r := get(t, srv, "/files/"+id)
	f := decode[struct {
		ID, Object, Filename, Purpose, Status string
		Bytes                                 int
		ExpiresAt                             *int64 `json:"expires_at"`
	}](t, r.Body)
	if f.Object != "file" || f.Bytes != len(content) || f.Filename != "in.jsonl" || f.Purpose != "batch" || f.Status != "processed" || f.ExpiresAt == nil {
		t.Errorf("%+v", f)
	}
	if r := get(t, srv, "/files/"+id+"/content"); !bytes.Equal(r.Body, content) {
		t.Error("content differs")
	}
	id2 := upload(t, srv, "b.jsonl", content)
	l := decode[struct {
		Data    []struct{ ID string }
		HasMore bool `json:"has_more"`
	}](t, get(t, srv, "/files?limit=1").Body)
	if len(l.Data) != 1 || l.Data[0].ID != id2 || !l.HasMore {
		t.Errorf("list %+v", l)
	}
	r = do(t, "DELETE", srv.URL+"/files/"+id, "", nil, testKey)
	if d := decode[struct{ Deleted bool }](t, r.Body); r.Status != 200 || !d.Deleted {
		t.Errorf("delete %d %s", r.Status, r.Body)
	}
	if r := get(t, srv, "/files/"+id); r.Status != 404 || !strings.Contains(string(r.Body), "No such File object: "+id) {
		t.Errorf("deleted file: %d %s", r.Status, r.Body)
	}
}

// TestTimeScale: with --time-scale K the batch clock runs K× faster. Not a
// timing assertion: it polls until the batch completes (a 1-minute batch
// at 3000× takes 20 ms of wall time) and fails only after 10 s.
func TestTimeScale(t *testing.T) {
	srv := simtest.New(t, sim.Config{TimeScale: 3000, BatchDuration: time.Minute})
	b := createBatch(t, srv, upload(t, srv, "in.jsonl", batchLines(3, "gpt-4o-mini", 5)), "")
	deadline := time.Now().Add(10 * time.Second)
	for getBatch(t, srv, b.ID).Status != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("batch not completed: %+v", getBatch(t, srv, b.ID))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := srv.Sim.Clock().Wall(time.Minute); got != 20*time.Millisecond {
		t.Errorf("clock.Wall(1m) = %v, want 20ms", got)
	}
}

func TestBatchOtherEndpoints(t *testing.T) {
	srv, fc := newSim(t, sim.Config{BatchDuration: time.Minute})
	for _, c := range []struct{ endpoint, body, object string }{
		{"/v1/embeddings", `{"model":"text-embedding-3-small","input":"hello","dimensions":4}`, "list"},
		{"/v1/responses", `{"model":"gpt-4o-mini","input":"hello","max_output_tokens":16}`, "response"},
		{"/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"hello","max_tokens":5}`, "text_completion"},
	} {
		line := fmt.Sprintf(`{"custom_id":"x","method":"POST","url":%q,"body":%s}`+"\n", c.endpoint, c.body)
		fid := upload(t, srv, "in.jsonl", []byte(line))
		r := post(t, srv, "/batches", fmt.Sprintf(`{"input_file_id":%q,"endpoint":%q,"completion_window":"24h"}`, fid, c.endpoint))
		id := decode[struct{ ID string }](t, r.Body).ID
		fc.Advance(2 * time.Minute)
		b := getBatch(t, srv, id)
		out := fileLines(t, srv, b.OutputFileID)
		if b.Status != "completed" || len(out) != 1 {
			t.Fatalf("%s: %+v", c.endpoint, b)
		}
		if o := decode[struct{ Object string }](t, out[0].Response.Body); o.Object != c.object {
			t.Errorf("%s: object %q", c.endpoint, o.Object)
		}
	}
}

package sim_test

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/internal/sim"
)

// TestQuotaExhaustedEveryEndpoint: under --quota-exhausted the Files,
// Batches and Models endpoints answer the same 429 insufficient_quota as
// inference (so a batch client can see exit 5), without retry-after.
func TestQuotaExhaustedEveryEndpoint(t *testing.T) {
	srv, _ := newSim(t, sim.Config{})
	fid := upload(t, srv, "in.jsonl", batchLines(1, "gpt-4o-mini", 5))
	if err := srv.Sim.SetQuotaExhausted("credit_balance_exhausted"); err != nil {
		t.Fatal(err)
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", "x.jsonl")
	_, _ = fw.Write(batchLines(1, "gpt-4o-mini", 5))
	_ = mw.Close()
	calls := map[string]result{
		"POST /files":         do(t, "POST", srv.URL+"/files", mw.FormDataContentType(), mp.Bytes(), testKey),
		"GET /files":          get(t, srv, "/files"),
		"GET /files/id":       get(t, srv, "/files/"+fid),
		"GET /files/content":  get(t, srv, "/files/"+fid+"/content"),
		"DELETE /files/id":    do(t, "DELETE", srv.URL+"/files/"+fid, "", nil, testKey),
		"POST /batches":       post(t, srv, "/batches", fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, fid)),
		"GET /batches":        get(t, srv, "/batches"),
		"GET /batches/id":     get(t, srv, "/batches/batch_x"),
		"POST /batches/x/cxl": post(t, srv, "/batches/batch_x/cancel", ""),
		"GET /models":         get(t, srv, "/models"),
		"POST /chat":          post(t, srv, "/chat/completions", chat("gpt-4o-mini", 5, "hi")),
	}
	for name, r := range calls {
		if r.Status != 429 {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
			continue
		}
		_, typ, _, code := r.err(t)
		if typ != "insufficient_quota" || code == nil || *code != "credit_balance_exhausted" {
			t.Errorf("%s: type %q code %v", name, typ, code)
		}
		if r.Header.Get("retry-after") != "" {
			t.Errorf("%s: retry-after %q on a quota error", name, r.Header.Get("retry-after"))
		}
	}
	if got := srv.Sim.Stats().RateLimited[sim.LimitQuota]; got != int64(len(calls)) {
		t.Errorf("429 quota counted %d, want %d", got, len(calls))
	}
	// A wrong key is still a 401 first.
	if r := do(t, "GET", srv.URL+"/files", "", nil, ""); r.Status != 401 {
		t.Errorf("no key: %d", r.Status)
	}
	_ = srv.Sim.SetQuotaExhausted("")
	if r := get(t, srv, "/files/"+fid); r.Status != 200 {
		t.Errorf("after the mode ends: %d", r.Status)
	}
}

// TestCompletionsModels: /v1/completions serves exactly the spec's
// CreateCompletionRequest models and refuses chat models with the API's
// message; the legacy models are listed and refused on chat.
func TestCompletionsModels(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "1"})
	for _, m := range []string{"gpt-3.5-turbo-instruct", "davinci-002", "babbage-002"} {
		r := post(t, srv, "/completions", fmt.Sprintf(`{"model":%q,"prompt":"hi","max_tokens":3}`, m))
		o := decode[struct{ Object, Model string }](t, r.Body)
		if r.Status != 200 || o.Object != "text_completion" || o.Model != m {
			t.Errorf("%s on /completions: %d %s", m, r.Status, r.Body)
		}
		if r := get(t, srv, "/models/"+m); r.Status != 200 {
			t.Errorf("GET /models/%s: %d", m, r.Status)
		}
		r = post(t, srv, "/chat/completions", chat(m, 3, "hi"))
		if msg, _, _, _ := r.err(t); r.Status != 404 || !strings.HasPrefix(msg, "This is not a chat model") {
			t.Errorf("%s on /chat/completions: %d %s", m, r.Status, r.Body)
		}
	}
	for _, m := range []string{"gpt-4o-mini", "gpt-3.5-turbo"} {
		r := post(t, srv, "/completions", fmt.Sprintf(`{"model":%q,"prompt":"hi","max_tokens":3}`, m))
		msg, typ, param, _ := r.err(t)
		want := "This is a chat model and not supported in the v1/completions endpoint. Did you mean to use v1/chat/completions?"
		if r.Status != 404 || msg != want || typ != "invalid_request_error" || param == nil || *param != "model" {
			t.Errorf("%s on /completions: %d %s", m, r.Status, r.Body)
		}
	}
	list := decode[struct{ Data []struct{ ID string } }](t, get(t, srv, "/models").Body)
	have := map[string]bool{}
	for _, d := range list.Data {
		have[d.ID] = true
	}
	for _, m := range []string{"gpt-3.5-turbo-instruct", "davinci-002", "babbage-002", "gpt-4o-mini"} {
		if !have[m] {
			t.Errorf("/models lacks %s", m)
		}
	}
}

// TestParamValidation: invalid numeric and type parameters get the API's
// 400 invalid_request_error with code and param instead of a 200.
func TestParamValidation(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "none"})
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct {
		path, body, param, code, msg string
	}{
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"max_tokens":0}`, "max_tokens", "integer_below_min_value",
			"Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead."},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"max_tokens":-5}`, "max_tokens", "integer_below_min_value", ""},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"max_tokens":"ten"}`, "max_tokens", "invalid_type",
			"Invalid type for 'max_tokens': expected an integer, but got a string instead."},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"max_tokens":2.5}`, "max_tokens", "invalid_type", ""},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"n":0}`, "n", "integer_below_min_value", ""},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"n":-50}`, "n", "integer_below_min_value", ""},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"n":129}`, "n", "integer_above_max_value",
			"Invalid 'n': integer above maximum value. Expected a value <= 128, but got 129 instead."},
		{"/chat/completions", `{"model":"o3-mini",` + msgs + `,"max_completion_tokens":0}`, "max_completion_tokens", "integer_below_min_value", ""},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"temperature":2.5}`, "temperature", "decimal_above_max_value", ""},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"temperature":-1}`, "temperature", "decimal_below_min_value", ""},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"temperature":"hot"}`, "temperature", "invalid_type", ""},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"stream":"yes"}`, "stream", "invalid_type",
			"Invalid type for 'stream': expected a boolean, but got a string instead."},
		{"/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"x","max_tokens":-1}`, "max_tokens", "integer_below_min_value", ""},
		{"/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"x","n":0}`, "n", "integer_below_min_value", ""},
		{"/embeddings", `{"model":"text-embedding-3-small","input":"x","dimensions":0}`, "dimensions", "integer_below_min_value", ""},
	}
	for _, c := range cases {
		r := post(t, srv, c.path, c.body)
		if r.Status != 400 {
			t.Errorf("%s %s: %d %s", c.path, c.body, r.Status, r.Body)
			continue
		}
		msg, typ, param, code := r.err(t)
		if typ != "invalid_request_error" || param == nil || *param != c.param || code == nil || *code != c.code || (c.msg != "" && msg != c.msg) {
			t.Errorf("%s %s: %s", c.path, c.body, r.Body)
		}
	}
	// Valid edge values pass: completions max_tokens 0 (spec minimum 0),
	// n 128 with a small budget, temperature 0 and 2, nulls.
	for _, c := range []struct{ path, body string }{
		{"/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"x","max_tokens":0}`},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"max_tokens":1,"n":128,"temperature":0}`},
		{"/chat/completions", `{"model":"gpt-4o-mini",` + msgs + `,"max_tokens":null,"n":null,"temperature":2,"stream":false}`},
	} {
		if r := post(t, srv, c.path, c.body); r.Status != 200 {
			t.Errorf("%s %s: %d %s", c.path, c.body, r.Status, r.Body)
		}
	}
}

// TestIDsDifferAcrossRestarts: two simulators with the same seed hand out
// different ids, unless DeterministicIDs is set.
func TestIDsDifferAcrossRestarts(t *testing.T) {
	ids := func(cfg sim.Config) (reqID, objID, fileID string) {
		srv, _ := newSim(t, cfg)
		r := post(t, srv, "/chat/completions", chat("gpt-4o-mini", 3, "hi"))
		return r.Header.Get("x-request-id"), decode[struct{ ID string }](t, r.Body).ID,
			upload(t, srv, "a.jsonl", batchLines(1, "gpt-4o-mini", 3))
	}
	r1, o1, f1 := ids(sim.Config{Seed: 1})
	r2, o2, f2 := ids(sim.Config{Seed: 1})
	if r1 == r2 || o1 == o2 || f1 == f2 {
		t.Errorf("ids repeat across restarts with seed 1: %s %s %s", r1, o1, f1)
	}
	if !strings.HasPrefix(r1, "req_") || !strings.HasPrefix(o1, "chatcmpl-") || !strings.HasPrefix(f1, "file-") {
		t.Errorf("id shapes %s %s %s", r1, o1, f1)
	}
	d1, _, _ := ids(sim.Config{Seed: 3, DeterministicIDs: true})
	d2, _, _ := ids(sim.Config{Seed: 3, DeterministicIDs: true})
	if d1 != d2 {
		t.Errorf("DeterministicIDs: %s != %s", d1, d2)
	}
}

// TestAccountingRules: 401 takes nothing; a 400 after model resolution
// takes one request; a 429 retried before its advertised time goes into
// request debt (the reset moves away, the advertised wait stays honest);
// a slow_down 429 takes a request.
func TestAccountingRules(t *testing.T) {
	body := chat("gpt-4o-mini", 5, "hi")
	t.Run("401 is free", func(t *testing.T) {
		srv, _ := newSim(t, sim.Config{RPM: 3})
		srv.Sim.SetInvalidKey(true)
		for i := 0; i < 5; i++ {
			if r := post(t, srv, "/chat/completions", body); r.Status != 401 {
				t.Fatalf("%d", r.Status)
			}
		}
		srv.Sim.SetInvalidKey(false)
		if r := post(t, srv, "/chat/completions", body); r.Status != 200 || hdrInt(t, r, "x-ratelimit-remaining-requests") != 2 {
			t.Errorf("after 401s: %d remaining %s", r.Status, r.Header.Get("x-ratelimit-remaining-requests"))
		}
	})
	t.Run("400 takes a request", func(t *testing.T) {
		srv, _ := newSim(t, sim.Config{RPM: 3})
		r := post(t, srv, "/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":0}`)
		if r.Status != 400 || hdrInt(t, r, "x-ratelimit-remaining-requests") != 2 {
			t.Fatalf("400: %d remaining %s", r.Status, r.Header.Get("x-ratelimit-remaining-requests"))
		}
		for i := 0; i < 2; i++ {
			if r := post(t, srv, "/chat/completions", body); r.Status != 200 {
				t.Fatalf("ok %d: %d", i, r.Status)
			}
		}
		if r := post(t, srv, "/chat/completions", body); r.Status != 429 {
			t.Errorf("4th request after a 400: %d, want 429", r.Status)
		}
	})
	t.Run("early retry goes into debt", func(t *testing.T) {
		srv, fc := newSim(t, sim.Config{RPM: 3})
		for i := 0; i < 3; i++ {
			post(t, srv, "/chat/completions", body)
		}
		r := post(t, srv, "/chat/completions", body)
		if r.Status != 429 || r.Header.Get("retry-after") != "20" || r.Header.Get("x-ratelimit-reset-requests") != "1m0s" {
			t.Fatalf("first 429: %d retry-after %q reset %q", r.Status, r.Header.Get("retry-after"), r.Header.Get("x-ratelimit-reset-requests"))
		}
		fc.Advance(5 * time.Second)
		r = post(t, srv, "/chat/completions", body) // 15 s too early
		msg, _, _, _ := r.err(t)
		if r.Status != 429 || r.Header.Get("retry-after") != "35" || r.Header.Get("x-ratelimit-reset-requests") != "1m15s" ||
			!strings.Contains(msg, "Limit 3, Used 3, Requested 1. Please try again in 35s.") {
			t.Fatalf("early retry: %d retry-after %q reset %q %s", r.Status, r.Header.Get("retry-after"), r.Header.Get("x-ratelimit-reset-requests"), msg)
		}
		fc.Advance(34 * time.Second)
		if r := post(t, srv, "/chat/completions", body); r.Status != 429 {
			t.Fatalf("1s before the advertised time: %d", r.Status)
		}
		// That one was early too: 21 s more. Honouring it admits.
		fc.Advance(21 * time.Second)
		if r := post(t, srv, "/chat/completions", body); r.Status != 200 {
			t.Errorf("after the advertised wait: %d %s", r.Status, r.Body)
		}
	})
	t.Run("debt is bounded", func(t *testing.T) {
		srv, fc := newSim(t, sim.Config{RPM: 3})
		for i := 0; i < 20; i++ {
			post(t, srv, "/chat/completions", body)
		}
		r := post(t, srv, "/chat/completions", body)
		if r.Header.Get("x-ratelimit-reset-requests") != "2m0s" {
			t.Errorf("reset after a storm: %q, want 2m0s (debt floor -limit)", r.Header.Get("x-ratelimit-reset-requests"))
		}
		fc.Advance(80 * time.Second)
		if r := post(t, srv, "/chat/completions", body); r.Status != 200 {
			t.Errorf("after 80s: %d", r.Status)
		}
	})
	t.Run("slow_down takes a request", func(t *testing.T) {
		srv, _ := newSim(t, sim.Config{RPM: 100, SlowDown: true})
		var r result
		for i := 0; i < 11; i++ {
			r = post(t, srv, "/chat/completions", body)
		}
		if r.Status != 429 || r.code(t) != "slow_down" {
			t.Fatalf("11th: %d %s", r.Status, r.Body)
		}
		if got := hdrInt(t, r, "x-ratelimit-remaining-requests"); got != 89 {
			t.Errorf("remaining after 10 ok + 1 slow_down = %d, want 89", got)
		}
	})
}

// TestBatchListUnknownCursor: a stale after= gives an empty page, not the
// first page again (which would loop a paginating client).
func TestBatchListUnknownCursor(t *testing.T) {
	srv, _ := newSim(t, sim.Config{})
	fid := upload(t, srv, "in.jsonl", batchLines(1, "gpt-4o-mini", 5))
	createBatch(t, srv, fid, "")
	r := get(t, srv, "/batches?after=batch_doesnotexist")
	p := decode[struct {
		Data    []batchObj
		HasMore bool `json:"has_more"`
		FirstID *string
	}](t, r.Body)
	if r.Status != 200 || len(p.Data) != 0 || p.HasMore {
		t.Errorf("unknown cursor: %d %s", r.Status, r.Body)
	}
}

// TestEnqueuedCountsUnfinishedBatches: a finalizing batch still holds its
// enqueued tokens, as does an earlier batch still validating.
func TestEnqueuedCountsUnfinishedBatches(t *testing.T) {
	// BatchDuration 1m: validating [0,6s), in_progress [6s,54s),
	// finalizing [54s,60s).
	srv, fc := newSim(t, sim.Config{EnqueuedLimit: 1000, BatchDuration: time.Minute})
	lines := batchLines(1, "gpt-4o-mini", 600) // > 500: two do not fit
	a := createBatch(t, srv, upload(t, srv, "a.jsonl", lines), "")
	fc.Advance(53500 * time.Millisecond)
	b := createBatch(t, srv, upload(t, srv, "b.jsonl", lines), "")
	fc.Advance(time.Second)
	if got := getBatch(t, srv, a.ID); got.Status != "finalizing" {
		t.Fatalf("a: %s", got.Status)
	}
	fc.Advance(5 * time.Second) // b's validation ends at 59.5s, a finalizing
	if got := getBatch(t, srv, b.ID); got.Status != "failed" || got.Errors == nil || got.Errors.Data[0].Code != "token_limit_exceeded" {
		t.Errorf("b next to a finalizing batch: %+v", got)
	}
	// Two batches created together: the second sees the first (validating).
	srv2, fc2 := newSim(t, sim.Config{EnqueuedLimit: 1000, BatchDuration: time.Minute})
	fid := upload(t, srv2, "c.jsonl", lines)
	c := createBatch(t, srv2, fid, "")
	d := createBatch(t, srv2, fid, "")
	fc2.Advance(7 * time.Second)
	if gc, gd := getBatch(t, srv2, c.ID), getBatch(t, srv2, d.ID); gc.Status != "in_progress" || gd.Status != "failed" {
		t.Errorf("c %s, d %s: want in_progress, failed", gc.Status, gd.Status)
	}
}

// TestFlagValidation: non-positive time scale, negative durations and
// limits are usage errors; the quota code works in the space form and as
// --quota-code.
func TestFlagValidation(t *testing.T) {
	for _, bad := range []string{"--time-scale 0", "--time-scale -2", "--latency -1s", "--latency-per-token -1ms",
		"--batch-duration -1m", "--batch-completion-window -1h", "--rpm -1", "--output-tokens -3", "--quota-code nope",
		"--quota-exhausted nope", "extra"} {
		f, err := sim.ParseArgs(strings.Fields(bad))
		if err == nil {
			_, err = f.Config()
		}
		if err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	for args, want := range map[string]string{
		"--quota-exhausted credit_balance_exhausted":    "credit_balance_exhausted",
		"--quota-exhausted=billing_not_active":          "billing_not_active",
		"--quota-exhausted":                             "insufficient_quota",
		"--quota-code project_spend_limit_exceeded":     "project_spend_limit_exceeded",
		"--tier 2 --quota-exhausted billing_not_active": "billing_not_active",
	} {
		f, err := sim.ParseArgs(strings.Fields(args))
		if err != nil {
			t.Errorf("%s: %v", args, err)
			continue
		}
		c, err := f.Config()
		if err != nil || c.QuotaExhausted != want {
			t.Errorf("%s: quota %q err %v, want %q", args, c.QuotaExhausted, err, want)
		}
	}
}

// TestWriteSummary: no goodput extrapolated from short runs; zero limits
// print as unlimited; free tier without published limits says so.
func TestWriteSummary(t *testing.T) {
	st := sim.Stats{Start: t0, End: t0.Add(800 * time.Millisecond), Requests: 5, OK: 3, GoodRequests: 3, GoodCharged: 30,
		RateLimited: map[string]int64{sim.LimitRPM: 2}, Tier: "1",
		Limits: map[string]models.Limits{"gpt-4o-mini": {RPM: 3, TPM: 200000}, "x": {}}}
	var b strings.Builder
	st.WriteSummary(&b)
	out := b.String()
	for _, want := range []string{"(800ms sim time)", "goodput: n/a for runs under a minute", "3 requests succeeded",
		"limits gpt-4o-mini: 3 RPM, 200000 TPM, unlimited RPD, unlimited TPD", "limits x: unlimited"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "req/min") || strings.Contains(out, " 0 RPD") {
		t.Errorf("short run extrapolated or 0 shown as a limit:\n%s", out)
	}
	st.End, st.Tier = t0.Add(2*time.Minute), "free"
	b.Reset()
	st.WriteSummary(&b)
	if out := b.String(); !strings.Contains(out, "goodput: 1.5 req/min, 15 tokens/min charged") || !strings.Contains(out, "limits x: no free-tier limits published") {
		t.Errorf("2-minute free-tier summary:\n%s", out)
	}
}

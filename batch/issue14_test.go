package batch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 14 §4 (case B36/B05): an embeddings batch holds at most 50,000
// embedding inputs across its lines; the splitter used to count lines
// only, so 30 lines of 2,048 inputs (61,440) went into one batch the API
// rejects. Now the shards split by inputs too.
func TestPrepare_EmbeddingInputsPerBatch(t *testing.T) {
	in := filepath.Join(t.TempDir(), "emb.jsonl")
	items := strings.TrimSuffix(strings.Repeat(`"a",`, 2048), ",")
	var b strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&b, `{"custom_id":"e%d","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":[%s]}}`+"\n", i, items)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	pr := prepare(t, in, nil)
	if pr.err != nil {
		t.Fatal(pr.err)
	}
	var total int64
	for _, s := range pr.res.Job.Shards {
		if s.Inputs > MaxEmbeddingInputsPerBatch {
			t.Errorf("shard %d holds %d embedding inputs, over %d", s.Index, s.Inputs, MaxEmbeddingInputsPerBatch)
		}
		total += s.Inputs
	}
	if len(pr.res.Job.Shards) != 2 || total != 30*2048 {
		t.Errorf("%d shards, %d inputs; want 2 shards, %d inputs", len(pr.res.Job.Shards), total, 30*2048)
	}
	// A chat file of the same line count is one shard: the cap is for
	// embeddings only.
	chat := filepath.Join(t.TempDir(), "chat.jsonl")
	b.Reset()
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&b, `{"custom_id":"c%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":5}}`+"\n", i)
	}
	if err := os.WriteFile(chat, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if pr := prepare(t, chat, nil); pr.err != nil || len(pr.res.Job.Shards) != 1 || pr.res.Job.Shards[0].Inputs != 0 {
		t.Errorf("chat: %v %+v", pr.err, pr.res)
	}
}

// The splitter's inputs cap, lowered: lines are never split, shards are.
func TestSplitter_MaxInputs(t *testing.T) {
	dir := t.TempDir()
	sp, err := NewSplitter(SplitOptions{Dir: dir, MaxInputs: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []int64{4, 4, 4, 10, 1} {
		raw := fmt.Sprintf(`{"custom_id":"e%d","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":"x"}}`, i)
		if err := sp.Add(Line{File: "f", Line: i + 1, CustomID: fmt.Sprintf("e%d", i), URL: "/v1/embeddings", Model: "text-embedding-3-small", Inputs: n, Raw: []byte(raw)}); err != nil {
			t.Fatal(err)
		}
	}
	err = sp.Add(Line{File: "f", Line: 6, CustomID: "big", URL: "/v1/embeddings", Model: "text-embedding-3-small", Inputs: 11, Raw: []byte(`{}`)})
	if err == nil || !strings.Contains(err.Error(), "11 embedding inputs") {
		t.Errorf("a line over the cap: %v", err)
	}
	shards, _, _, err := sp.Close()
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, s := range shards {
		got = append(got, s.Inputs)
	}
	if fmt.Sprint(got) != "[8 4 10 1]" && fmt.Sprint(got) != "[8 4 10 1 0]" {
		t.Errorf("shard inputs %v, want [8 4 10 1]", got)
	}
}

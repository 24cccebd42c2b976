package runner

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/api"
)

// run does not repeat count's Batch-API-only warnings ("the Batch API
// wants one model per batch"): they are not run's rules (issue 14 §7).
func TestRunOmitsBatchOnlyWarnings(t *testing.T) {
	dir := t.TempDir()
	lines := append(chatLines("a", "gpt-4o-mini", 2, 5), chatLines("b", "gpt-4o", 2, 5)...)
	in := writeLines(t, dir, "in.jsonl", lines)
	p := &funcPoster{fn: func(int, call) (*api.Response, error) { return okResponse(), nil }}
	var log bytes.Buffer
	o := baseOptions(filepath.Join(dir, "out.jsonl"), in)
	o.Client, o.RPM, o.TPM, o.Clock, o.Log = p, 10_000, 2_000_000, newInstant(), &log
	sum, err := Run(context.Background(), o)
	if err != nil || sum.Succeeded != 4 {
		t.Fatalf("err %v succeeded %d\n%s", err, sum.Succeeded, log.String())
	}
	if strings.Contains(log.String(), "Batch API") || strings.Contains(log.String(), "several_models") {
		t.Errorf("run repeats a Batch-only warning:\n%s", log.String())
	}
}

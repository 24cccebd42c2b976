package proxy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/pace"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// sdkResult is what testdata/sdk/load.mjs prints.
type sdkResult struct {
	OK, Failed int
	Errors     map[string]int
	Seen429    int            `json:"seen429"`
	Statuses   map[string]int `json:"statuses"`
	Stream     *struct {
		Chunks int
		Text   string
	}
}

// runSDK runs the official OpenAI Node SDK (testdata/sdk) against base.
func runSDK(t *testing.T, base string, env ...string) sdkResult {
	t.Helper()
	dir, _ := filepath.Abs("testdata/sdk")
	node, err := exec.LookPath("node")
	if _, serr := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil || serr != nil {
		msg := "the OpenAI Node SDK is not installed: run `npm ci` in internal/proxy/testdata/sdk (needs node)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; .ci/run does this")
		}
		t.Skip(msg)
	}
	cmd := exec.Command(node, "load.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"OPENAI_BASE_URL=" + base, "OPENAI_API_KEY=" + testKey}, env...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node load.mjs: %v\n%s", err, stderr.String())
	}
	var r sdkResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	return r
}

// The official Node SDK, unchanged, through the proxy: at a concurrency
// well over the sim's RPM, every request succeeds, the app never sees a
// 429, the sim answers none, and a streamed answer arrives whole.
func TestNodeSDK(t *testing.T) {
	up := simtest.New(t, sim.Config{RPM: 60, TPM: 1_000_000, TimeScale: 60, OutputTokens: 8})
	r := newRig(t, up.URL, rigOpts{limits: pace.Limits{RPM: 60, TPM: 1_000_000}, scale: 60, queueWait: 10 * time.Minute})
	got := runSDK(t, r.URL, "N=90", "CONCURRENCY=30", "STREAM=1", "MAX_TOKENS=8")
	if got.OK != 90 || got.Failed != 0 || got.Seen429 != 0 {
		t.Fatalf("through the proxy: %+v", got)
	}
	if got.Stream == nil || got.Stream.Chunks < 8 || got.Stream.Text == "" {
		t.Errorf("streamed answer: %+v", got.Stream)
	}
	simRequests(t, up, 91)
	if st := up.Sim.Stats(); len(st.RateLimited) != 0 || st.Requests != 91 {
		t.Errorf("sim: %d requests, 429s %v; want 91 and none", st.Requests, st.RateLimited)
	}
}

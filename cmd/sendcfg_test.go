package cmd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

// A malformed base URL or an API key with whitespace/control characters is
// a usage error (exit 2) before the first request, in every command that
// sends: nothing reaches the server, nothing is recorded, the key is never
// printed (issue 14 §0). Today's code retried them as network errors.
func TestSendConfigValidatedBeforeFirstRequest(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	hostPort := strings.TrimPrefix(srv.URL, "http://")
	const key = "sk-test-sendcfg-0000000000000000"
	tests := []struct {
		name, base, key, want string
	}{
		{"no scheme", strings.TrimSuffix(hostPort, "/"), key, "no scheme"},
		{"bad host", "http://[::1", key, "does not parse"},
		{"ftp", "ftp://" + hostPort, key, "not http or https"},
		{"no host", "http:///v1", key, "no host"},
		{"key newline", srv.URL, key + "\n", "line break at its end"},
		{"key space", srv.URL, key[:6] + " " + key[6:], "whitespace at byte 7"},
		{"key control", srv.URL, key + "\x01", "control character"},
	}
	dir, in := writeRunInput(t, runLineA, runLineB)
	for _, tt := range tests {
		for _, cmdName := range []string{"run", "diagnose", "batch submit"} {
			t.Run(tt.name+"/"+cmdName, func(t *testing.T) {
				before := len(srv.Sim.Requests())
				outPath := filepath.Join(dir, "out-"+strings.ReplaceAll(tt.name, " ", "_")+".jsonl")
				env := map[string]string{"OPENAI_API_KEY": tt.key, "OPENAI_BASE_URL": tt.base, "OAIRL_STATE_DIR": t.TempDir(), "XDG_STATE_HOME": t.TempDir()}
				f, out, errOut := newTestFactory(env)
				var args []string
				switch cmdName {
				case "run":
					args = []string{"run", in, "-o", outPath, "--rpm", "100", "--tpm", "100000"}
				case "diagnose":
					args = []string{"diagnose", "--model", "gpt-4o-mini"}
				case "batch submit":
					args = []string{"batch", "submit", in}
				}
				got := run(f, context.Background(), args)
				if got != exitcode.Usage || !strings.Contains(errOut.String(), tt.want) {
					t.Errorf("exit %d, want 2 with %q\nstdout %s\nstderr %s", got, tt.want, out, errOut)
				}
				if n := len(srv.Sim.Requests()) - before; n != 0 {
					t.Errorf("%d requests reached the server", n)
				}
				if _, err := os.Stat(outPath); err == nil {
					b, _ := os.ReadFile(outPath)
					t.Errorf("results file written: %q", b)
				}
				if strings.Contains(out.String()+errOut.String(), "sendcfg-0000") {
					t.Error("API key printed")
				}
			})
		}
	}
	// The same flag form names --base-url.
	f, _, errOut := newTestFactory(map[string]string{"OPENAI_API_KEY": key})
	if got := run(f, context.Background(), []string{"run", in, "-o", filepath.Join(dir, "o.jsonl"), "--base-url", hostPort}); got != exitcode.Usage || !strings.Contains(errOut.String(), "--base-url") {
		t.Errorf("--base-url: exit %d\n%s", got, errOut)
	}
	// A good config still runs.
	f, _, errOut = newTestFactory(map[string]string{"OPENAI_API_KEY": key, "OPENAI_BASE_URL": srv.URL})
	if got := run(f, context.Background(), []string{"run", in, "-o", filepath.Join(dir, "ok.jsonl")}); got != exitcode.OK {
		t.Errorf("good config: exit %d\n%s", got, errOut)
	}
}

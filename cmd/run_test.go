package cmd

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/sim"
	"github.com/oairl/oairl/internal/sim/simtest"
)

func TestNewRunCmdFlags(t *testing.T) {
	tests := []struct {
		args    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, o *RunOptions)
	}{
		{args: "in.jsonl -o out.jsonl", check: func(t *testing.T, o *RunOptions) {
			if o.MaxConcurrent != 50 || o.Headroom != 0.9 || o.MaxAttempts != 8 || o.MaxWait != 2*time.Minute ||
				o.Grace != 30*time.Second || o.Format != "table" || o.TimeScale != 1 || o.AssumeOutput != 1024 {
				t.Errorf("defaults %+v", o)
			}
		}},
		{args: "a.jsonl b.jsonl -o out.jsonl --tier 2 --rpm 100 --tpm 2000 --max-concurrent 4 --headroom 0.8 --max-attempts 3 --max-wait 30s --strict --ordered --retry-failed --grace 5s --metrics m.prom --format json --dry-run --time-scale 60 --model gpt-4o-mini --assume-output 50",
			check: func(t *testing.T, o *RunOptions) {
				if len(o.Files) != 2 || o.Tier != "2" || o.RPM != 100 || o.TPM != 2000 || o.MaxConcurrent != 4 || o.Headroom != 0.8 ||
					o.MaxAttempts != 3 || o.MaxWait != 30*time.Second || !o.Strict || !o.Ordered || !o.RetryFailed || o.Grace != 5*time.Second ||
					o.Metrics != "m.prom" || o.Format != "json" || !o.DryRun || o.TimeScale != 60 || o.Model != "gpt-4o-mini" || o.AssumeOutput != 50 {
					t.Errorf("parsed %+v", o)
				}
			}},
		{args: "in.jsonl -o out.jsonl --concurrency 16 --max-retry-wait 10m", check: func(t *testing.T, o *RunOptions) {
			if o.MaxConcurrent != 16 || o.MaxWait != 10*time.Minute {
				t.Errorf("aliases: %+v", o)
			}
		}},
		{args: "in.jsonl -o out.jsonl", env: map[string]string{"OAIRL_TIER": "tier3"}, check: func(t *testing.T, o *RunOptions) {
			if o.Tier != "3" {
				t.Errorf("OAIRL_TIER: %q", o.Tier)
			}
		}},
		{args: "in.jsonl", wantErr: "-o/--output is required"},
		{args: "-o out.jsonl", wantErr: "requires at least 1 arg"},
		{args: "in.jsonl -o out.jsonl --tier 9", wantErr: "--tier must be free or 1-5"},
		{args: "in.jsonl -o out.jsonl --headroom 1.5", wantErr: "--headroom"},
		{args: "in.jsonl -o out.jsonl --format yaml", wantErr: `invalid --format "yaml": valid formats are table, json`},
		{args: "in.jsonl -o in.jsonl", wantErr: "also an input file"},
		{args: "in.jsonl -o -", wantErr: "not stdout"},
		{args: "in.jsonl -o out.jsonl --max-concurrent 0", wantErr: "--max-concurrent"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			f, _, _ := newTestFactory(tt.env)
			var got *RunOptions
			c := newRunCmd(f, func(o *RunOptions) error { got = o; return nil })
			c.SetArgs(strings.Fields(tt.args))
			c.SetOut(&strings.Builder{})
			c.SetErr(&strings.Builder{})
			err := c.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}

func writeRunInput(t *testing.T, lines ...string) (dir, path string) {
	dir = t.TempDir()
	path = filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

const (
	runLineA = `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}}`
	runLineB = `{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ho"}],"max_tokens":5}}`
	runLineX = `{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[],"max_tokens":5}}`
)

// TestRunExitCodes drives the real entry point (run) against an in-process
// simulator and asserts the exact exit code of each outcome.
func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name    string
		cfg     sim.Config
		lines   []string
		extra   []string
		want    int
		wantErr string
		wantOut string
	}{
		{"all succeed", sim.Config{Tier: "none"}, []string{runLineA, runLineB}, nil, exitcode.OK, "", "succeeded\t2"},
		{"invalid line skipped: invalid input", sim.Config{Tier: "none"}, []string{runLineA, runLineX}, nil, exitcode.Input, `custom_id "x"`, "succeeded\t1"},
		{"--strict refuses", sim.Config{Tier: "none"}, []string{runLineA, runLineX}, []string{"--strict"}, exitcode.Input, "--strict", ""},
		{"quota", sim.Config{Tier: "none", QuotaExhausted: "insufficient_quota"}, []string{runLineA, runLineB}, nil, exitcode.Quota, "rerun the same command", "no_result_yet_(resumable)\t"},
		{"auth", sim.Config{Tier: "none", InvalidKey: true}, []string{runLineA}, nil, exitcode.Auth, "authentication failed", ""},
		{"unknown model: 404 is exit 4", sim.Config{Tier: "none"}, []string{strings.ReplaceAll(runLineA, "gpt-4o-mini", "gpt-nonexistent-9")}, nil, exitcode.Auth, "model_not_found", ""},
		{"dry run", sim.Config{Tier: "none"}, []string{runLineA}, []string{"--dry-run", "--tier", "1"}, exitcode.OK, "", "needs ~"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := simtest.New(t, tt.cfg)
			dir, in := writeRunInput(t, tt.lines...)
			f, out, errOut := newTestFactory(map[string]string{"OPENAI_API_KEY": "sk-test-cmd-0000000000000000", "OPENAI_BASE_URL": srv.URL})
			args := append([]string{"run", in, "-o", filepath.Join(dir, "out.jsonl")}, tt.extra...)
			got := run(f, context.Background(), args)
			if got != tt.want {
				t.Errorf("exit %d, want %d\nstdout %s\nstderr %s", got, tt.want, out, errOut)
			}
			if !strings.Contains(errOut.String(), tt.wantErr) || !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout %q (want %q)\nstderr %q (want %q)", out, tt.wantOut, errOut, tt.wantErr)
			}
			if strings.Contains(out.String()+errOut.String(), "sk-test-cmd-0000000000000000") {
				t.Error("API key printed")
			}
		})
	}
}

func TestRunInterruptedExit130(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir, in := writeRunInput(t, runLineA, runLineB)
	f, out, errOut := newTestFactory(map[string]string{"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Ctrl-C before anything was sent
	got := run(f, ctx, []string{"run", in, "-o", filepath.Join(dir, "out.jsonl"), "--rpm", "100", "--tpm", "100000"})
	if got != exitcode.Interrupted {
		t.Errorf("exit %d, want 130\n%s\n%s", got, out, errOut)
	}
	if !strings.Contains(errOut.String(), "rerun the same command to resume") {
		t.Errorf("stderr %q", errOut)
	}
}

func TestRunJSONSummaryAndMetrics(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir, in := writeRunInput(t, runLineA, runLineB)
	f, out, errOut := newTestFactory(map[string]string{"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": srv.URL})
	prom := filepath.Join(dir, "m.prom")
	got := run(f, context.Background(), []string{"run", in, "-o", filepath.Join(dir, "out.jsonl"), "--format", "json", "--metrics", prom})
	if got != 0 {
		t.Fatalf("exit %d: %s", got, errOut)
	}
	var s struct {
		Succeeded int `json:"succeeded"`
		ExitCode  int `json:"exit_code"`
		Models    []struct {
			Model string `json:"model"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(out.String()), &s); err != nil || s.Succeeded != 2 || len(s.Models) != 1 || s.Models[0].Model != "gpt-4o-mini" {
		t.Errorf("json %v %+v: %s", err, s, out)
	}
	b, err := os.ReadFile(prom)
	if err != nil || !strings.Contains(string(b), `oairl_run_requests_total{model="gpt-4o-mini",result="succeeded"} 2`) {
		t.Errorf("metrics %v:\n%s", err, b)
	}
}

// A missing input file is exit 1 (as in count), before the API key is
// even required.
func TestRunMissingInputExit1(t *testing.T) {
	dir := t.TempDir()
	f, out, errOut := newTestFactory(nil) // no OPENAI_API_KEY
	got := run(f, context.Background(), []string{"run", filepath.Join(dir, "nope.jsonl"), "-o", filepath.Join(dir, "out.jsonl")})
	if got != exitcode.Failure || !strings.Contains(errOut.String(), "cannot open") {
		t.Errorf("exit %d, want 1\nstdout %s\nstderr %s", got, out, errOut)
	}
}

// A base URL where nothing listens stops after a few attempts: exit 1,
// "cannot reach", no result lines (a rerun sends everything).
func TestRunUnreachableExit1(t *testing.T) {
	dir, in := writeRunInput(t, runLineA, runLineB)
	f, out, errOut := newTestFactory(map[string]string{"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"})
	outPath := filepath.Join(dir, "out.jsonl")
	got := run(f, context.Background(), []string{"run", in, "-o", outPath, "--rpm", "100", "--tpm", "100000"})
	if got != exitcode.Failure || !strings.Contains(errOut.String(), "cannot reach http://127.0.0.1:1/v1") {
		t.Errorf("exit %d, want 1\nstdout %s\nstderr %s", got, out, errOut)
	}
	if b, _ := os.ReadFile(outPath); len(b) != 0 {
		t.Errorf("results written: %s", b)
	}
}

// A rerun whose results file holds failures for the input exits 7 and
// says how to resend them.
func TestRunRecordedFailuresExit7(t *testing.T) {
	srv := simtest.New(t, sim.Config{Tier: "none"})
	dir, in := writeRunInput(t, runLineA)
	outPath := filepath.Join(dir, "out.jsonl")
	line := `{"id":"batch_req_1","custom_id":"a","response":{"status_code":500,"request_id":"r","body":{"error":{"message":"boom","type":"server_error"}}},"error":{"code":"server_error","message":"boom"}}` + "\n"
	if err := os.WriteFile(outPath, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	f, out, errOut := newTestFactory(map[string]string{"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": srv.URL})
	got := run(f, context.Background(), []string{"run", in, "-o", outPath})
	if got != exitcode.Partial || !strings.Contains(errOut.String(), "--retry-failed") {
		t.Errorf("exit %d, want 7\nstdout %s\nstderr %s", got, out, errOut)
	}
	got = run(f, context.Background(), []string{"run", in, "-o", outPath, "--retry-failed"})
	if got != exitcode.OK {
		t.Errorf("--retry-failed: exit %d, want 0\nstderr %s", got, errOut)
	}
}

// The terminal progress line is redrawn in place and erased before a log
// line and at the end.
func TestRunLineBar(t *testing.T) {
	var b strings.Builder
	bar := &lineBar{w: &b}
	bar.Clear() // nothing drawn: nothing to erase
	bar.Add(1)
	bar.Describe("1/2 · 3 RPM of 3 · 10 TPM of 40000 · 429s 0")
	bar.Clear()
	bar.Describe("2/2")
	bar.Finish()
	want := "\r\x1b[Ksending 1/2 · 3 RPM of 3 · 10 TPM of 40000 · 429s 0\r\x1b[K\r\x1b[Ksending 2/2\r\x1b[K"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

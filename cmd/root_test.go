package cmd

import (
	"context"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/iostreams"
)

// newTestFactory returns a factory on buffers with a fixed environment.
func newTestFactory(env map[string]string) (*Factory, *strings.Builder, *strings.Builder) {
	ios, _, out, errOut := iostreams.Test()
	f := NewFactory(ios, func(k string) string { return env[k] }, "test")
	o, e := &strings.Builder{}, &strings.Builder{}
	ios.Out, ios.ErrOut = o, e
	_ = out
	_ = errOut
	return f, o, e
}

func TestRootExitCodes(t *testing.T) {
	cases := []struct {
		args    []string
		want    int
		wantOut string
		wantErr string
	}{
		{[]string{"version"}, exitcode.OK, "oairl test", ""},
		{[]string{"--version"}, exitcode.OK, "oairl test", ""},
		{[]string{"help", "exit-codes"}, exitcode.OK, "130  interrupted", ""},
		{[]string{"help", "environment"}, exitcode.OK, "OPENAI_BASE_URL", ""},
		{[]string{"--no-such-flag"}, exitcode.Usage, "", "unknown flag"},
		{[]string{"no-such-command"}, exitcode.Usage, "", "unknown command"},
		{[]string{"version", "extra"}, exitcode.Usage, "", "unknown command"},
		{[]string{"completion", "bash"}, exitcode.OK, "bash completion", ""},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			f, out, errOut := newTestFactory(nil)
			got := run(f, context.Background(), c.args)
			if got != c.want {
				t.Errorf("exit = %d, want %d (stderr %q)", got, c.want, errOut.String())
			}
			if !strings.Contains(out.String(), c.wantOut) {
				t.Errorf("stdout %q lacks %q", out.String(), c.wantOut)
			}
			if !strings.Contains(errOut.String(), c.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut.String(), c.wantErr)
			}
		})
	}
}

func TestWorst(t *testing.T) {
	cases := []struct {
		in   []int
		want int
	}{
		{nil, 0},
		{[]int{0, 7}, 7},
		{[]int{7, 3}, 3},
		{[]int{6, 5, 4}, 5},
		{[]int{8, 7}, 7},
		{[]int{130, 5}, 130},
		{[]int{1, 3}, 3},
	}
	for _, c := range cases {
		if got := exitcode.Worst(c.in...); got != c.want {
			t.Errorf("Worst(%v) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	f, _, _ := newTestFactory(map[string]string{"OPENAI_BASE_URL": "http://env/v1/", "OPENAI_API_KEY": "sk-abcdefghijklmnop"})
	if got := f.Config().BaseURL; got != "http://env/v1" {
		t.Errorf("env base URL = %q", got)
	}
	f.flags.baseURL = "http://flag/v1"
	if got := f.Config().BaseURL; got != "http://flag/v1" {
		t.Errorf("flag must win over env: %q", got)
	}
	f2, _, _ := newTestFactory(nil)
	if got := f2.Config().BaseURL; got != DefaultBaseURL {
		t.Errorf("default base URL = %q", got)
	}
	if _, err := f2.APIClient(); err == nil || !strings.Contains(err.Error(), "OPENAI_API_KEY") {
		t.Errorf("APIClient without key: %v", err)
	}
}

package iostreams

import (
	"strings"
	"testing"
	"time"
)

func TestColorFromEnv(t *testing.T) {
	cases := []struct {
		env  map[string]string
		tty  bool
		want bool
	}{
		{nil, true, true},
		{nil, false, false},
		{map[string]string{"NO_COLOR": "1"}, true, false},
		{map[string]string{"CLICOLOR": "0"}, true, false},
		{map[string]string{"CLICOLOR": "1"}, false, false},
		{map[string]string{"CLICOLOR_FORCE": "1"}, false, true},
		{map[string]string{"CLICOLOR_FORCE": "0"}, false, false},
		{map[string]string{"CLICOLOR_FORCE": "1", "NO_COLOR": "1"}, false, true},
	}
	for _, c := range cases {
		got := ColorFromEnv(func(k string) string { return c.env[k] }, c.tty)
		if got != c.want {
			t.Errorf("env %v tty %v: %v, want %v", c.env, c.tty, got, c.want)
		}
	}
}

// The count bar counts bytes as bytes: sizes and a byte rate, never
// "1048576/31459944, 52486535189 it/s".
func TestBytesBar(t *testing.T) {
	s, _, _, errOut := Test()
	s.SetStderrTTY(true)
	bar := s.NewBytesBar(30<<20, "counting")
	bar.Add(1 << 20)
	time.Sleep(150 * time.Millisecond) // past the bar's 100 ms render throttle
	bar.Add(1 << 20)
	out := errOut.String()
	if !strings.Contains(out, "MB") || strings.Contains(out, "it/s") || strings.Contains(out, "2097152") {
		t.Fatalf("bytes bar: %q", out)
	}
	s2, _, _, errOut2 := Test()
	s2.SetStderrTTY(true)
	b2 := s2.NewProgressBar(500, "requests done")
	b2.Add(12)
	time.Sleep(150 * time.Millisecond)
	b2.Add(1)
	if out := errOut2.String(); !strings.Contains(out, "13/500") {
		t.Fatalf("items bar: %q", out)
	}
}

func TestColourPrefixAndBar(t *testing.T) {
	s, _, _, errOut := Test()
	s.SetStderrTTY(true)
	s.ResolveColor(func(string) string { return "" })
	if !strings.Contains(s.ErrorPrefix(), "\x1b[") {
		t.Fatalf("prefix on a terminal: %q", s.ErrorPrefix())
	}
	b := s.NewProgressBar(10, "x")
	b.Add(1)
	time.Sleep(150 * time.Millisecond)
	b.Add(1)
	if !strings.Contains(errOut.String(), "\x1b[") {
		t.Fatalf("no colour in the bar: %q", errOut.String())
	}
	s.ResolveColor(func(k string) string { return map[string]string{"NO_COLOR": "1"}[k] })
	if s.ErrorPrefix() != "oairl:" {
		t.Fatalf("NO_COLOR prefix %q", s.ErrorPrefix())
	}
}

// Package iostreams holds the standard streams a command writes to, and
// knows whether they are terminals (for tables, colour and progress bars).
// Modelled on cli/cli pkg/iostreams.
package iostreams

import (
	"bytes"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// IOStreams are the streams of one command run. Stdout carries data;
// stderr carries progress, warnings and hints.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdinTTY, stdoutTTY, stderrTTY bool
	// Quiet silences progress lines and hints (not errors, not data).
	Quiet bool
	// NoProgress disables progress bars even on a terminal.
	NoProgress bool
	// ColorEnabled says whether stdout may carry ANSI colour, and
	// ColorErr the same for stderr (see ColorFromEnv). oairl colours only
	// stderr today: the "oairl:" error prefix and progress bars.
	ColorEnabled bool
	ColorErr     bool

	// width is the terminal's width in columns, 0 when unknown.
	width int
}

// DefaultWidth is the width assumed when the terminal does not say (or
// output is not a terminal): the classic 80 columns.
const DefaultWidth = 80

// TermWidth is the terminal's width in columns (stdout's, else stderr's),
// DefaultWidth when unknown. Tables and progress lines fit themselves to
// it so that a narrow window never wraps them.
func (s *IOStreams) TermWidth() int {
	if s.width > 0 {
		return s.width
	}
	return DefaultWidth
}

// SetTermWidth sets the terminal width in columns (tests; 0 = unknown).
func (s *IOStreams) SetTermWidth(cols int) { s.width = cols }

// System returns streams on the process's stdin, stdout and stderr.
func System() *IOStreams {
	s := &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	s.stdinTTY = isTerminal(os.Stdin)
	s.stdoutTTY = isTerminal(os.Stdout)
	s.stderrTTY = isTerminal(os.Stderr)
	for _, f := range []*os.File{os.Stdout, os.Stderr} {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			s.width = w
			break
		}
	}
	s.ResolveColor(os.Getenv)
	return s
}

// ColorFromEnv decides whether a stream may carry ANSI colour, following
// the NO_COLOR (no-color.org) and CLICOLOR conventions as gh does:
// CLICOLOR_FORCE set to anything but "0" forces colour, even off a
// terminal and despite NO_COLOR; otherwise NO_COLOR set to anything, or
// CLICOLOR=0, turns it off; otherwise colour is on exactly when the stream
// is a terminal.
func ColorFromEnv(getenv func(string) string, tty bool) bool {
	if v := getenv("CLICOLOR_FORCE"); v != "" && v != "0" {
		return true
	}
	if getenv("NO_COLOR") != "" || getenv("CLICOLOR") == "0" {
		return false
	}
	return tty
}

// ResolveColor sets ColorEnabled and ColorErr from the environment.
func (s *IOStreams) ResolveColor(getenv func(string) string) {
	s.ColorEnabled = ColorFromEnv(getenv, s.stdoutTTY)
	s.ColorErr = ColorFromEnv(getenv, s.stderrTTY)
}

// ErrorPrefix returns "oairl:" for error messages on stderr, in bold red
// when stderr may carry colour.
func (s *IOStreams) ErrorPrefix() string {
	if s.ColorErr {
		return "\x1b[1;31moairl:\x1b[0m"
	}
	return "oairl:"
}

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// Test returns streams on buffers: stdin, stdout, stderr. Neither is a TTY
// until SetStdoutTTY/SetStderrTTY say so.
func Test() (*IOStreams, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) {
	in, out, errOut := &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// SetStdoutTTY marks stdout as a terminal (tests).
func (s *IOStreams) SetStdoutTTY(v bool) { s.stdoutTTY = v }

// SetStderrTTY marks stderr as a terminal (tests).
func (s *IOStreams) SetStderrTTY(v bool) { s.stderrTTY = v }

// IsStdoutTTY reports whether stdout is a terminal: tables for people
// rather than tab-separated rows for scripts.
func (s *IOStreams) IsStdoutTTY() bool { return s.stdoutTTY }

// IsStderrTTY reports whether stderr is a terminal.
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// SetStdinTTY marks stdin as a terminal (tests).
func (s *IOStreams) SetStdinTTY(v bool) { s.stdinTTY = v }

// IsStdinTTY reports whether stdin is a terminal (a question can be asked).
func (s *IOStreams) IsStdinTTY() bool { return s.stdinTTY }

// ProgressEnabled reports whether a progress bar may be drawn: stderr is a
// terminal and neither --quiet nor --no-progress was given.
func (s *IOStreams) ProgressEnabled() bool {
	return s.stderrTTY && !s.Quiet && !s.NoProgress
}

// NewProgressBar returns a progress bar on stderr counting max items
// (requests; -1 for unknown), with the count and the rate in items per
// second ("12/500, 40 it/s"). When progress is disabled the returned
// Progress draws nothing, so callers never check.
func (s *IOStreams) NewProgressBar(max int64, description string) *Progress {
	return s.newBar(max, description, false)
}

// NewBytesBar is NewProgressBar for a count of bytes: it shows sizes and
// the rate in bytes ("1.0 MB/30 MB, 52 MB/s").
func (s *IOStreams) NewBytesBar(max int64, description string) *Progress {
	return s.newBar(max, description, true)
}

func (s *IOStreams) newBar(max int64, description string, bytes bool) *Progress {
	if !s.ProgressEnabled() {
		return &Progress{}
	}
	if s.ColorErr {
		description = "[cyan]" + description + "[reset]"
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(s.ErrOut), // never stdout: it carries data
		progressbar.OptionSetDescription(description),
		progressbar.OptionEnableColorCodes(s.ColorErr),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	}
	if bytes {
		// Sizes and a byte rate; the item rate would read bytes as items.
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowIts())
	}
	bar := progressbar.NewOptions64(max, opts...)
	return &Progress{bar: bar}
}

// NewStatusBar returns a bar for progress reported by a server in jumps
// (a batch's request counts): the count and the elapsed time, no rate and
// no ETA (both mislead when thousands complete at once), and drawn at
// once, so that a phase with no progress yet (a batch validating) still
// shows its description. A no-op when progress is disabled.
func (s *IOStreams) NewStatusBar(max int64, description string) *Progress {
	if !s.ProgressEnabled() {
		return &Progress{}
	}
	bar := progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(s.ErrOut), // never stdout: it carries data
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)
	_ = bar.RenderBlank()
	return &Progress{bar: bar}
}

// Redraw draws the bar again (after Describe, or after text was printed
// through Writer); throttled like every render.
func (p *Progress) Redraw() {
	if p != nil && p.bar != nil {
		_ = p.bar.RenderBlank()
	}
}

// Writer returns w wrapped so that each write first erases the bar (the
// text starts at the beginning of a clean line instead of being glued to
// a half-drawn bar) and draws it again after. Write whole lines through
// it. With no bar, it returns w; nil stays nil.
func (p *Progress) Writer(w io.Writer) io.Writer {
	if w == nil || p == nil || p.bar == nil {
		return w
	}
	return barWriter{p: p, w: w}
}

type barWriter struct {
	p *Progress
	w io.Writer
}

func (b barWriter) Write(s []byte) (int, error) {
	b.p.Clear()
	n, err := b.w.Write(s)
	b.p.Redraw()
	return n, err
}

// Clear erases the bar from its line (it is drawn again by the next
// update or Redraw).
func (p *Progress) Clear() {
	if p != nil && p.bar != nil {
		_ = p.bar.Clear()
	}
}

// Progress wraps an optional progress bar; every method is a no-op when
// progress is disabled.
type Progress struct{ bar *progressbar.ProgressBar }

// Add advances the bar by n steps.
func (p *Progress) Add(n int64) {
	if p != nil && p.bar != nil {
		_ = p.bar.Add64(n)
	}
}

// Describe changes the text shown beside the bar.
func (p *Progress) Describe(s string) {
	if p != nil && p.bar != nil {
		p.bar.Describe(s)
	}
}

// Finish completes and clears the bar.
func (p *Progress) Finish() {
	if p != nil && p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Clear()
	}
}

// Active reports whether a bar is drawn.
func (p *Progress) Active() bool { return p != nil && p.bar != nil }

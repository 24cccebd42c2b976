package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/oairl/oairl/internal/exitcode"
)

// SchemaVersion is the version of every JSON document oairl prints on
// stdout (`--format json`): the "schema_version" key of each. Fields are
// only ever added within a version; removing or changing one bumps it.
const SchemaVersion = 1

// addFormatFlags binds --format (one of formats; the first is the
// default) and --json (short for --format json) to dst, completes the
// values, and checks them before RunE: an unknown format, or --json with
// another --format, is a usage error (exit 2). It records JSON mode on the
// factory, so that a failing command still prints a JSON error document.
func addFormatFlags(f *Factory, c *cobra.Command, dst *string, help string, formats ...string) {
	var asJSON bool
	fl := c.Flags()
	fl.StringVar(dst, "format", formats[0], help)
	fl.BoolVar(&asJSON, "json", false, "short for --format json")
	_ = c.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	prev := c.PreRunE
	c.PreRunE = func(c *cobra.Command, args []string) error {
		if asJSON {
			if c.Flags().Changed("format") && *dst != "json" {
				return FlagErrorf("--json and --format %s cannot be combined", *dst)
			}
			*dst = "json"
		}
		if !slices.Contains(formats, *dst) {
			return FlagErrorf("invalid --format %q: valid formats are %s", *dst, strings.Join(formats, ", "))
		}
		f.jsonOutput = *dst == "json"
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
}

// writeJSON writes doc as one indented JSON document with
// "schema_version" as its first key (doc must encode as a JSON object).
func writeJSON(w io.Writer, doc any) error {
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	enc.SetEscapeHTML(false) // messages quote "<html>" pages and "->" verbatim
	if err := enc.Encode(doc); err != nil {
		return err
	}
	b := bytes.TrimRight(raw.Bytes(), "\n")
	if len(b) < 2 || b[0] != '{' {
		return fmt.Errorf("internal error: JSON document is not an object")
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `{"schema_version":%d`, SchemaVersion)
	if len(b) > 2 {
		buf.WriteByte(',')
	}
	buf.Write(b[1:])
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// errorCodes name the exit codes in the JSON error document.
var errorCodes = map[int]string{
	exitcode.Failure: "failure", exitcode.Usage: "usage", exitcode.Input: "invalid_input",
	exitcode.Auth: "auth", exitcode.Quota: "insufficient_quota", exitcode.RateLimited: "rate_limited",
	exitcode.Partial: "partial", exitcode.Pending: "pending", exitcode.Interrupted: "interrupted",
}

// jsonErrorDoc is what a command run with --format json prints on stdout
// when it fails before printing its own document:
//
//	{"schema_version": 1, "error": {"code": "auth", "message": "...", "exit_code": 4}}
//
// code names the exit code: failure 1, usage 2, invalid_input 3, auth 4,
// insufficient_quota 5, rate_limited 6, partial 7, pending 8, interrupted
// 130. message is the stderr message, the key redacted.
type jsonErrorDoc struct {
	Error jsonError `json:"error"`
}

type jsonError struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	ExitCode int    `json:"exit_code"`
}

func writeJSONError(w io.Writer, code int, msg string) error {
	name := errorCodes[code]
	if name == "" {
		name = "failure"
	}
	return writeJSON(w, jsonErrorDoc{Error: jsonError{Code: name, Message: msg, ExitCode: code}})
}

// wantsJSON reports whether args ask for JSON output (--json, --format
// json, --format=json): for errors raised before the flags are parsed.
func wantsJSON(args []string) bool {
	for i, a := range args {
		if a == "--" {
			return false
		}
		if a == "--json" || a == "--json=true" || a == "--format=json" || a == "--format" && i+1 < len(args) && args[i+1] == "json" {
			return true
		}
	}
	return false
}

// countingWriter counts the bytes written through it: the JSON error
// document is printed only when the command printed nothing on stdout
// (a command that printed its document and then fails keeps one document).
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Package input reads request files (JSONL in the Batch API input format,
// or bare request bodies), validates every line as the API would, and
// counts each request with the tokens package, streaming, in parallel,
// with results delivered in input order. count, run and batch all read
// their input through it, so they agree on what is valid.
//
// CONTRACT (shared with cmd/count.go, internal/runner, batch): the exported
// names in this file are used by other packages; change them only together
// with their callers.
package input

import (
	"encoding/json"
	"io"

	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/tokens"
)

// Severity of a Problem (error: the API would reject it; warning; note).
type Severity = tokens.Severity

// Problem is one finding, located. Line is the physical 1-based line of the
// original file (a BOM, CRLF and blank lines do not shift it). File-level
// findings anchored to a line carry it (bom: 1; crlf: the first CRLF line;
// blank_lines: the first blank line; over_batch_requests: the 50,001st
// request); the others (no_requests, several_models, over_batch_bytes,
// over_enqueued_limit, unreadable_file, gzip_without_gz_extension) have 0.
// CustomID is "" when unknown.
type Problem struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	CustomID string   `json:"custom_id"`
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	Message  string   `json:"message"`
}

// Request is one non-blank line of a request file.
type Request struct {
	File    string // the path as given ("-" for stdin)
	Line    int    // physical 1-based line where the request starts
	EndLine int    // physical line where it ends (== Line for JSONL)
	// Source is the index of the request's source in Scan's sources;
	// Offset is where its first line starts in that source's stream
	// (decompressed for gzip; a UTF-8 BOM at byte 0 included) and Size the
	// bytes of its lines with their endings, so that the record can be
	// read back from the file (or from Options.Spill's copy) without being
	// held in memory.
	Source int
	Offset int64
	Size   int64
	// Bare is true for a bare request body (no custom_id/method/url/body
	// envelope); CustomID is then AutoID's "line-N" (first source) or
	// "BASE:line-N" (later sources), checked for duplicates like any id,
	// and URL is inferred from the body (messages → /v1/chat/completions,
	// input+model → /v1/responses or /v1/embeddings for embedding models,
	// a prompt object (template reference) → /v1/responses, another
	// prompt → /v1/completions); one endpoint per file applies to it.
	Bare     bool
	CustomID string
	Method   string
	URL      string          // e.g. "/v1/chat/completions"
	Body     json.RawMessage // the body exactly as written (never re-encoded)
	// Raw is the line as written, minus BOM, line ending and trailing
	// whitespace: what is uploaded or resubmitted.
	Raw []byte
	// Model is the body's model, or --model for a line that names none
	// (Body then has "model" inserted as its first member; every other
	// byte is as written).
	Model      string
	Resolution models.Resolution
	Count      tokens.Count
	Problems   []Problem // this line's problems, errors first
}

// Valid reports whether the request has no error-severity problem.
func (r *Request) Valid() bool {
	for _, p := range r.Problems {
		if p.Severity == tokens.Error {
			return false
		}
	}
	return true
}

// Source is one input: a path, or "-" for Options.Stdin. Gzip data is
// decompressed whatever the name (detected by its magic bytes); a name
// ending in ".gz" that is not gzip is an error.
type Source struct {
	Name string
}

// Options configure Scan.
type Options struct {
	// Registry resolves each line's model (Request.Resolution); nil leaves
	// Resolution empty unless the Counter fills it.
	Registry *models.Registry
	// Counter counts each body and adds its problems (package tokens);
	// nil validates the lines without counting them (Count stays zero).
	Counter *tokens.Counter
	// Model is used for lines whose body names no model (--model).
	Model string
	// Endpoint, when set, is the endpoint every line must use (batch
	// --endpoint). When "", the first line of each file with a valid
	// Batch url sets that file's batch endpoint (each file is one batch,
	// and a batch takes one endpoint). Lines using another endpoint get
	// endpoint_mismatch errors (bare bodies too, by their inferred url):
	// count and batch submit (with or without --dry-run) report the same
	// errors, and a mixed file is never split or rewritten (case B03,
	// issue 14 §4).
	Endpoint string
	// MixedEndpoints, with Endpoint "", lets one file hold lines for
	// several endpoints and reports nothing about it: run sends each line
	// to its own url, so one endpoint per batch does not apply there.
	MixedEndpoints bool
	// TPMLimit, when > 0, makes a request whose TPM charge exceeds it an
	// error (request_too_large: it can never succeed synchronously).
	TPMLimit int64
	// TPMLimitName names TPMLimit in messages, e.g. "--tpm" (default
	// "the TPM limit"): "... which exceeds --tpm 30,000".
	TPMLimitName string
	// Tier, when set ("free", "1".."5") and TPMLimit is 0, makes each
	// request's limit its model's published TPM at that tier
	// (models.Model.TierLimits); models without a published TPM are not
	// checked.
	Tier string
	// Workers is the number of counting goroutines (0 = GOMAXPROCS).
	Workers int
	// Progress, when set, is called with the number of bytes read so far
	// (on disk, so compressed bytes for a .gz source), about every MB and
	// at the end of each source, from one goroutine.
	Progress func(bytesRead int64)
	// Stdin is read for the source "-" (nil: "-" is an error).
	Stdin io.Reader
	// KeepGoing turns a source that cannot be opened or read (missing,
	// a directory, corrupt gzip, a read error part-way) into a file-level
	// unreadable_file error in Summary.FileProblems, and goes on with the
	// next source, instead of failing the whole Scan (count sets it; the
	// lines read before a mid-file error are kept).
	KeepGoing bool
	// Spill, when set, is called once for each source that cannot be
	// read again by offset (gzip-compressed, or not a regular file such as
	// stdin or a pipe) before it is read; everything read from it,
	// decompressed, is copied to the writer returned, so that
	// Request.Offset/Size address that copy. An error fails the source.
	Spill func(source int) (io.Writer, error)
	// MaxLineBytes is the longest line held in memory (bytes; 0 =
	// DefaultMaxLineBytes, 200 MiB). Longer lines are skipped and reported
	// as line_too_large.
	MaxLineBytes int
}

// Summary is what Scan found across all sources. Bytes counts the
// uncompressed bytes of every source.
type Summary struct {
	Requests int   // non-blank lines that became a Request (valid or not)
	Valid    int   // requests without errors
	Bytes    int64 // bytes read
	// FileProblems are the file-level findings (BOM, CRLF, blank lines,
	// several models, over 50,000 requests or 200 MB, ...), Line 0 or the
	// first line concerned.
	FileProblems []Problem
}

package input

import (
	"fmt"

	"github.com/oairl/oairl/tokens"
)

// Code documents one problem code: stable, snake_case, used in --format
// json and by scripts.
type Code struct {
	Code     string
	Severity Severity
	Summary  string
}

// Codes lists every problem code the input package reports (the tokens
// package adds the body-level ones: missing_model, stream_not_supported,
// messages_*, context_length_exceeded, unknown_model, no_output_budget, ...).
var Codes = []Code{
	{"invalid_json", tokens.Error, "the line is not valid JSON (decoder message and column), or is cut short"},
	{"invalid_utf8", tokens.Error, "the line is not valid UTF-8; the API rejects it (counted with U+FFFD)"},
	{"lone_surrogate", tokens.Error, `a JSON string holds a \uD800-\uDFFF escape without its other half (e.g. "\ud83d" alone); the API rejects it`},
	{"not_utf8", tokens.Error, "the file is UTF-16; it is skipped"},
	{"not_an_object", tokens.Error, "the line is a JSON array, string, number, boolean or null"},
	{"pretty_printed", tokens.Error, "one object spread over several lines (reported once for the block)"},
	{"bom_inside", tokens.Error, "a byte-order mark at the start of a line other than the first"},
	{"line_too_large", tokens.Error, "a line longer than 200 MB; skipped"},
	{"missing_custom_id", tokens.Error, "no custom_id"},
	{"empty_custom_id", tokens.Error, `custom_id is ""`},
	{"custom_id_not_string", tokens.Error, "custom_id is a number, null, ..."},
	{"duplicate_custom_id", tokens.Error, "custom_id already used (compared byte-exactly, across all files; the line-N ids of bare bodies included)"},
	{"custom_id_lookalike", tokens.Warning, "custom_id with surrounding whitespace or invisible/look-alike characters, or equal to another once case, whitespace, zero-width and format characters, accents (NFC/NFD) and Cyrillic/Greek look-alikes are folded (one warning per line)"},
	{"missing_method", tokens.Error, "no method"},
	{"method_not_post", tokens.Error, `method is not "POST"`},
	{"missing_url", tokens.Error, "no url"},
	{"url_not_string", tokens.Error, "url is not a string"},
	{"url_absolute", tokens.Error, "url is an absolute URL, not a path"},
	{"url_missing_v1", tokens.Error, `url lacks the "/v1" prefix`},
	{"url_query", tokens.Error, "url carries a query string or fragment"},
	{"url_not_batch_endpoint", tokens.Error, "url is not one of the Batch endpoints (input.Endpoints)"},
	{"endpoint_mismatch", tokens.Error, "url (or a bare body's inferred url) differs from the batch endpoint (--endpoint, else the file's first valid url): one endpoint per batch (not checked by run)"},
	{"other_provider_format", tokens.Error, `the line is in another provider's batch format (Anthropic "params", Gemini/Vertex "request", Bedrock "modelInput"), named in the message`},
	{"missing_body", tokens.Error, "no body (or the request fields are at the top level)"},
	{"body_not_object", tokens.Error, "body is a string (e.g. encoded JSON), array, number or null"},
	{"duplicate_member", tokens.Warning, "a member name repeats in the line or, at any depth, in the body (the API likely uses the last value)"},
	{"unknown_field", tokens.Warning, "a member other than custom_id, method, url, body (not sent)"},
	{"request_too_large", tokens.Error, "TPM charge above --tpm or the tier's TPM: it can never be sent"},
	{"count_failed", tokens.Error, "counting this line failed (a bug; the rest of the file is unaffected)"},
	{"model_from_flag", tokens.Note, "the body names no model; --model was inserted"},
	{"not_counted", tokens.Note, "an endpoint oairl validates but does not count (images, videos)"},
	{"unreadable_file", tokens.Error, "the file cannot be opened or read (missing, a directory, corrupt gzip, a read error); the other files are still checked"},
	{"gzip_without_gz_extension", tokens.Warning, "gzip data in a file whose name does not end in .gz: read, but the Batch API would reject the upload"},
	{"no_requests", tokens.Error, "the file is empty or holds only blank lines"},
	{"bom", tokens.Warning, "the file starts with a UTF-8 byte-order mark (ignored)"},
	{"crlf", tokens.Warning, "CRLF line endings (accepted)"},
	{"blank_lines", tokens.Warning, "blank or whitespace-only lines (ignored, listed once)"},
	{"several_models", tokens.Warning, "more than one model in a file; a batch takes one"},
	{"over_batch_requests", tokens.Warning, "more than 50,000 requests in a file: Batch needs splitting"},
	{"over_batch_bytes", tokens.Warning, "a file over 200 MB: Batch needs splitting"},
	{"over_enqueued_limit", tokens.Warning, "a file's tokens for a model exceed the tier's Batch enqueued-token limit"},
}

// CheckEnqueued reports whether enqueued (the prompt tokens + output budget
// of the requests of one batch file for model, in tokens) exceeds the Batch
// API's enqueued-token limit for that model (models.Limits.BatchQueueTokens;
// limitName says where it comes from, e.g. "tier 1"), and if so returns an
// over_enqueued_limit warning for file. A limit ≤ 0 is unknown: no problem.
// Source of the limit: the "batch queue limit" of OpenAI's model pages
// (shared/research/wire-formats.md §1.6).
func CheckEnqueued(file, model string, enqueued, limit int64, limitName string) (Problem, bool) {
	if limit <= 0 || enqueued <= limit {
		return Problem{}, false
	}
	return Problem{File: file, Severity: tokens.Warning, Code: "over_enqueued_limit", Message: fmt.Sprintf(
		"%s requests need ~%s enqueued tokens, over the %s Batch queue limit of %s for %s; one batch this size fails with token_limit_exceeded — oairl batch submit queues it in parts",
		model, Thousands(enqueued), limitName, Thousands(limit), model)}, true
}

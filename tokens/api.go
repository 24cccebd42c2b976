// Package tokens counts tokens exactly as OpenAI's tokenizer does, and
// computes each request's TPM charge and cost. Offline: the BPE files are
// embedded (pkoukk/tiktoken-go-loader); nothing is downloaded at run time.
//
// # Counting
//
// Text is tokenised with the vocabularies of pkoukk/tiktoken-go (o200k_base,
// cl100k_base, p50k_base, p50k_edit, r50k_base) by an exact fast path
// (bpe.go, pretok.go) that gives the same token ids as pkoukk's Encode
// (checked by tests against fixed id vectors, a corpus and a fuzz test)
// and is linear on pathological long words (case B27). Options.Reference
// uses pkoukk's own encoder instead. Special-token literals such as
// "<|endoftext|>" are ordinary text (case B25), as the API treats user
// content. Each encoding is loaded once per process, when first needed.
// Long texts that repeat (system prompts) are cached by a 64-bit hash.
//
// Request bodies are counted by endpoint:
//   - /v1/chat/completions: the cookbook recipe ("How to count tokens with
//     tiktoken": 3 tokens per message, 1 per name, 3 to prime the reply;
//     gpt-3.5-turbo-0301: 4 and -1). Exact for string contents (the
//     cookbook's published examples reproduce). Text parts are exact;
//     image parts follow OpenAI's image rules (images.go); tools and
//     functions follow the cookbook's num_tokens_for_tools (exact for its
//     published examples, estimates for nested schemas and other model
//     families); tool_calls, tool messages and response_format json_schema
//     are estimates (Count.Estimated, note "estimated").
//   - /v1/responses: instructions and input items with the chat framing
//     (an estimate: no published recipe).
//   - /v1/embeddings: the sum of the inputs' tokens (token arrays count
//     their length), no framing, no output budget.
//   - /v1/completions: the prompt(s) and suffix, no framing; max_tokens
//     defaults to 16 as in the API.
//   - /v1/moderations: the input texts; no output budget.
//
// TPMCharge = PromptTokens + OutputBudget × N (TPMCharge, which gives the
// evidence for this rule).
//
// Memory: Analyze decodes the body with a decoder of its own (decode.go)
// that does not copy strings of 4 KB or more without escapes (data-URL
// images, long texts): they are views of the body, valid during the call.
// Image sizes are read from the first bytes of the base64 payload only.
//
// Invalid UTF-8: Go's JSON decoder replaces each invalid byte of a string
// with U+FFFD, and CountText does the same for raw text, so such text is
// counted with one U+FFFD per bad byte (Node and Python replace each bad
// sequence once; the count can differ by a token). The API rejects such
// bodies; internal/input reports them.
//
// # Problem codes
//
// Errors (the API would reject the request): invalid_json, body_not_object,
// body_endpoint_mismatch, missing_model, stream_not_supported,
// messages_missing, messages_empty, message_invalid, input_missing,
// input_invalid, prompt_missing, max_tokens_on_reasoning_model,
// conflicting_output_budget, invalid_output_budget,
// context_length_exceeded (prompt + explicit output budget of one choice
// over the context window, as the API checks it; with no budget, the
// prompt alone), output_budget_over_model_max, invalid_n,
// embedding_input_too_long, too_many_embedding_inputs,
// embedding_request_too_large, model_endpoint_mismatch, count_failed.
// Warnings: unknown_model (any model without a registry entry: cost and
// limits unknown), no_output_budget, small_reasoning_budget,
// duplicate_member (a name repeated in any object of the body).
// Notes: image_size_assumed, estimated, model_resolved.
// codes.go documents each; CodeSeverity maps them to their severity.
//
// CONTRACT (shared with internal/input, internal/sim, internal/runner, batch):
// the exported names in this file are used by other packages; change them
// only together with their callers.
package tokens

import (
	"github.com/oairl/oairl/internal/models"
)

// Severity of a Problem.
type Severity string

const (
	Error   Severity = "error"   // the API would reject the request
	Warning Severity = "warning" // accepted, but probably not what you want
	Note    Severity = "note"    // information
)

// Problem is something Analyze noticed about one request body. Code is a
// stable snake_case identifier (the Code* constants, e.g.
// "stream_not_supported", "max_tokens_on_reasoning_model",
// "no_output_budget"); Message is for people.
type Problem struct {
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	Message  string   `json:"message"`
}

// Count is the token accounting of one request body.
type Count struct {
	Model    string `json:"model"`    // as written in the body ("" if none)
	Encoding string `json:"encoding"` // o200k_base, cl100k_base, ...
	// PromptTokens is what the API reports as usage.prompt_tokens
	// (input_tokens for /v1/responses), in tokens.
	PromptTokens int64 `json:"prompt_tokens"`
	// OutputBudget is max_completion_tokens, max_tokens or
	// max_output_tokens (tokens per choice); when the body sets none it is
	// the assumed value and BudgetAssumed is true. 0 for embeddings.
	OutputBudget  int64 `json:"output_budget"`
	BudgetAssumed bool  `json:"budget_assumed,omitempty"`
	// N is the number of choices (n), 1 when absent.
	N int64 `json:"n"`
	// TPMCharge = PromptTokens + OutputBudget × N: what the rate limiter
	// reserves for this request (OpenAI help "rate limit advice").
	TPMCharge int64 `json:"tpm_charge"`
	// Estimated is true when part of the count follows an assumption
	// (remote image sizes, tool schemas, an unknown model's encoding, a
	// line over the time budget) rather than the exact recipe.
	Estimated bool `json:"estimated,omitempty"`
	// ServiceTier is the body's service_tier ("auto", "default", "flex",
	// "priority"; "" when absent). Flex is billed at Batch API prices
	// (developers.openai.com/api/docs/guides/flex-processing) and counts
	// against the same rate limits.
	ServiceTier string `json:"service_tier,omitempty"`
	// Inputs is the number of embedding inputs of an embeddings request
	// (1 for a string or a flat token array, else the array's length); 0
	// for other endpoints. The Batch API caps an embeddings batch at
	// 50,000 inputs in all (batch splits by it).
	Inputs int64 `json:"-"`
}

// Options configure a Counter.
type Options struct {
	// Registry resolves model names to encodings and limits (required).
	Registry *models.Registry
	// AssumeOutput is the output budget assumed for a request that sets
	// none (tokens); callers pass the --assume-output value.
	AssumeOutput int64
	// Encoding, when set, overrides the model's encoding for every request.
	Encoding string
	// Reference counts with pkoukk/tiktoken-go's own encoder (regexp2 and
	// its quadratic merge) instead of the fast exact path: for
	// cross-checks and the benchmark baseline. Slow; a long word can take
	// minutes.
	Reference bool
	// NoCache disables the cache of repeated long texts.
	NoCache bool
}

// Analysis is the result of analysing one request body.
type Analysis struct {
	Count    Count
	Model    models.Resolution
	Problems []Problem
}

// Package tokens counts tokens exactly as OpenAI's tokenizer does, and
// computes each request's TPM charge and cost. Offline: the BPE files are
// embedded (pkoukk/tiktoken-go-loader); nothing is downloaded at run time.
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
// stable snake_case identifier (e.g. "stream_not_allowed",
// "max_tokens_on_reasoning_model", "no_output_budget"); Message is for people.
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
}

// Analysis is the result of analysing one request body.
type Analysis struct {
	Count    Count
	Model    models.Resolution
	Problems []Problem
}

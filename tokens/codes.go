package tokens

// Problem codes reported by Analyze. They are stable: scripts match on
// them; never rename one. The severity of each code is fixed.
const (
	// Errors: the API would reject the request.
	CodeInvalidJSON               = "invalid_json"                  // the body is not JSON
	CodeBodyNotObject             = "body_not_object"               // the body is JSON but not an object
	CodeBodyEndpointMismatch      = "body_endpoint_mismatch"        // e.g. a /v1/responses body ("input") sent to /v1/chat/completions
	CodeMissingModel              = "missing_model"                 // no "model", or not a non-empty string
	CodeStreamNotSupported        = "stream_not_supported"          // "stream": true (the Batch API refuses it)
	CodeMessagesMissing           = "messages_missing"              // chat body without a "messages" array
	CodeMessagesEmpty             = "messages_empty"                // "messages": []
	CodeMessageInvalid            = "message_invalid"               // a message/item/part not an object, bad or missing role, content of the wrong type, tool message without tool_call_id
	CodeInputMissing              = "input_missing"                 // responses/embeddings/moderations body without "input"
	CodeInputInvalid              = "input_invalid"                 // "input"/"prompt" of the wrong type, empty string or empty array
	CodePromptMissing             = "prompt_missing"                // completions body without "prompt"
	CodeMaxTokensOnReasoningModel = "max_tokens_on_reasoning_model" // max_tokens on an o-series/gpt-5 model (case B29 r1)
	CodeConflictingOutputBudget   = "conflicting_output_budget"     // both max_tokens and max_completion_tokens (case B29 r3)
	CodeInvalidOutputBudget       = "invalid_output_budget"         // an output budget that is not an integer ≥ 1
	CodeContextLengthExceeded     = "context_length_exceeded"       // prompt + output budget over the context window (the API's code)
	CodeOutputBudgetOverModelMax  = "output_budget_over_model_max"  // output budget over the model's max output tokens
	CodeInvalidN                  = "invalid_n"                     // n (or best_of) not an integer in 1..128
	CodeEmbeddingInputTooLong     = "embedding_input_too_long"      // one embeddings input over 8192 tokens
	CodeTooManyEmbeddingInputs    = "too_many_embedding_inputs"     // more than 2048 embeddings inputs
	CodeEmbeddingRequestTooLarge  = "embedding_request_too_large"   // embeddings inputs over 300,000 tokens in total
	CodeModelEndpointMismatch     = "model_endpoint_mismatch"       // an embedding model on a generation endpoint, or the reverse
	CodeCountFailed               = "count_failed"                  // the tokenizer failed on this request (an internal error; the rest of the file goes on)
	CodeModelWhitespace           = "model_whitespace"              // "model" with leading or trailing whitespace: the API answers model_not_found

	// Warnings: accepted, but probably not what you want.
	CodeUnknownModel         = "unknown_model"          // not in the registry: encoding assumed (o200k_base) unless --encoding, count Estimated
	CodeNoOutputBudget       = "no_output_budget"       // no max_completion_tokens/max_tokens/max_output_tokens: the assumed budget is stated
	CodeSmallReasoningBudget = "small_reasoning_budget" // reasoning model with an output budget < 1000 (case B29 r5)
	CodeDuplicateMember      = "duplicate_member"       // a member name repeats in an object of the body (at any depth); the last value is likely used

	// Notes: information.
	CodeImageSizeAssumed = "image_size_assumed" // a remote image URL counted as 1024×1024 (size unknown offline)
	CodeEstimated        = "estimated"          // which parts of the count follow an estimate rather than the exact recipe
	CodeModelResolved    = "model_resolved"     // a provider prefix was stripped ("openai/gpt-4o" → gpt-4o)
)

// CodeSeverity maps every problem code to its (fixed) severity, for
// --help listings and tests.
var CodeSeverity = map[string]Severity{
	CodeInvalidJSON: Error, CodeBodyNotObject: Error, CodeBodyEndpointMismatch: Error, CodeMissingModel: Error,
	CodeStreamNotSupported: Error, CodeMessagesMissing: Error, CodeMessagesEmpty: Error, CodeMessageInvalid: Error,
	CodeInputMissing: Error, CodeInputInvalid: Error, CodePromptMissing: Error, CodeMaxTokensOnReasoningModel: Error,
	CodeConflictingOutputBudget: Error, CodeInvalidOutputBudget: Error, CodeContextLengthExceeded: Error,
	CodeOutputBudgetOverModelMax: Error, CodeInvalidN: Error, CodeEmbeddingInputTooLong: Error,
	CodeTooManyEmbeddingInputs: Error, CodeEmbeddingRequestTooLarge: Error, CodeModelEndpointMismatch: Error, CodeCountFailed: Error, CodeModelWhitespace: Error,
	CodeUnknownModel: Warning, CodeNoOutputBudget: Warning, CodeSmallReasoningBudget: Warning, CodeDuplicateMember: Warning,
	CodeImageSizeAssumed: Note, CodeEstimated: Note, CodeModelResolved: Note,
}

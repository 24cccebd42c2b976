package tokens

// TPMCharge is what the rate limiter is taken to reserve from the
// tokens-per-minute bucket when it admits a request: the prompt tokens plus
// the output budget (max_completion_tokens / max_tokens /
// max_output_tokens, or the assumed budget) for each of the n choices.
// oairl paces, refuses requests over the TPM limit and counts quota minutes
// with this one function.
//
// The evidence, and what it does not settle:
//   - OpenAI's 429 messages state the charge of the refused request as
//     "Requested R": for a request over the bucket R matched prompt +
//     max_tokens (case B19: "Limit 30000, Requested 30601"), and Groq,
//     which copies OpenAI's limiter, reported "Requested 32979" for an
//     18-token prompt with max_tokens 32768 (case B33a; the few hundred
//     tokens over are the server-side chat template).
//   - The OpenAI cookbook's api_request_parallel_processor.py charges
//     prompt tokens + max_tokens × n (num_tokens_consumed_from_request);
//     Azure documents the same estimate (prompt + max_tokens + best_of;
//     learn.microsoft.com …/openai/how-to/quota) and Cerebras its own
//     (input + max_completion_tokens).
//   - OpenAI's rate-limits guide words it differently: the charge is "the
//     maximum of max_tokens and an estimate based on the number of
//     characters" of the request. Under that rule the server charges less
//     than this function for long prompts with a small budget.
//
// Because the public sources disagree, oairl measures the server's own
// charge during run and proxy (internal/send: the x-ratelimit-remaining-
// tokens deltas between consecutive admissions), reports the ratio
// ("the server charged 0.98× oairl's estimate on 412 requests") and, once
// the ratio is steady, paces with it: a wrong model of the charge then
// costs a few requests, not the whole run.
func TPMCharge(promptTokens, outputBudget, n int64) int64 {
	if n < 1 {
		n = 1
	}
	return promptTokens + outputBudget*n
}

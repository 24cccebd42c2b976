// Package sim is a local OpenAI-compatible API server that enforces a usage
// tier's rate limits: the engine of `oairl sim` and the fake API behind every
// test of run, batch and diagnose. Tests start it in-process with
// simtest.New(tb, sim.Config{...}); the command serves the same handler.
//
// Facts about the wire come from shared/research/wire-formats.md (headers
// §1.1, reset format §1.2, error envelope §1.3, 429 catalogue §1.4, other
// errors §1.5, Batch §1.6, what counts §1.7) and the official OpenAPI spec
// (openai/openai-openapi commit f85dbe2, vendored in testdata/).
//
// # Configuration (Config)
//
//   - Tier: "free", "1".."5" (published per-model limits from the registry),
//     or "none" (no limits). "" means "1" unless an override is set, in which
//     case only the overrides apply.
//   - RPM, TPM, RPD, TPD: overrides applied to every model (requests or
//     tokens per minute / per day); they replace the tier's value.
//   - MaxConcurrent: in-flight requests allowed at once (0 = no limit); over
//     it a 429 "Too many concurrent requests for this model." (type requests).
//   - Registry (default models.Default()), Counter (default a tokens.Counter
//     on Registry with AssumeOutput).
//   - AssumeOutput: output budget (tokens) charged for a request that sets
//     no max_tokens / max_completion_tokens / max_output_tokens (default 0).
//   - OutputTokens: completion tokens a response produces per choice, capped
//     by the request's budget (default 16).
//   - TimeScale K and Clock: the whole clock (refill, resets, latency, batch
//     progress) runs K× faster; Clock defaults to clock.Scaled(TimeScale);
//     tests inject clock.NewFake. All times in headers and messages are in
//     sim time.
//   - RetryAfter: "seconds" (default; integer seconds, rounded up, ≥ 1),
//     "none" (no retry-after header), "ms" (retry-after plus retry-after-ms).
//   - QuotaExhausted: "" or a code (insufficient_quota,
//     credit_balance_exhausted, organization_spend_limit_exceeded,
//     project_spend_limit_exceeded, organization_usage_limit_exceeded,
//     billing_hard_limit_reached, billing_not_active): every request to
//     every endpoint (inference, Models, Files, Batches) gets 429 type
//     insufficient_quota with that code, no retry-after. How the real
//     Files and Batch endpoints answer an organization out of quota is not
//     captured; refusing them too is a choice, so that a batch client's
//     quota path (exit 5) can be exercised.
//   - FaultRate F in [0,1] and Seed: after admission, a fraction F of
//     requests fail with 500 server_error, 503 overloaded or a dropped
//     connection, chosen by a RNG seeded with Seed (deterministic). Seed
//     also fixes jitter and batch shuffles, not ids: ids are random per
//     start (crypto randomness) unless DeterministicIDs is set.
//   - InvalidKey: every request gets 401 invalid_api_key. A missing
//     Authorization header always gets 401.
//   - SlowDown: 429 slow_down (type rate_limit_error) when the requests in
//     the current SlowDownWindow (default 1m) exceed 1.5× the previous
//     window's count (with a floor of max(1, RPM/10) per window).
//   - Latency, LatencyPerToken, LatencyJitter: a response waits Latency +
//     LatencyPerToken × completion tokens, ± LatencyJitter (fraction, default
//     0.1), on the clock. Zero by default.
//   - BatchDuration (default 2m): created → completed; 10% validating, 80%
//     in_progress (requests complete linearly), 10% finalizing.
//     BatchCompletionWindow (default 24h): expiry after creation.
//     BatchCancelDelay (default BatchDuration/10): cancelling → cancelled.
//     BatchFailRate: fraction of lines that fail with a 500 in the error
//     file. EnqueuedLimit: enqueued-token limit per model (default the
//     registry tier's BatchQueueTokens).
//   - Shared-limit groups (models.Registry.Group): the models of a group
//     draw on one limiter named after the group, whose 429s name it.
//   - Project and ProjectTPM: a project token bucket per model beside the
//     organization's, reported in x-ratelimit-{limit,remaining,reset}-
//     project-tokens; a 429 on it says "in project PROJ organization ORG".
//   - FlexUnavailable F: a fraction F of service_tier "flex" requests get
//     429 resource_unavailable before admission (nothing charged).
//   - An answer's service_tier is the tier actually used (servedTier):
//     "flex" for a flex request served, "priority" for priority or fast,
//     else "default".
//   - Like "azure": POST /openai/deployments/{deployment}/{endpoint}
//     ?api-version=V (no api-version: 404), the api-key header, the request
//     window is RPM/6 per 10 s, resets are bare seconds, 429s carry
//     retry-after-ms and {"error":{"code":"429","message":…}}. Like "groq":
//     the request headers report a daily window (14,400 RPD unless RPD is
//     set), a request over the TPM limit gets 413, messages follow Groq's
//     grammar ("Requested ~N"). internal/provider documents both.
//   - The Admin API GET /v1/organization/projects/{project_id}/rate_limits
//     lists the configured limits per model (admin keys "sk-admin-…" only;
//     other projects 404), for 'oairl limits pull'.
//   - Organization (default "org-simulated0000"), sent as
//     openai-organization and named in messages.
//   - Log: one JSON line per request (time, method, path, model, status,
//     tokens charged, in_flight, limit that rejected it, request_id).
//   - RecordRequests / OnRequest: keep or observe raw request bodies
//     (simtest forces RecordRequests; read them with Server.Requests).
//   - Intercept: answer chosen requests with a canned status/header/body
//     (retry-after variants, CDN 429s) while the sim serves the rest.
//
// # Test API
//
//	srv := simtest.New(t, sim.Config{Tier: "1", Clock: clock.NewFake(t0)})
//	srv.URL  // "http://127.0.0.1:PORT/v1" — give it to api.New as BaseURL
//	srv.Sim  // *sim.Server: Stats(), Requests(), Batches(), FileContent(id),
//	         // ExpireBatch(id), Limits(model), Clock(), SetQuotaExhausted(code),
//	         // SetInvalidKey(on), SetFaultRate(f)
//
// simtest.New fails the test through tb.Fatalf on a bad Config and closes
// the server in tb.Cleanup. With a Fake clock, a handler waiting out
// Latency blocks until the test calls Advance (Fake.Sleepers tells how many
// wait); batches advance whenever the API or Batches() is called.
//
// The command's flags are bound by BindFlags (and ParseArgs for the
// testscript `sim` command); Flags.Config converts them.
//
// # Behaviour
//
// Limits are per model (registry id), shared by every API key. RPM and TPM
// are continuously refilling buckets of capacity = the per-minute limit
// (golang.org/x/time/rate semantics, on the injected clock); RPD and TPD the
// same over 24h. A request's TPM charge is prompt tokens (tokens.Counter;
// a len/4 estimate while the counter reports 0) + output budget × n, taken
// at admission. Prompts above a model's long-context threshold (registry
// LongContext, e.g. gpt-4.1 > 128K input tokens) use a second limiter with
// the long-context tier limits, named "MODEL-long-context" in messages.
// Checks, in order: 401 auth, 400 bad JSON / no model, 404
// model_not_found, 429 insufficient_quota, 400 missing or invalid fields
// (spec bounds: max_tokens and max_completion_tokens ≥ 1 (legacy
// completions ≥ 0), n 1..128, temperature 0..2, stream boolean,
// dimensions ≥ 1, max_output_tokens ≥ 16), 404 model not served on the
// endpoint, 400 context_length_exceeded, 400 max_tokens over the model's
// maximum, 429 request too large (charge > TPM capacity), then RPD, TPD,
// RPM, TPM, slow_down, concurrency.
//
// What counts (wire-formats.md §1.7: "Unsuccessful requests contribute to
// your per-minute limit"): an admitted request takes one request and its
// charge in tokens; every 429 from the limiter (RPM/TPM/RPD/TPD, request
// too large, slow_down, concurrency) and every 400 once the model is known
// take one request from RPM and RPD, no tokens. When the request bucket is
// empty, a 429 that arrives before the retry time the previous 429
// advertised is taken as debt (the bucket goes negative, floor −limit), so
// x-ratelimit-reset-requests grows and retrying early never gets through;
// the advertised wait (retry-after, "Please try again in") includes the
// debt, so a client that honours it is admitted. The first 429 at 0
// remaining takes no debt, matching the capture "Limit 3, Used 3,
// Requested 1. Please try again in 20s" (§1.4). A 401, a 404 for an unknown
// model, unparseable JSON and insufficient_quota take nothing: they are
// refused before any model's limiter (a choice; not captured).
// Every response of an inference endpoint (once its model is known, errors
// and 429s included) carries x-ratelimit-limit-,
// -remaining- and -reset-{requests,tokens} (the request headers report the
// daily window when it has less room left), plus x-request-id,
// openai-processing-ms (sim milliseconds), openai-organization and
// openai-version on all responses. Header names are sent in lowercase, as
// api.openai.com does over HTTP/2.
//
// Endpoints: POST /v1/chat/completions (stream:true as SSE ending in
// "data: [DONE]"), /v1/completions (only the spec's
// CreateCompletionRequest models gpt-3.5-turbo-instruct, davinci-002,
// babbage-002, which the simulator adds to the registry's; a chat model
// there gets 404 "This is a chat model and not supported in the
// v1/completions endpoint. Did you mean to use v1/chat/completions?"),
// /v1/embeddings, /v1/responses; GET
// /v1/models[/{id}]; /v1/files (POST multipart, GET list), GET/DELETE
// /v1/files/{id}, GET /v1/files/{id}/content; POST/GET /v1/batches, GET
// /v1/batches/{id}, POST /v1/batches/{id}/cancel.
//
// Batches are evaluated lazily on the clock (no goroutines): validating →
// in_progress → finalizing → completed, or failed (input file errors with
// line numbers, or token_limit_exceeded when the model's enqueued tokens of
// unfinished batches (in_progress, finalizing, and validating ones created
// earlier) plus this one exceed EnqueuedLimit), cancelling → cancelled,
// expired (after BatchCompletionWindow or ExpireBatch). Output and error
// files are in the Batch output format, lines shuffled. GET /v1/batches
// with an unknown after= cursor returns an empty page (has_more false; the
// real answer is not documented, and restarting from the first page would
// loop a paginating client).
//
// The exit summary (Stats.WriteSummary) reports goodput per minute only
// for runs of at least one minute of sim time, and prints limits of 0 as
// "unlimited".
package sim

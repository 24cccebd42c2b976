// Package batch drives OpenAI Batch API jobs end to end: it validates a
// request file (through internal/input, so it agrees with `oairl count`),
// splits it into shards that each fit the Batch API's limits, uploads each
// shard (Files API, purpose "batch") and creates its batch, keeps the queue
// of a model under its enqueued-token limit, polls until the batches are
// done, and merges their output and error files back into one results file
// in input order.
//
// # Limits
//
// A Batch API input file holds at most 50,000 requests and 200 MB, targets
// one endpoint, and (for the enqueued-token queue) one model; the tokens of
// all of an organization's in-progress batches for one model may not exceed
// that model's enqueued-token limit ("batch queue limit" on the model
// pages), else the batch fails with token_limit_exceeded. Sources:
// developers.openai.com/api/docs/guides/batch, the OpenAPI spec
// (CreateBatchRequest.input_file_id; ../shared/spec/NOTES.md §2) and
// openai/openai-python#2084.
//
// # Files
//
// A job is one local JSON state file (see Job) plus a directory of shard
// files beside it (STATE.shards/: shard-NNN.jsonl, and "order", which
// records for each input request, in input order, the shard it went to).
// The state file is rewritten atomically (temp file + rename) after every
// step, so a crash at any point leaves a state that a rerun resumes from.
// Shards uploaded or created before the crash are found again by their
// metadata (oairl_job, oairl_shard) and never created twice. Runs with
// different state directories share no lock: when two create a shard's
// batch at the same moment, each re-lists the shard's batches right after
// its create and the newer batch is cancelled while still validating by the
// run that created it, which adopts the older (see yieldToDuplicate).
//
// # Results
//
// Output lines are in the Batch output format:
//
//	{"id": "batch_req_...", "custom_id": "...",
//	 "response": {"status_code": 200, "request_id": "...", "body": {...}} | null,
//	 "error": {"code": "...", "message": "..."} | null}
//
// A line succeeded only if error is null and 200 <= response.status_code
// < 300 (openai/openai-openapi#302). Lines are joined to inputs strictly on
// custom_id, never by position (output files are unordered).
package batch

package batch

import "time"

// Batch API limits on one input file. Source:
// developers.openai.com/api/docs/guides/batch ("up to 50,000 requests, and
// input files can be up to 200 MB in size") and the OpenAPI spec
// CreateBatchRequest.input_file_id (../shared/spec/NOTES.md §2). The byte
// limit is 200 MiB: the API's own message reads "The batch input file is
// larger than the 209715200 maximum" (../shared/research/wire-formats.md §1.6).
const (
	// MaxRequestsPerBatch is the most requests (lines) one batch may hold.
	MaxRequestsPerBatch = 50_000
	// MaxBytesPerBatch is the largest input file a batch accepts, in bytes.
	MaxBytesPerBatch int64 = 200 * 1024 * 1024
	// MaxEmbeddingInputsPerBatch is the most embedding inputs (strings or
	// token arrays, summed over the lines) one /v1/embeddings batch may
	// hold: "/v1/embeddings batches are also restricted to a maximum of
	// 50,000 embedding inputs across all requests in the batch"
	// (developers.openai.com/api/docs/guides/batch; case B05/B36,
	// ../shared/research/wire-formats.md §1.6).
	MaxEmbeddingInputsPerBatch = 50_000
	// CompletionWindow is the only completion window the API accepts.
	CompletionWindow = "24h"
)

// Metadata keys oairl sets on every batch it creates (OpenAPI
// CreateBatchRequest.metadata: at most 16 pairs, keys ≤ 64 and values ≤ 512
// characters). They let a rerun find the batches of a job after a crash.
const (
	MetaJob         = "oairl_job"
	MetaShard       = "oairl_shard"
	MetaInputSHA256 = "oairl_input_sha256"
	MetaAttempt     = "oairl_attempt"
)

// Batch statuses, verbatim from the OpenAPI Batch.status enum, plus the
// local ones oairl uses before a shard has a batch.
const (
	StatusValidating = "validating"
	StatusInProgress = "in_progress"
	StatusFinalizing = "finalizing"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusExpired    = "expired"
	StatusCancelling = "cancelling"
	StatusCancelled  = "cancelled"

	// StatusPending: no batch exists yet (or the last one failed with
	// token_limit_exceeded and will be resubmitted).
	StatusPending = "pending"
	// StatusUploading: an upload was started; the file may exist remotely.
	StatusUploading = "uploading"
	// StatusUploaded: the input file exists (FileID set), no batch yet.
	StatusUploaded = "uploaded"
	// StatusCreating: a create was started; the batch may exist remotely.
	StatusCreating = "creating"
)

// Error codes oairl reads in batch errors and result lines.
const (
	CodeTokenLimitExceeded = "token_limit_exceeded"
	CodeBatchExpired       = "batch_expired"
	CodeBatchCancelled     = "batch_cancelled"
	CodeBatchFailed        = "batch_failed"
	CodeNotSubmitted       = "not_submitted"
	CodeMissingResult      = "missing_result"
)

// Terminal reports whether a batch status is final (failed, completed,
// expired, cancelled).
func Terminal(status string) bool {
	switch status {
	case StatusCompleted, StatusFailed, StatusExpired, StatusCancelled:
		return true
	}
	return false
}

// Queued reports whether a batch in this status holds enqueued tokens
// (validating, in_progress, finalizing, cancelling; and a create whose
// outcome is unknown).
func Queued(status string) bool {
	switch status {
	case StatusValidating, StatusInProgress, StatusFinalizing, StatusCancelling, StatusCreating:
		return true
	}
	return false
}

// Retry backoff for a shard that failed with token_limit_exceeded: the
// queue drains as other batches finish (minutes to hours), so the wait
// starts at a minute and doubles up to half an hour, never a hot loop.
const (
	QueueRetryMin = time.Minute
	QueueRetryMax = 30 * time.Minute
)

func queueBackoff(attempt int) time.Duration {
	d := QueueRetryMin
	for i := 1; i < attempt && d < QueueRetryMax; i++ {
		d *= 2
	}
	if d > QueueRetryMax {
		d = QueueRetryMax
	}
	return d
}

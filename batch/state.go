package batch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/oairl/oairl/internal/atomicfile"
)

// StateVersion is the version of the job state file format.
const StateVersion = 1

// Job is one `oairl batch submit` of one input, as kept in its local state
// file (JSON). Its ID is derived from the SHA-256 of the normalised input
// (the bytes uploaded), so submitting the same file again finds the same job.
type Job struct {
	Version     int               `json:"version"`
	ID          string            `json:"id"`           // "job_" + 16 hex digits of InputSHA256, + "-N" for the Nth job of the same input (--new, another server)
	InputSHA256 string            `json:"input_sha256"` // hex SHA-256 of the normalised input (LF, no BOM, no blank lines)
	Inputs      []string          `json:"inputs"`       // the input paths as given
	Endpoint    string            `json:"endpoint"`     // e.g. "/v1/chat/completions"
	Requests    int               `json:"requests"`     // requests submitted (valid lines)
	Rejected    int               `json:"rejected"`     // invalid lines skipped (--skip-invalid)
	Metadata    map[string]string `json:"metadata,omitempty"`
	// QueueLimits maps model → enqueued-token limit (tokens) used when
	// splitting and queueing; 0 or absent means unknown (no local limit).
	QueueLimits map[string]int64 `json:"queue_limits,omitempty"`
	// ServerLimits maps model → the enqueued-token limit the server
	// named in a token_limit_exceeded error (tokens). Unlike QueueLimits it
	// is never overwritten by flags on a rerun: a shard over it is never
	// created.
	ServerLimits map[string]int64 `json:"server_limits,omitempty"`
	// BaseURL is the API base URL the job was submitted to; a job is only
	// resumed, waited for or merged against the same server.
	BaseURL string `json:"base_url,omitempty"`
	// Plan counts re-splits of the job (0 = the first split). It is part
	// of the upload names and shard metadata, so files and batches of an
	// earlier split are never mistaken for the current one's.
	Plan      int       `json:"plan,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Shards    []*Shard  `json:"shards"`

	path string // the state file; "" for a job not backed by a file
}

// Shard is one batch-sized part of a job.
type Shard struct {
	Index    int    `json:"index"`
	Endpoint string `json:"endpoint"`
	Model    string `json:"model"`
	File     string `json:"file"` // local shard file name, relative to the job's shard directory
	Requests int    `json:"requests"`
	Bytes    int64  `json:"bytes"`
	// Tokens is the shard's enqueued-token estimate: the sum of prompt
	// tokens + output budget × n of its requests.
	Tokens int64 `json:"tokens"`
	// Inputs is the shard's embedding inputs (/v1/embeddings shards only;
	// at most MaxEmbeddingInputsPerBatch).
	Inputs int64 `json:"inputs,omitempty"`

	Status  string `json:"status"` // StatusPending, StatusUploaded, ... or the batch's status
	FileID  string `json:"file_id,omitempty"`
	BatchID string `json:"batch_id,omitempty"`
	// Attempt counts batches created for this shard (resubmits after
	// token_limit_exceeded); it is sent as oairl_attempt metadata.
	Attempt int `json:"attempt,omitempty"`
	// RetryAt is when a shard that hit the enqueued-token limit may be
	// submitted again.
	RetryAt       time.Time     `json:"retry_at,omitzero"`
	FailedBatches []string      `json:"failed_batches,omitempty"` // earlier batch ids (token_limit_exceeded)
	RequestCounts RequestCounts `json:"request_counts"`
	OutputFileID  string        `json:"output_file_id,omitempty"`
	ErrorFileID   string        `json:"error_file_id,omitempty"`
	Errors        []BatchError  `json:"errors,omitempty"`
	CreatedAt     time.Time     `json:"created_at,omitzero"`
	ExpiresAt     time.Time     `json:"expires_at,omitzero"`
	// StatusSince is when the batch entered its current status, from the
	// API's *_at fields (zero when unknown).
	StatusSince time.Time `json:"status_since,omitzero"`
}

// RequestCounts is the Batch object's request_counts.
type RequestCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

// BatchError is one entry of a Batch object's errors.data.
type BatchError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Line    *int   `json:"line,omitempty"`
}

// Path returns the state file the job is kept in ("" when none).
func (j *Job) Path() string { return j.path }

// ShardDir returns the directory holding the job's shard files: the state
// file's path without ".json", plus ".shards".
func (j *Job) ShardDir() string { return ShardDirFor(j.path) }

// ShardDirFor returns the shard directory that belongs to a state file.
func ShardDirFor(statePath string) string {
	return strings.TrimSuffix(statePath, ".json") + ".shards"
}

// ShardPath returns the local path of shard s's file.
func (j *Job) ShardPath(s *Shard) string { return filepath.Join(j.ShardDir(), s.File) }

// OrderPath returns the path of the job's order file.
func (j *Job) OrderPath() string { return filepath.Join(j.ShardDir(), orderFile) }

// Done reports whether every shard is terminal.
func (j *Job) Done() bool {
	for _, s := range j.Shards {
		if !Terminal(s.Status) {
			return false
		}
	}
	return true
}

// Counts sums the request counts of all shards; Total counts every request
// of the job (also those of shards not yet submitted). Every request of a
// terminal shard that did not complete counts as failed (a cancelled,
// expired or failed batch, or a shard never submitted), as 'batch results'
// counts it.
func (j *Job) Counts() RequestCounts {
	var c RequestCounts
	for _, s := range j.Shards {
		c.Completed += s.RequestCounts.Completed
		c.Failed += s.FailedRequests()
		c.Total += s.Requests
	}
	return c
}

// FailedRequests is the shard's failed requests: the batch's failed count,
// and once the shard is terminal every request that did not complete
// (expired, cancelled, never submitted), as 'batch results' counts them.
func (s *Shard) FailedRequests() int {
	failed := s.RequestCounts.Failed
	if Terminal(s.Status) {
		if rest := s.Requests - s.RequestCounts.Completed; rest > failed {
			failed = rest
		}
	}
	return failed
}

// Cancelled reports whether the job was cancelled: some shard is
// cancelling or cancelled.
func (j *Job) Cancelled() bool {
	for _, s := range j.Shards {
		if s.Status == StatusCancelled || s.Status == StatusCancelling {
			return true
		}
	}
	return false
}

// Started reports whether any shard has (or may have) a batch that holds
// or held work: everything but pending, uploading and uploaded shards
// (batches refused with token_limit_exceeded do not count).
func (j *Job) Started() bool {
	for _, s := range j.Shards {
		if s.BatchID != "" {
			return true
		}
		switch s.Status {
		case StatusPending, StatusUploading, StatusUploaded:
		default:
			return true
		}
	}
	return false
}

// QueueLimit is the enqueued-token limit (tokens) shards of model must fit:
// the smaller of the planned limit (QueueLimits) and the one the server
// named (ServerLimits); 0 when neither is known.
func (j *Job) QueueLimit(model string) int64 {
	l := j.QueueLimits[model]
	if s := j.ServerLimits[model]; s > 0 && (l == 0 || s < l) {
		l = s
	}
	return l
}

// ShardByBatch returns the shard whose current or earlier batch is id.
func (j *Job) ShardByBatch(id string) *Shard {
	for _, s := range j.Shards {
		if s.BatchID == id {
			return s
		}
		for _, f := range s.FailedBatches {
			if f == id {
				return s
			}
		}
	}
	return nil
}

// Save writes the job to its state file atomically (temp file + rename), so
// a crash never leaves a torn state file. A job without a path is not saved.
func (j *Job) Save(now time.Time) error {
	if j.path == "" {
		return nil
	}
	j.Version = StateVersion
	j.UpdatedAt = now.UTC()
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	return WriteFileAtomic(j.path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// LoadJob reads a job state file. A missing file returns an error for which
// errors.Is(err, os.ErrNotExist) holds.
func LoadJob(path string) (*Job, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("job state %s: %w", path, err)
	}
	if j.Version > StateVersion {
		return nil, fmt.Errorf("job state %s: version %d is newer than this oairl understands (%d)", path, j.Version, StateVersion)
	}
	if j.QueueLimits == nil {
		j.QueueLimits = map[string]int64{}
	}
	j.path = path
	return &j, nil
}

// JobPath returns the state file of job id under the state directory dir.
func JobPath(dir, id string) string { return filepath.Join(dir, "jobs", id+".json") }

// ListJobs returns the jobs kept under the state directory dir, newest
// first. Unreadable state files are skipped.
func ListJobs(dir string) ([]*Job, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "jobs", "*.json"))
	if err != nil {
		return nil, err
	}
	var jobs []*Job
	for _, p := range paths {
		j, err := LoadJob(p)
		if err != nil {
			continue
		}
		jobs = append(jobs, j)
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].CreatedAt.After(jobs[b].CreatedAt) })
	return jobs, nil
}

// ErrNotFound is returned by FindJob when no local job matches.
var ErrNotFound = errors.New("no such job")

// FindJob resolves ref, a job id ("job_...") or a batch id ("batch_..."),
// to a local job: statePath when given (--state FILE), else a job under the
// state directory dir. For a batch id, the job is the one holding a shard
// with that batch. It returns ErrNotFound (wrapped) when none matches.
func FindJob(dir, statePath, ref string) (*Job, error) {
	if statePath != "" {
		j, err := LoadJob(statePath)
		if err != nil {
			return nil, err
		}
		if ref == "" || ref == j.ID || j.ShardByBatch(ref) != nil {
			return j, nil
		}
		return nil, fmt.Errorf("%s holds job %s, not %s: %w", statePath, j.ID, ref, ErrNotFound)
	}
	if ref == "" {
		jobs, err := ListJobs(dir)
		if err != nil {
			return nil, err
		}
		if len(jobs) == 0 {
			return nil, fmt.Errorf("no jobs in %s: %w", dir, ErrNotFound)
		}
		return jobs[0], nil
	}
	if strings.HasPrefix(ref, "job_") {
		j, err := LoadJob(JobPath(dir, ref))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("job %s is not in %s: %w", ref, dir, ErrNotFound)
		}
		return j, err
	}
	jobs, err := ListJobs(dir)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if j.ShardByBatch(ref) != nil {
			return j, nil
		}
	}
	return nil, fmt.Errorf("%s is in no local job under %s: %w", ref, dir, ErrNotFound)
}

// WriteFileAtomic writes path atomically (internal/atomicfile): a reader
// never sees a partial file, a new file gets 0666 minus the umask and an
// existing one keeps its mode.
func WriteFileAtomic(path string, write func(io.Writer) error) error {
	return atomicfile.WriteFile(path, write)
}

// AtomicFile is a file written under a temporary name and moved into place
// by Commit; Abort (or a crash) leaves no file at the final path.
type AtomicFile = atomicfile.File

// CreateAtomic starts an AtomicFile for path.
func CreateAtomic(path string) (*AtomicFile, error) { return atomicfile.Create(path) }

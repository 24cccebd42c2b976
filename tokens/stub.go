package tokens

// STUB: replaced by the real implementation (tokens helper).

import "github.com/oairl/oairl/internal/models"

// Counter counts tokens. Safe for concurrent use; encodings load lazily,
// once, when a request first needs them.
type Counter struct{ opts Options }

// NewCounter returns a Counter.
func NewCounter(opts Options) *Counter { return &Counter{opts: opts} }

// Analyze parses one request body sent to endpoint ("/v1/chat/completions",
// "/v1/responses", "/v1/embeddings", "/v1/completions", "/v1/moderations")
// and returns its Count and the problems the API would reject it for. It
// never panics, whatever the body.
func (c *Counter) Analyze(endpoint string, body []byte) Analysis { return Analysis{} }

// CountText returns the number of tokens of text in encoding, special-token
// literals counted as ordinary text.
func (c *Counter) CountText(encoding, text string) (int, error) { return len(text) / 4, nil }

// Cost returns the USD cost of prompt and output tokens at the model's
// standard and Batch API prices (USD per 1M tokens); zero when unknown.
func Cost(m *models.Model, prompt, output int64) (standard, batch float64) { return 0, 0 }

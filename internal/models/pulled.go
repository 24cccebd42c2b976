package models

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// PulledTier is the tier name under which a project's real limits (from
// `oairl limits pull`) are kept beside the published tiers: commands that
// find a limits file use it instead of the public tier table.
const PulledTier = "project"

// Pulled is a project's real rate limits as read from the OpenAI Admin API
// (GET /v1/organization/projects/{project_id}/rate_limits, spec
// ProjectRateLimitListResponse) and written by `oairl limits pull`. It
// never holds a key.
type Pulled struct {
	// Source names the endpoint the limits were read from.
	Source string `json:"source"`
	// BaseURL is the API the limits were read from; ProjectID the project.
	BaseURL   string `json:"base_url"`
	ProjectID string `json:"project_id"`
	// PulledAt is when they were read (RFC 3339).
	PulledAt time.Time     `json:"pulled_at"`
	Models   []PulledModel `json:"models"`
}

// PulledModel is one project.rate_limit object, fields as the Admin API
// names them. Zero means "not given".
type PulledModel struct {
	Model string `json:"model"`
	RPM   int64  `json:"max_requests_per_1_minute"`
	TPM   int64  `json:"max_tokens_per_1_minute"`
	RPD   int64  `json:"max_requests_per_1_day,omitempty"`
	// BatchDayInputTokens is batch_1_day_max_input_tokens: the Batch API
	// input tokens that may be enqueued (the limits page's "batch queue
	// limit"), used as Limits.BatchQueueTokens.
	BatchDayInputTokens int64 `json:"batch_1_day_max_input_tokens,omitempty"`
}

// ReadPulled decodes a limits file.
func ReadPulled(r io.Reader) (*Pulled, error) {
	var p Pulled
	dec := json.NewDecoder(r)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("limits file: %w", err)
	}
	for _, m := range p.Models {
		if m.Model == "" {
			return nil, fmt.Errorf("limits file: an entry has no model")
		}
	}
	return &p, nil
}

// WriteJSON encodes p, indented.
func (p *Pulled) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(p)
}

// ApplyPulled records p's limits as tier PulledTier of the models they name
// (an exact id, else a snapshot or a name the registry resolves; the exact
// id wins). It is part of building the registry: call it before the
// registry is shared. It returns the models of p the registry does not
// know (their limits cannot be used: no encoding or price is known).
func (r *Registry) ApplyPulled(p *Pulled) (unknown []string) {
	exact := map[*Model]bool{}
	for _, pm := range p.Models {
		res := r.Lookup(pm.Model)
		if res.Model == nil {
			unknown = append(unknown, pm.Model)
			continue
		}
		isExact := res.Model.ID == pm.Model
		if exact[res.Model] && !isExact {
			continue
		}
		exact[res.Model] = exact[res.Model] || isExact
		if res.Model.Tiers == nil {
			res.Model.Tiers = map[string]Limits{}
		}
		res.Model.Tiers[PulledTier] = Limits{RPM: pm.RPM, TPM: pm.TPM, RPD: pm.RPD, BatchQueueTokens: pm.BatchDayInputTokens}
	}
	return unknown
}

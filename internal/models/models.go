// Package models is oairl's model registry: for each OpenAI model, the
// tokenizer encoding, context window, maximum output tokens, prices and the
// published per-usage-tier rate limits.
//
// The data is a JSON file embedded in the binary (models.json beside this
// file), generated from shared/research/models.json on 2026-11-30. Its
// sources, named on every entry, are:
//   - limits, context window and max output: OpenAI's model pages
//     (developers.openai.com/api/docs/models/MODEL) as scraped into npm
//     gpt-tokenizer@4.0.0, observed 2026-08-15;
//   - prices (USD per 1M tokens): npm @pydantic/genai-prices@0.1.8
//     (2026-09-23), upstream developers.openai.com/api/docs/pricing;
//     Batch prices are 50% of standard (developers.openai.com/api/docs/guides/batch);
//   - encodings: openai/tiktoken tiktoken/model.py (commit 4e71bbe).
//
// Published tier limits are defaults: an organization's real limits are in
// its x-ratelimit-limit-* headers and may differ.
//
// A file given with --models has the same shape ({"models": [...]}, and
// optionally "encoding_prefixes" and "shared_limit_groups"); its entries
// replace built-in entries with the same id and add new ones.
//
// Shared-limit groups: some model names are limited as one pool (the
// organization's limits page marks them "shared limit"; a 429 for one
// names the pool, e.g. "gpt-4o-mini-realtime" for a request to
// gpt-realtime-mini). LimitKey maps a model name to the key of its pool
// (the group id, else the registry id, else the name as given); pacing,
// the simulator and count's quota minutes keep one pair of buckets per
// key. Every group names its evidence and date.
package models

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

//go:embed models.json
var builtin []byte

// DefaultEncoding is the encoding assumed for models the registry does not
// know: OpenAI's current models all use o200k_base.
const DefaultEncoding = "o200k_base"

// Limits are one usage tier's published limits for one model.
// Zero means "not published" (no limit known), never "zero allowed".
type Limits struct {
	RPM int64 `json:"rpm,omitempty"` // requests per minute
	TPM int64 `json:"tpm,omitempty"` // tokens per minute
	RPD int64 `json:"rpd,omitempty"` // requests per day
	TPD int64 `json:"tpd,omitempty"` // tokens per day
	// BatchQueueTokens is the Batch API enqueued-token limit: the most
	// prompt+output-budget tokens that may sit in in-progress batches for
	// this model at once.
	BatchQueueTokens int64 `json:"batch_queue_tokens,omitempty"`
}

// IsZero reports whether no limit is known.
func (l Limits) IsZero() bool { return l == Limits{} }

// Prices are USD per 1M tokens. Zero means unknown.
type Prices struct {
	Input       float64 `json:"input,omitempty"`
	CachedInput float64 `json:"cached_input,omitempty"`
	Output      float64 `json:"output,omitempty"`
	BatchInput  float64 `json:"batch_input,omitempty"`
	BatchOutput float64 `json:"batch_output,omitempty"`
}

// LongContext is a second rate-limit bucket some models apply to prompts
// above a threshold (for example "> 128k input tokens" for gpt-4.1).
type LongContext struct {
	Name        string            `json:"name"`
	AppliesWhen string            `json:"applies_when"`
	Tiers       map[string]Limits `json:"tiers"`
}

// Source names where an entry's facts come from.
type Source struct {
	Limits        string `json:"limits,omitempty"`
	Prices        string `json:"prices,omitempty"`
	Encoding      string `json:"encoding,omitempty"`
	BatchDiscount string `json:"batch_discount,omitempty"`
	Date          string `json:"date,omitempty"`
}

// Model is one registry entry.
type Model struct {
	ID       string `json:"id"`
	Snapshot string `json:"snapshot,omitempty"`
	// Encoding is the tiktoken encoding name (o200k_base, cl100k_base, ...).
	Encoding string `json:"encoding"`
	// EncodingAssumed is true where tiktoken does not map the model and
	// o200k_base is assumed.
	EncodingAssumed bool  `json:"encoding_assumed,omitempty"`
	ContextWindow   int64 `json:"context_window,omitempty"`   // tokens, prompt + output
	MaxInputTokens  int64 `json:"max_input_tokens,omitempty"` // tokens; 0 = context window
	MaxOutputTokens int64 `json:"max_output_tokens,omitempty"`
	// Reasoning models (o-series, gpt-5) reject max_tokens and want
	// max_completion_tokens.
	Reasoning bool   `json:"reasoning,omitempty"`
	Kind      string `json:"kind,omitempty"` // "" (chat/responses) or "embedding"
	Price     Prices `json:"price_per_1m"`
	// Tiers maps "free", "1" … "5" to that usage tier's published limits.
	Tiers       map[string]Limits `json:"tiers,omitempty"`
	LongContext *LongContext      `json:"long_context,omitempty"`
	Deprecated  bool              `json:"deprecated,omitempty"`
	Source      Source            `json:"source"`
	Notes       []string          `json:"notes,omitempty"`
}

// LongContextThreshold returns the prompt size (tokens) above which the
// model's long-context bucket applies ("> 128k input tokens" → 128,000),
// or 0 when the model has none.
func (m Model) LongContextThreshold() int64 {
	if m.LongContext == nil {
		return 0
	}
	mm := thresholdRe.FindStringSubmatch(m.LongContext.AppliesWhen)
	if mm == nil {
		return 0
	}
	n, err := strconv.ParseInt(mm[1], 10, 64)
	if err != nil {
		return 0
	}
	if mm[2] != "" {
		n *= 1000
	}
	return n
}

var thresholdRe = regexp.MustCompile(`>\s*([0-9]+)\s*([kK]?)`)

// LimitsFor returns the limits of tier that apply to a request with
// promptTokens input tokens: the long-context bucket when the model has one
// and the prompt is above its threshold (OpenAI model pages list e.g.
// gpt-4.1 "Long Context" limits for > 128k input tokens), else the tier's
// standard limits. longContext reports which was chosen.
func (m Model) LimitsFor(tier string, promptTokens int64) (l Limits, longContext, ok bool) {
	if th := m.LongContextThreshold(); th > 0 && promptTokens > th {
		if lc, found := m.LongContext.Tiers[normTier(tier)]; found && !lc.IsZero() {
			return lc, true, true
		}
	}
	l, ok = m.TierLimits(tier)
	return l, false, ok
}

// TierLimits returns the published limits of tier ("free", "1".."5"; a
// leading "tier" is accepted) and whether any are known.
func (m Model) TierLimits(tier string) (Limits, bool) {
	l, ok := m.Tiers[normTier(tier)]
	return l, ok && !l.IsZero()
}

func normTier(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.TrimPrefix(t, "tier")
}

// Prefix maps model names starting with Prefix to an encoding.
type Prefix struct {
	Prefix   string `json:"prefix"`
	Encoding string `json:"encoding"`
}

// SharedLimitGroup is a set of models limited as one pool: one RPM and one
// TPM bucket for all members together.
type SharedLimitGroup struct {
	// ID names the pool (what the server's 429 messages call it).
	ID string `json:"id"`
	// Members are model ids or names (dated snapshots of a member resolve
	// to it through Lookup).
	Members []string `json:"members"`
	// Source is the evidence (a document or an observed answer); Date is
	// when it was published or observed (YYYY-MM or YYYY-MM-DD).
	Source string `json:"source"`
	Date   string `json:"date"`
	// Tiers, when set, are the pool's own published limits; otherwise the
	// first member the registry knows lends its tier limits.
	Tiers map[string]Limits `json:"tiers,omitempty"`
}

type file struct {
	Models           []Model            `json:"models"`
	EncodingPrefixes []Prefix           `json:"encoding_prefixes"`
	ProviderPrefixes []string           `json:"provider_prefixes"`
	Groups           []SharedLimitGroup `json:"shared_limit_groups"`
}

// Registry resolves model names. It is read-only after construction and safe
// for concurrent use.
type Registry struct {
	byID      map[string]*Model
	ids       []string // sorted longest first, for prefix matching
	prefixes  []Prefix // longest first
	providers []string
	groups    map[string]*SharedLimitGroup // member name or id → group
}

// Default returns the built-in registry. It panics only if the embedded
// file is corrupt, which a test guards against.
func Default() *Registry {
	r, err := Load(nil)
	if err != nil {
		panic(err)
	}
	return r
}

// Load returns the built-in registry extended by overrides (a --models
// file, same JSON shape), or the built-in one when overrides is nil.
// Errors name the JSON problem.
func Load(overrides io.Reader) (*Registry, error) {
	var base file
	if err := json.Unmarshal(builtin, &base); err != nil {
		return nil, fmt.Errorf("built-in model registry: %w", err)
	}
	if overrides != nil {
		var extra file
		dec := json.NewDecoder(overrides)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&extra); err != nil {
			return nil, fmt.Errorf("models file: %w", err)
		}
		for _, m := range extra.Models {
			if m.ID == "" {
				return nil, fmt.Errorf("models file: an entry has no id")
			}
		}
		for _, g := range extra.Groups {
			if g.ID == "" || len(g.Members) == 0 || g.Source == "" || g.Date == "" {
				return nil, fmt.Errorf("models file: shared limit group %q needs id, members, source and date", g.ID)
			}
		}
		base.Groups = append(base.Groups, extra.Groups...) // later wins below
		base.Models = append(base.Models, extra.Models...) // later wins below
		base.EncodingPrefixes = append(extra.EncodingPrefixes, base.EncodingPrefixes...)
	}
	r := &Registry{byID: map[string]*Model{}, providers: base.ProviderPrefixes, groups: map[string]*SharedLimitGroup{}}
	for i := range base.Groups {
		g := &base.Groups[i]
		for _, m := range g.Members {
			r.groups[m] = g
		}
	}
	for i := range base.Models {
		m := base.Models[i]
		if m.Encoding == "" {
			m.Encoding = DefaultEncoding
			m.EncodingAssumed = true
		}
		r.byID[m.ID] = &m
		if m.Snapshot != "" {
			if _, taken := r.byID[m.Snapshot]; !taken || base.Models[i].ID == m.Snapshot {
				r.byID[m.Snapshot] = &m
			}
		}
	}
	for id := range r.byID {
		r.ids = append(r.ids, id)
	}
	sortLongestFirst(r.ids)
	seen := map[string]bool{}
	for _, p := range base.EncodingPrefixes {
		if !seen[p.Prefix] {
			seen[p.Prefix] = true
			r.prefixes = append(r.prefixes, p)
		}
	}
	sort.SliceStable(r.prefixes, func(i, j int) bool { return len(r.prefixes[i].Prefix) > len(r.prefixes[j].Prefix) })
	return r, nil
}

func sortLongestFirst(s []string) {
	sort.Slice(s, func(i, j int) bool {
		if len(s[i]) != len(s[j]) {
			return len(s[i]) > len(s[j])
		}
		return s[i] < s[j]
	})
}

// Resolution is the answer to Lookup.
type Resolution struct {
	// Name is the model name as given.
	Name string
	// Model is the registry entry, nil when the model is unknown.
	Model *Model
	// Encoding is the tiktoken encoding to count with: the entry's, else
	// the longest matching tiktoken prefix, else DefaultEncoding.
	Encoding string
	// Known is false when neither the registry nor the prefix table knows
	// the name (the encoding is then an assumption).
	Known bool
	// Note explains a non-obvious resolution ("resolved dated snapshot
	// gpt-4o-2024-08-06 to gpt-4o", "stripped provider prefix openai/").
	Note string
}

var dateSuffix = regexp.MustCompile(`-(\d{4}-\d{2}-\d{2}|\d{4})$`)

// Lookup resolves a model name: exact id or snapshot; a provider prefix
// ("openai/gpt-4o") stripped; a fine-tune name ("ft:gpt-4o-mini-2024-07-18:org::id")
// resolved to its base; a dated snapshot resolved by the longest registry id
// that is a prefix of it followed by "-". The encoding falls back to the
// tiktoken prefix table (longest prefix wins, so the answer never depends on
// map order) and then to DefaultEncoding with Known false.
func (r *Registry) Lookup(name string) Resolution {
	res := Resolution{Name: name}
	n := name
	var notes []string
	for _, p := range r.providers {
		if strings.HasPrefix(n, p) {
			n = strings.TrimPrefix(n, p)
			notes = append(notes, fmt.Sprintf("stripped provider prefix %q", p))
			break
		}
	}
	if strings.HasPrefix(n, "ft:") {
		base := strings.TrimPrefix(n, "ft:")
		if i := strings.IndexByte(base, ':'); i >= 0 {
			base = base[:i]
		}
		notes = append(notes, fmt.Sprintf("fine-tune of %s", base))
		n = base
	}
	if m, ok := r.byID[n]; ok {
		res.Model, res.Encoding, res.Known = m, m.Encoding, true
	} else {
		for _, id := range r.ids {
			// Only "ID-DATE" is a snapshot of ID: gpt-4-32k-0314 is not gpt-4.
			if rest, ok := strings.CutPrefix(n, id); ok && dateSuffix.FindString(rest) == rest && rest != "" {
				m := r.byID[id]
				res.Model, res.Encoding, res.Known = m, m.Encoding, true
				notes = append(notes, fmt.Sprintf("dated snapshot resolved to %s", m.ID))
				break
			}
		}
	}
	if res.Model == nil {
		for _, p := range r.prefixes {
			if strings.HasPrefix(n, p.Prefix) {
				res.Encoding, res.Known = p.Encoding, true
				break
			}
		}
	}
	if res.Encoding == "" {
		res.Encoding = DefaultEncoding
	}
	res.Note = strings.Join(notes, "; ")
	return res
}

// Models returns every entry, sorted by id.
func (r *Registry) Models() []*Model {
	seen := map[*Model]bool{}
	var out []*Model
	for _, m := range r.byID {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// MatchTier returns the usage tier ("free", "1".."5") whose published RPM
// and TPM for the model equal the given limits, or "" when none does
// ("custom limits"). A zero rpm or tpm is ignored in the comparison.
func (m Model) MatchTier(rpm, tpm int64) string {
	names := slices.Sorted(maps.Keys(m.Tiers))
	for _, k := range names {
		l := m.Tiers[k]
		if (rpm == 0 || l.RPM == rpm) && (tpm == 0 || l.TPM == tpm) && (rpm != 0 || tpm != 0) {
			return k
		}
	}
	return ""
}

// Group returns the shared-limit group a model name belongs to (the name
// as given, after provider and fine-tune stripping, or the registry entry
// it resolves to), or nil.
func (r *Registry) Group(name string) *SharedLimitGroup {
	if g, ok := r.groups[name]; ok {
		return g
	}
	res := r.Lookup(name)
	if res.Model != nil {
		if g, ok := r.groups[res.Model.ID]; ok {
			return g
		}
	}
	return nil
}

// LimitKey is the key of the rate-limit pool a request for model name is
// charged to: its shared-limit group's id, else the registry id it
// resolves to (so dated snapshots share their model's buckets), else the
// name as given. "" stays "".
func (r *Registry) LimitKey(name string) string {
	if name == "" {
		return ""
	}
	if g := r.Group(name); g != nil {
		return g.ID
	}
	if res := r.Lookup(name); res.Model != nil {
		return res.Model.ID
	}
	return name
}

// KeyLimits returns the published limits of tier for a pool key (as
// LimitKey returns): a group's own Tiers, else those of its first member
// the registry knows; for a plain model, its tier limits.
func (r *Registry) KeyLimits(key, tier string) (Limits, bool) {
	for _, g := range r.groups {
		if g.ID != key {
			continue
		}
		if l, ok := g.Tiers[normTier(tier)]; ok && !l.IsZero() {
			return l, true
		}
		for _, m := range g.Members {
			if res := r.Lookup(m); res.Model != nil {
				if l, ok := res.Model.TierLimits(tier); ok {
					return l, true
				}
			}
		}
		return Limits{}, false
	}
	if res := r.Lookup(key); res.Model != nil {
		return res.Model.TierLimits(tier)
	}
	return Limits{}, false
}

// Groups returns the shared-limit groups, sorted by id.
func (r *Registry) Groups() []*SharedLimitGroup {
	seen := map[*SharedLimitGroup]bool{}
	var out []*SharedLimitGroup
	for _, g := range r.groups {
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

package diagnose

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/oairl/oairl/internal/models"
)

// Poster sends a raw request body to an API path and returns the whole
// response; *api.Client (internal/api) implements it. A transport failure is an error;
// HTTP error statuses are not.
type Poster interface {
	Post(ctx context.Context, path string, body []byte) (*Response, error)
}

// ProbePath is the endpoint the live probe calls.
const ProbePath = "/v1/chat/completions"

// ProbeOptions configure a live probe.
type ProbeOptions struct {
	// Model is the model to ask (default "gpt-4o-mini").
	Model string
	// Registry resolves the model: reasoning models get
	// max_completion_tokens instead of max_tokens, and the published tier
	// limits are matched against the headers. Nil means models.Default().
	Registry *models.Registry
	// Now is the clock for HTTP-date Retry-After values without a Date
	// header (default time.Now).
	Now func() time.Time
}

func (o ProbeOptions) withDefaults() ProbeOptions {
	if o.Model == "" {
		o.Model = "gpt-4o-mini"
	}
	if o.Registry == nil {
		o.Registry = models.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// ProbeBody returns the minimal request the live probe sends: one user
// message "ping" and an output budget of 1 token (max_completion_tokens for
// reasoning models, which reject max_tokens; max_tokens otherwise, which
// every OpenAI-compatible server accepts). It costs a handful of tokens.
func ProbeBody(model string, reasoning bool) []byte {
	body := map[string]any{
		"model":    model,
		"messages": []map[string]string{{"role": "user", "content": "ping"}},
	}
	if reasoning {
		body["max_completion_tokens"] = 1
	} else {
		body["max_tokens"] = 1
	}
	b, _ := json.Marshal(body)
	return b
}

// Probe sends one minimal chat completion and diagnoses the answer: the
// rate-limit windows from the headers, the usage tier whose published
// limits match them, and the verdict (ok, a limit, auth, model, quota ...).
// A transport error yields a network_error entry, never an error.
func Probe(ctx context.Context, p Poster, o ProbeOptions) Entry {
	o = o.withDefaults()
	res := o.Registry.Lookup(o.Model)
	reasoning := res.Model != nil && res.Model.Reasoning
	e := Entry{Origin: "POST " + ProbePath, Format: "live"}
	resp, err := p.Post(ctx, ProbePath, ProbeBody(o.Model, reasoning))
	if err != nil {
		e.Finding = ClassifyTransportError(err)
		e.Model = o.Model
		return e
	}
	e.Finding = Classify(resp.StatusCode, resp.Header, resp.Body, o.Now())
	if e.Model == "" {
		e.Model = o.Model
	}
	e.UsageTier = MatchTier(res.Model, e.RateLimits)
	return e
}

// MatchTier returns the usage tier ("free", "1".."5") whose published
// limits for m equal the header limits in rl: RPM and TPM
// (models.Model.MatchTier) unless the request window is daily, then RPD
// and TPM (OpenAI's request header reports whichever request window binds:
// the free tier's shows its 200 RPD). It returns
// "custom" when none matches, and "" when m is nil or rl has no limits.
// The tier tables come from the registry (developers.openai.com model
// pages; wire-formats.md §6).
func MatchTier(m *models.Model, rl RateLimits) string {
	if m == nil {
		return ""
	}
	var req, tok int64
	if rl.Requests.Known && rl.Requests.Limit > 0 {
		req = rl.Requests.Limit
	}
	if rl.Tokens.Known && rl.Tokens.Limit > 0 {
		tok = rl.Tokens.Limit
	}
	if req == 0 && tok == 0 {
		return ""
	}
	if !rl.Requests.Daily {
		if t := m.MatchTier(req, tok); t != "" {
			return t
		}
	}
	// OpenAI's request header reports whichever request window binds, so a
	// window not recognised as daily may still be the RPD one.
	names := slices.Sorted(maps.Keys(m.Tiers))
	for _, k := range names {
		l := m.Tiers[k]
		if l.RPD > 0 && (req == 0 || l.RPD == req) && (tok == 0 || l.TPM == tok) {
			return k
		}
	}
	return "custom"
}

// ProbeConcurrency sends n minimal requests at once (each costs a few
// tokens) and reports whether a concurrency limit bites: any answer
// classified concurrency_limited. It returns every answer's entry too.
func ProbeConcurrency(ctx context.Context, p Poster, o ProbeOptions, n int) (ProbeResult, []Entry) {
	o = o.withDefaults()
	if n < 1 {
		n = 1
	}
	entries := make([]Entry, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			entries[i] = Probe(ctx, p, o)
		}(i)
	}
	close(start)
	wg.Wait()
	r := ProbeResult{Requests: n, Verdicts: map[Verdict]int{}}
	for _, e := range entries {
		r.Verdicts[e.Verdict]++
		if e.Verdict == OK {
			r.OK++
		}
		if e.Verdict == ConcurrencyLimited {
			r.Bites = true
		}
	}
	return r, entries
}

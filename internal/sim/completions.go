package sim

import (
	"sort"

	"github.com/oairl/oairl/internal/models"
)

// kindCompletion marks a model of the legacy /v1/completions endpoint.
const kindCompletion = "completion"

// completionsModels are the models the legacy /v1/completions endpoint
// serves: exactly the spec's CreateCompletionRequest.model enum
// (openai-openapi f85dbe2: gpt-3.5-turbo-instruct, davinci-002,
// babbage-002). The registry has no entries for them, so the simulator
// carries its own: context windows from OpenAI's model pages
// (gpt-3.5-turbo-instruct 4,096 tokens; davinci-002 and babbage-002 16,384),
// encodings from tiktoken (cl100k_base), no published tier limits and no
// prices (only --rpm/--tpm/--rpd/--tpd apply to them). A registry entry
// with the same id (a --models file) wins, but is still served only on
// /v1/completions.
var completionsModels = map[string]*models.Model{
	"gpt-3.5-turbo-instruct": {ID: "gpt-3.5-turbo-instruct", Encoding: "cl100k_base", ContextWindow: 4096, Kind: kindCompletion},
	"davinci-002":            {ID: "davinci-002", Encoding: "cl100k_base", ContextWindow: 16384, Kind: kindCompletion},
	"babbage-002":            {ID: "babbage-002", Encoding: "cl100k_base", ContextWindow: 16384, Kind: kindCompletion},
}

// lookup resolves a model name through the registry, then the legacy
// completions models.
func (s *Server) lookup(name string) models.Resolution {
	res := s.reg.Lookup(name)
	if res.Model == nil {
		if m, ok := completionsModels[name]; ok {
			res.Model, res.Encoding, res.Known = m, m.Encoding, true
		}
	}
	return res
}

// isCompletionModel reports whether m is a legacy completions model.
func isCompletionModel(m *models.Model) bool {
	return m.Kind == kindCompletion || completionsModels[m.ID] != nil
}

// modelIDs is every model id the simulator serves, sorted.
func (s *Server) modelIDs() []string {
	seen := map[string]bool{}
	var ids []string
	for _, m := range s.reg.Models() {
		seen[m.ID] = true
		ids = append(ids, m.ID)
	}
	for id := range completionsModels {
		if !seen[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

package sim_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/sim"
)

// An answer's service_tier is the tier actually used (OpenAPI spec,
// ServiceTier): a flex request the simulator serves says "flex" (chat,
// streamed chat and responses), so a flex rehearsal looks like the API;
// fast is reported as priority; auto or none as default.
func TestServedServiceTier(t *testing.T) {
	srv, _ := newSim(t, sim.Config{Tier: "1"})
	for _, tc := range []struct{ asked, want string }{
		{`"flex"`, "flex"}, {`"priority"`, "priority"}, {`"fast"`, "priority"}, {`"auto"`, "default"}, {"", "default"},
	} {
		tier := ""
		if tc.asked != "" {
			tier = `"service_tier":` + tc.asked + `,`
		}
		var got struct {
			ServiceTier string `json:"service_tier"`
		}
		r := post(t, srv, "/chat/completions", `{"model":"gpt-4o",`+tier+`"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
		if r.Status != 200 || json.Unmarshal(r.Body, &got) != nil || got.ServiceTier != tc.want {
			t.Errorf("chat asked %s: %d service_tier %q, want %q", tc.asked, r.Status, got.ServiceTier, tc.want)
		}
		r = post(t, srv, "/responses", `{"model":"gpt-4o",`+tier+`"max_output_tokens":16,"input":"hi"}`)
		got.ServiceTier = ""
		if r.Status != 200 || json.Unmarshal(r.Body, &got) != nil || got.ServiceTier != tc.want {
			t.Errorf("responses asked %s: %d service_tier %q, want %q", tc.asked, r.Status, got.ServiceTier, tc.want)
		}
		r = post(t, srv, "/chat/completions", `{"model":"gpt-4o",`+tier+`"stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
		chunks := 0
		for _, line := range strings.Split(string(r.Body), "\n") {
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok || data == "[DONE]" {
				continue
			}
			got.ServiceTier = ""
			if err := json.Unmarshal([]byte(data), &got); err != nil || got.ServiceTier != tc.want {
				t.Errorf("stream asked %s: chunk %s, want service_tier %q", tc.asked, data, tc.want)
				break
			}
			chunks++
		}
		if r.Status != 200 || chunks == 0 {
			t.Errorf("stream asked %s: %d, %d chunks", tc.asked, r.Status, chunks)
		}
	}
}

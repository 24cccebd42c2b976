package send

import (
	"bytes"
	"encoding/json"
)

// WithServiceTier returns body with service_tier set to tier (the other
// members byte for byte), false when body is not a JSON object with a
// service_tier member: the body a Request.FlexFallback resends (run and
// proxy).
func WithServiceTier(body []byte, tier string) ([]byte, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return nil, false
	}
	v, _ := json.Marshal(tier)
	if _, ok := m["service_tier"]; !ok {
		return nil, false
	}
	// Replace the value in place so the rest of the body stays byte for byte.
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, false
		}
		start := dec.InputOffset()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		if k == "service_tier" {
			end := dec.InputOffset()
			// start is just after the key; skip the colon and spaces.
			valStart := start + int64(bytes.Index(body[start:end], raw))
			out := append([]byte{}, body[:valStart]...)
			out = append(out, v...)
			return append(out, body[valStart+int64(len(raw)):]...), true
		}
	}
	return nil, false
}

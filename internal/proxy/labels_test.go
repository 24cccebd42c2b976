package proxy

import (
	"fmt"
	"testing"
)

// An app sending ever new model names cannot grow the series without bound
// (breaker1 F10): past maxModelLabels names, new ones share "other".
func TestModelLabelBounded(t *testing.T) {
	m := newMetrics()
	for i := 0; i < 5*maxModelLabels; i++ {
		m.answered(fmt.Sprintf("junk-%d", i), 404)
	}
	m.answered("junk-0", 200) // a name seen before the cap keeps its own series
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series, other, junk0 := 0, 0.0, 0.0
	for _, mf := range mfs {
		if mf.GetName() != "oairl_requests_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			series++
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch {
			case labels["model"] == "other" && labels["code"] == "404":
				other = s.GetCounter().GetValue()
			case labels["model"] == "junk-0" && labels["code"] == "200":
				junk0 = s.GetCounter().GetValue()
			}
		}
	}
	if series > maxModelLabels+2 {
		t.Errorf("oairl_requests_total has %d series for %d model names, want at most %d", series, 5*maxModelLabels, maxModelLabels+2)
	}
	if other != float64(4*maxModelLabels) {
		t.Errorf(`model="other",code="404" = %v, want %d`, other, 4*maxModelLabels)
	}
	if junk0 != 1 {
		t.Errorf(`model="junk-0",code="200" = %v, want 1`, junk0)
	}
}

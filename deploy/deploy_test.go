// Package deploy holds the monitoring files of `oairl proxy`; its tests
// check them with promtool (Debian package prometheus) when it is
// installed, and check that they name only metrics the proxy serves.
package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/oairl/oairl/internal/proxy"
)

func promtool(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed in CI (.ci/run installs the prometheus package)")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestRulesValid(t *testing.T) { promtool(t, "check", "rules", "prometheus-rules.yml") }

// The alert fires on 3% upstream 429s for one model and limit, not on
// 0.5% for another (prometheus-rules.test.yml).
func TestRulesFire(t *testing.T) { promtool(t, "test", "rules", "prometheus-rules.test.yml") }

// Every oairl_* name in the rules and the dashboard is a metric the proxy
// serves (MetricsTable), so a renamed metric cannot leave them behind.
func TestOnlyServedMetrics(t *testing.T) {
	served := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| (oairl_\\w+) ").FindAllStringSubmatch(proxy.MetricsTable, -1) {
		served[m[1]] = true
	}
	if len(served) != 7 {
		t.Fatalf("MetricsTable lists %d metrics, want 7", len(served))
	}
	dash, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(dash, &d); err != nil || len(d.Panels) == 0 {
		t.Fatalf("dashboard: %v (%d panels)", err, len(d.Panels))
	}
	rules, err := os.ReadFile("prometheus-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(rules)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			text += "\n" + tg.Expr
		}
	}
	for _, m := range regexp.MustCompile(`oairl_[a-z_]+`).FindAllString(text, -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
		if !served[base] {
			t.Errorf("%s is not a metric the proxy serves", m)
		}
	}
}

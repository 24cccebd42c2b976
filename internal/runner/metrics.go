package runner

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteMetricsFile writes the summary's counters to path in the Prometheus
// text exposition format (prometheus.io/docs/instrumenting/exposition_formats),
// for node_exporter's textfile collector, atomically (a temporary file
// beside it, then a rename), so the collector never reads half a file.
// Labels: model, and limit_type (RPM, TPM, RPD, TPD, concurrency, other)
// for 429s and limits.
func WriteMetricsFile(path string, s *Summary) error {
	return writeAtomic(path, func(w io.Writer) error { return WriteMetrics(w, s) })
}

// WriteMetrics writes the Prometheus text form of s to w.
func WriteMetrics(w io.Writer, s *Summary) error {
	var b strings.Builder
	metric := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	q := func(v string) string {
		return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
	}
	metric("oairl_run_requests_total", "counter", "Requests by final result (succeeded, failed).")
	for _, m := range s.Models {
		fmt.Fprintf(&b, "oairl_run_requests_total{model=\"%s\",result=\"succeeded\"} %d\n", q(m.Model), m.Succeeded)
		fmt.Fprintf(&b, "oairl_run_requests_total{model=\"%s\",result=\"failed\"} %d\n", q(m.Model), m.Failed)
	}
	metric("oairl_run_attempts_total", "counter", "HTTP attempts, retries included.")
	for _, m := range s.Models {
		fmt.Fprintf(&b, "oairl_run_attempts_total{model=\"%s\"} %d\n", q(m.Model), m.Attempts)
	}
	metric("oairl_run_retries_total", "counter", "Retries.")
	for _, m := range s.Models {
		fmt.Fprintf(&b, "oairl_run_retries_total{model=\"%s\"} %d\n", q(m.Model), m.Retries)
	}
	metric("oairl_run_rate_limited_total", "counter", "HTTP 429 answers by limit type.")
	for _, m := range s.Models {
		keys := make([]string, 0, len(m.RateLimited))
		for k := range m.RateLimited {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "oairl_run_rate_limited_total{model=\"%s\",limit_type=\"%s\"} %d\n", q(m.Model), q(k), m.RateLimited[k])
		}
	}
	metric("oairl_run_limit_per_minute", "gauge", "Rate limit in force (requests or tokens per minute).")
	for _, m := range s.Models {
		if m.RPMLimit > 0 {
			fmt.Fprintf(&b, "oairl_run_limit_per_minute{model=\"%s\",limit_type=\"RPM\"} %d\n", q(m.Model), m.RPMLimit)
		}
		if m.TPMLimit > 0 {
			fmt.Fprintf(&b, "oairl_run_limit_per_minute{model=\"%s\",limit_type=\"TPM\"} %d\n", q(m.Model), m.TPMLimit)
		}
	}
	metric("oairl_run_achieved_per_minute", "gauge", "Achieved rate (requests or TPM-charged tokens per minute of the run's clock).")
	for _, m := range s.Models {
		fmt.Fprintf(&b, "oairl_run_achieved_per_minute{model=\"%s\",limit_type=\"RPM\"} %g\n", q(m.Model), round3(m.AchievedRPM))
		fmt.Fprintf(&b, "oairl_run_achieved_per_minute{model=\"%s\",limit_type=\"TPM\"} %g\n", q(m.Model), round3(m.AchievedTPM))
	}
	metric("oairl_run_tokens_total", "counter", "Tokens used, from the responses' usage.")
	for _, m := range s.Models {
		fmt.Fprintf(&b, "oairl_run_tokens_total{model=\"%s\",kind=\"prompt\"} %d\n", q(m.Model), m.PromptTokens)
		fmt.Fprintf(&b, "oairl_run_tokens_total{model=\"%s\",kind=\"completion\"} %d\n", q(m.Model), m.CompletionTokens)
	}
	metric("oairl_run_cost_usd_total", "counter", "Cost at standard prices, USD.")
	for _, m := range s.Models {
		fmt.Fprintf(&b, "oairl_run_cost_usd_total{model=\"%s\"} %g\n", q(m.Model), m.CostUSD)
	}
	metric("oairl_run_unsent", "gauge", "Requests never sent when the run stopped (resumable).")
	fmt.Fprintf(&b, "oairl_run_unsent %d\n", s.Unsent)
	metric("oairl_run_abandoned", "gauge", "Requests in flight when abandoned (may have been billed; resent on rerun).")
	fmt.Fprintf(&b, "oairl_run_abandoned %d\n", s.Abandoned)
	metric("oairl_run_no_result", "gauge", "Requests of this run without a result line (resumable).")
	fmt.Fprintf(&b, "oairl_run_no_result %d\n", s.NoResult)
	metric("oairl_run_quota_errors_total", "counter", "insufficient_quota and billing answers (not rate limits).")
	fmt.Fprintf(&b, "oairl_run_quota_errors_total %d\n", s.QuotaErrors)
	metric("oairl_run_elapsed_seconds", "gauge", "Run time in seconds of the run's clock.")
	fmt.Fprintf(&b, "oairl_run_elapsed_seconds %g\n", round3(s.Elapsed.Seconds()))
	_, err := io.WriteString(w, b.String())
	return err
}

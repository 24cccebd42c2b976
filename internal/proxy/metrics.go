package proxy

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricsTable documents every metric the proxy serves on /metrics; the
// README and `oairl proxy --help` print it. Labels are bounded: model
// (as requests name it; after maxModelLabels distinct names, new ones
// share "other"), code (HTTP status returned to the app), limit,
// kind, priority; never a key, caller or request id.
const MetricsTable = `| metric | type | labels | meaning |
|---|---|---|---|
| oairl_requests_total | counter | model, code | requests answered to the app, by HTTP status (shed and passed-through errors included; 499 = the app went away) |
| oairl_upstream_rate_limited_total | counter | model, limit | upstream 429s, by limit: RPM, TPM, RPD, TPD, concurrency, quota, request_too_large, edge_throttled, other |
| oairl_queue_wait_seconds | histogram | | time a request waited for admission (per attempt; in the proxy's clock, sim seconds under --time-scale) |
| oairl_queue_depth | gauge | priority | requests waiting for admission: high, normal, low |
| oairl_tokens_charged_total | counter | model | TPM charge reserved from the budget (tokens; every attempt is charged) |
| oairl_limit | gauge | model, kind | limits in force: kind rpm (requests/min) or tpm (tokens/min); given or learned from x-ratelimit-limit-* |
| oairl_inflight | gauge | | requests being forwarded upstream now |`

// metrics are the proxy's Prometheus collectors, on a registry of their
// own (no Go runtime metrics unless the caller adds them).
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	queueWait   prometheus.Histogram
	queueDepth  *prometheus.GaugeVec
	charged     *prometheus.CounterVec
	limit       *prometheus.GaugeVec
	inflight    prometheus.Gauge

	// The model label takes at most maxModelLabels distinct values; later
	// new names share the label "other", so an app sending junk model
	// names cannot grow the series without bound.
	labelMu sync.Mutex
	labels  map[string]bool
}

// maxModelLabels bounds the distinct values of the model label.
const maxModelLabels = 100

// modelLabel returns the label value for model: the name itself while fewer
// than maxModelLabels names have been seen, else "other".
func (m *metrics) modelLabel(model string) string {
	m.labelMu.Lock()
	defer m.labelMu.Unlock()
	if m.labels[model] {
		return model
	}
	if len(m.labels) >= maxModelLabels {
		return "other"
	}
	if m.labels == nil {
		m.labels = map[string]bool{}
	}
	m.labels[model] = true
	return model
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "oairl_requests_total",
			Help: "Requests answered to the app, by model and HTTP status code."}, []string{"model", "code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "oairl_upstream_rate_limited_total",
			Help: "Upstream 429s by model and limit (RPM, TPM, RPD, TPD, concurrency, quota, ...)."}, []string{"model", "limit"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "oairl_queue_wait_seconds",
			Help:    "Time a request waited for admission, in seconds of the proxy's clock.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "oairl_queue_depth",
			Help: "Requests waiting for admission, by priority."}, []string{"priority"}),
		charged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "oairl_tokens_charged_total",
			Help: "TPM charge reserved from the budget, in tokens (every attempt)."}, []string{"model"}),
		limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "oairl_limit",
			Help: "Limits in force by model and kind (rpm: requests per minute, tpm: tokens per minute)."}, []string{"model", "kind"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "oairl_inflight",
			Help: "Requests being forwarded upstream now."}),
	}
	m.reg.MustRegister(m.requests, m.rateLimited, m.queueWait, m.queueDepth, m.charged, m.limit, m.inflight)
	for p := Priority(0); p < numPriorities; p++ {
		m.queueDepth.WithLabelValues(p.String()).Set(0)
	}
	return m
}

func (m *metrics) answered(model string, code int) {
	m.requests.WithLabelValues(m.modelLabel(model), strconv.Itoa(code)).Inc()
}

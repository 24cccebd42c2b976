package diagnose

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/redact"
)

// SchemaVersion is the version of the `oairl diagnose --format json`
// document. Fields are only ever added; a removal or change of meaning
// bumps it.
const SchemaVersion = 1

// Entry is one finding in a Report, with where it came from.
type Entry struct {
	Finding
	// Origin names the response: "FILE:LINE" for a saved response, or the
	// request path for a live one ("POST /v1/chat/completions").
	Origin string
	// Format is the saved format (Capture.Source), "live" for a live probe.
	Format string
	// UsageTier is the usage tier whose published limits match the
	// headers: "free", "1".."5", "custom" (none matches), or "" when not
	// checked (saved responses, unknown model, no headers).
	UsageTier string
}

// ProbeResult is the outcome of a concurrency probe: N minimal requests
// sent at once.
type ProbeResult struct {
	Requests int             // requests sent at once
	OK       int             // 2xx answers
	Verdicts map[Verdict]int // count per verdict, ok included
	// Bites is true when at least one answer was concurrency_limited.
	Bites bool
}

// Report is the output of `oairl diagnose`: one entry per response.
type Report struct {
	Mode     string // "live" or "saved"
	Findings []Entry
	Probe    *ProbeResult
}

// ExitCode is the worst exit code over all findings (exitcode.Worst), OK
// for an empty report.
func (r Report) ExitCode() int {
	codes := make([]int, 0, len(r.Findings))
	for _, e := range r.Findings {
		codes = append(codes, e.ExitCode())
	}
	if r.Probe != nil && r.Probe.Bites {
		codes = append(codes, exitcode.RateLimited)
	}
	return exitcode.Worst(codes...)
}

// counts returns the verdict counts of the report.
func (r Report) counts() map[Verdict]int {
	m := map[Verdict]int{}
	for _, e := range r.Findings {
		m[e.Verdict]++
	}
	return m
}

// worst returns the verdict of the entry with the worst exit code (first
// one on ties), "" when empty.
func (r Report) worst() Verdict {
	var w Verdict
	code := -1
	for _, e := range r.Findings {
		c := e.ExitCode()
		if code == -1 || exitcode.Worst(c, code) == c && c != code {
			w, code = e.Verdict, c
		}
	}
	return w
}

// Redacted returns a copy of the report with organization and project ids
// masked everywhere (fields, messages, summaries), for --redact.
func (r Report) Redacted() Report {
	out := r
	out.Findings = make([]Entry, len(r.Findings))
	for i, e := range r.Findings {
		lits := []string{e.Organization, e.Project}
		mask := func(s string) string {
			for _, l := range lits {
				if len(l) >= 4 {
					s = strings.ReplaceAll(s, l, maskID(l))
				}
			}
			return redact.IDs(s)
		}
		e.Message, e.Summary = mask(e.Message), mask(e.Summary)
		e.Organization, e.Project = maskID(e.Organization), maskID(e.Project)
		out.Findings[i] = e
	}
	return out
}

// maskID keeps an id's kind prefix (org-, proj_, user-) and hides the rest.
func maskID(s string) string {
	if s == "" {
		return ""
	}
	for _, p := range []string{"org-", "org_", "proj_", "proj-", "user-"} {
		if strings.HasPrefix(s, p) {
			return p + "…"
		}
	}
	return "…"
}

// --- JSON -----------------------------------------------------------------

// jsonWindow is the JSON form of a Window. Unknown figures are null.
type jsonWindow struct {
	Known        bool     `json:"known"`
	Limit        *int64   `json:"limit"`
	Remaining    *int64   `json:"remaining"`
	Reset        string   `json:"reset"`
	ResetSeconds *float64 `json:"reset_seconds"`
	Daily        bool     `json:"daily"`
	Utilization  *float64 `json:"utilization"`
}

func toJSONWindow(w Window) jsonWindow {
	j := jsonWindow{Known: w.Known, Reset: w.ResetRaw, Daily: w.Daily}
	if w.Known && w.Limit >= 0 {
		v := w.Limit
		j.Limit = &v
	}
	if w.Known && w.Remaining >= 0 {
		v := w.Remaining
		j.Remaining = &v
	}
	if w.ResetKnown {
		v := round3(w.Reset.Seconds())
		j.ResetSeconds = &v
	}
	if u, ok := Utilization(w); ok {
		u = round3(u)
		j.Utilization = &u
	}
	return j
}

// Utilization is the used share of a window, (limit − remaining) / limit,
// between 0 and 1; false when limit or remaining is unknown.
func Utilization(w Window) (float64, bool) {
	if !w.Known || w.Limit <= 0 || w.Remaining < 0 {
		return 0, false
	}
	u := float64(w.Limit-w.Remaining) / float64(w.Limit)
	return min(1, max(0, u)), true
}

func round3(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}

type jsonRateLimits struct {
	Provider        string     `json:"provider"`
	Requests        jsonWindow `json:"requests"`
	Tokens          jsonWindow `json:"tokens"`
	ProjectRequests jsonWindow `json:"project_requests"`
	ProjectTokens   jsonWindow `json:"project_tokens"`
	InputTokens     jsonWindow `json:"input_tokens"`
	OutputTokens    jsonWindow `json:"output_tokens"`
	Binding         string     `json:"binding"`
}

type jsonFix struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// jsonFinding is the stable JSON form of a Finding (see JSONSchemaHelp).
type jsonFinding struct {
	Verdict      Verdict        `json:"verdict"`
	Retryable    bool           `json:"retryable"`
	WaitSeconds  float64        `json:"wait_seconds"`
	WaitSource   string         `json:"wait_source"`
	Status       int            `json:"status"`
	Provider     string         `json:"provider"`
	Code         string         `json:"code"`
	Type         string         `json:"type"`
	Message      string         `json:"message"`
	Model        string         `json:"model"`
	Organization string         `json:"organization"`
	Project      string         `json:"project"`
	RequestID    string         `json:"request_id"`
	ContentType  string         `json:"content_type"`
	LimitKind    string         `json:"limit_kind"`
	Limit        int64          `json:"limit"`
	Used         int64          `json:"used"`
	Requested    int64          `json:"requested"`
	RateLimits   jsonRateLimits `json:"rate_limits"`
	Summary      string         `json:"summary"`
	Fixes        []jsonFix      `json:"fixes"`
	ExitCode     int            `json:"exit_code"`
	Truncated    bool           `json:"truncated"`
	Scope        string         `json:"scope"`
}

func toJSONFinding(f Finding) jsonFinding {
	j := jsonFinding{
		Verdict: f.Verdict, Retryable: f.Retryable, WaitSeconds: round3(f.Wait.Seconds()), WaitSource: f.WaitSource,
		Status: f.Status, Provider: f.Provider, Code: f.Code, Type: f.Type, Message: f.Message, Model: f.Model,
		Organization: f.Organization, Project: f.Project, RequestID: f.RequestID, ContentType: f.ContentType,
		LimitKind: f.LimitKind, Limit: f.Limit, Used: f.Used, Requested: f.Requested,
		RateLimits: jsonRateLimits{Provider: f.RateLimits.Provider, Requests: toJSONWindow(f.RateLimits.Requests),
			Tokens: toJSONWindow(f.RateLimits.Tokens), ProjectRequests: toJSONWindow(f.RateLimits.ProjectRequests),
			ProjectTokens: toJSONWindow(f.RateLimits.ProjectTokens), InputTokens: toJSONWindow(f.RateLimits.InputTokens),
			OutputTokens: toJSONWindow(f.RateLimits.OutputTokens), Binding: f.RateLimits.Binding()},
		Summary: f.Summary, Fixes: []jsonFix{}, ExitCode: f.ExitCode(), Truncated: f.Truncated, Scope: f.Scope,
	}
	for _, x := range f.Fixes {
		j.Fixes = append(j.Fixes, jsonFix(x))
	}
	return j
}

// MarshalJSON encodes a Finding in the stable schema of `oairl diagnose
// --format json` (wait as wait_seconds, windows with reset_seconds).
func (f Finding) MarshalJSON() ([]byte, error) { return json.Marshal(toJSONFinding(f)) }

type jsonEntry struct {
	Origin    string `json:"origin"`
	Format    string `json:"format"`
	UsageTier string `json:"usage_tier"`
	jsonFinding
}

// MarshalJSON encodes an Entry as one element of the report's "findings"
// (without it, Entry would inherit Finding.MarshalJSON and lose origin,
// format and usage_tier).
func (e Entry) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonEntry{Origin: e.Origin, Format: e.Format, UsageTier: e.UsageTier, jsonFinding: toJSONFinding(e.Finding)})
}

type jsonProbe struct {
	Requests int             `json:"requests"`
	OK       int             `json:"ok"`
	Verdicts map[Verdict]int `json:"verdicts"`
	Bites    bool            `json:"concurrency_limit_bites"`
}

type jsonSummary struct {
	Total        int             `json:"total"`
	Verdicts     map[Verdict]int `json:"verdicts"`
	WorstVerdict Verdict         `json:"worst_verdict"`
	ExitCode     int             `json:"exit_code"`
}

type jsonReport struct {
	SchemaVersion int         `json:"schema_version"`
	Mode          string      `json:"mode"`
	Findings      []jsonEntry `json:"findings"`
	Probe         *jsonProbe  `json:"probe"`
	Summary       jsonSummary `json:"summary"`
}

// WriteJSON writes the report as one indented JSON document (schema:
// JSONSchemaHelp).
func (r Report) WriteJSON(w io.Writer) error {
	st := NewStream(w, r.Mode, "json", nil)
	for _, e := range r.Findings {
		if err := st.Add(e); err != nil {
			return err
		}
	}
	st.Probe = r.Probe
	return st.Close()
}

// Stream writes a report one entry at a time, keeping only the verdict
// counts, so a log of any number of responses is diagnosed in flat memory
// (`oairl diagnose --from` on 100,000 responses). Its JSON is byte for
// byte Report.WriteJSON's and its rows Report.WriteTSV's. Mask, when set,
// is applied to each entry's output (key redaction) before it is written.
type Stream struct {
	// Probe is written in the JSON's "probe" at Close (live mode).
	Probe *ProbeResult

	w      *bufio.Writer
	mode   string
	format string // "json" or "tsv"
	mask   func(string) string
	n      int
	counts map[Verdict]int
	worstV Verdict
	worstC int
	buf    bytes.Buffer
}

// NewStream starts a report on w in format "json" or "tsv" (anything else
// is "tsv"); mode is "saved" or "live"; mask may be nil.
func NewStream(w io.Writer, mode, format string, mask func(string) string) *Stream {
	if format != "json" {
		format = "tsv"
	}
	return &Stream{w: bufio.NewWriterSize(w, 64<<10), mode: mode, format: format, mask: mask, counts: map[Verdict]int{}, worstC: -1}
}

// encode writes v as indented JSON (as the whole document's encoder would
// at this depth) into s.buf, without the trailing newline.
func (s *Stream) encode(v any, prefix string) ([]byte, error) {
	s.buf.Reset()
	enc := json.NewEncoder(&s.buf)
	enc.SetIndent(prefix, "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(s.buf.Bytes(), []byte("\n")), nil
}

func (s *Stream) write(b []byte) error {
	if s.mask != nil {
		b = []byte(s.mask(string(b)))
	}
	_, err := s.w.Write(b)
	return err
}

// Add writes one entry.
func (s *Stream) Add(e Entry) error {
	s.counts[e.Verdict]++
	if c := e.ExitCode(); s.worstC == -1 || exitcode.Worst(c, s.worstC) == c && c != s.worstC {
		s.worstV, s.worstC = e.Verdict, c
	}
	s.n++
	if s.format == "tsv" {
		return s.write([]byte(tsvRow(e)))
	}
	head := ",\n    "
	if s.n == 1 {
		head = fmt.Sprintf("{\n  \"schema_version\": %d,\n  \"mode\": %s,\n  \"findings\": [\n    ", SchemaVersion, jsonText(s.mode))
	}
	if _, err := s.w.WriteString(head); err != nil {
		return err
	}
	b, err := s.encode(jsonEntry{Origin: e.Origin, Format: e.Format, UsageTier: e.UsageTier, jsonFinding: toJSONFinding(e.Finding)}, "    ")
	if err != nil {
		return err
	}
	return s.write(b)
}

func jsonText(v string) string { b, _ := json.Marshal(v); return string(b) }

// ExitCode is the worst exit code of the entries added so far (and of the
// probe), as Report.ExitCode.
func (s *Stream) ExitCode() int {
	codes := []int{exitcode.OK}
	if s.worstC >= 0 {
		codes = append(codes, s.worstC)
	}
	if s.Probe != nil && s.Probe.Bites {
		codes = append(codes, exitcode.RateLimited)
	}
	return exitcode.Worst(codes...)
}

// Count is the number of entries added.
func (s *Stream) Count() int { return s.n }

// SummaryLine is Report.SummaryLine over the entries added.
func (s *Stream) SummaryLine() string {
	return summaryLine(s.n, s.counts, s.worstV, s.ExitCode())
}

// Close ends the document (JSON: the probe and the summary; TSV: the probe
// row) and flushes.
func (s *Stream) Close() error {
	if s.format == "tsv" {
		if p := s.Probe; p != nil {
			if _, err := fmt.Fprintf(s.w, "probe\t%d\tok=%d\tconcurrency_limit_bites=%v\n", p.Requests, p.OK, p.Bites); err != nil {
				return err
			}
		}
		return s.w.Flush()
	}
	tail := "\n  ],\n  \"probe\": "
	if s.n == 0 {
		tail = fmt.Sprintf("{\n  \"schema_version\": %d,\n  \"mode\": %s,\n  \"findings\": [],\n  \"probe\": ", SchemaVersion, jsonText(s.mode))
	}
	if _, err := s.w.WriteString(tail); err != nil {
		return err
	}
	var probe *jsonProbe
	if p := s.Probe; p != nil {
		probe = &jsonProbe{Requests: p.Requests, OK: p.OK, Verdicts: p.Verdicts, Bites: p.Bites}
		if probe.Verdicts == nil {
			probe.Verdicts = map[Verdict]int{}
		}
	}
	b, err := s.encode(probe, "  ")
	if err != nil {
		return err
	}
	if err := s.write(b); err != nil {
		return err
	}
	b, err = s.encode(jsonSummary{Total: s.n, Verdicts: s.counts, WorstVerdict: s.worstV, ExitCode: s.ExitCode()}, "  ")
	if err != nil {
		return err
	}
	if _, err := s.w.WriteString(",\n  \"summary\": "); err != nil {
		return err
	}
	if err := s.write(b); err != nil {
		return err
	}
	if _, err := s.w.WriteString("\n}\n"); err != nil {
		return err
	}
	return s.w.Flush()
}

// JSONSchemaHelp documents the --format json document; `oairl diagnose
// --help` prints it.
const JSONSchemaHelp = `JSON output (--format json, schema_version 1; fields are only ever added):

  {
    "schema_version": 1,
    "mode": "live" | "saved",
    "findings": [{
      "origin":       "FILE:LINE" or "POST /v1/chat/completions",
      "format":       "curl -i" | "json" | "sse" | "python-sdk" | "go-openai" |
                      "node-sdk" | "live",
      "usage_tier":   "free" | "1".."5" | "custom" | ""   (live only: the tier whose
                      published RPM/TPM equal the headers; "custom" when none does),
      "verdict":      ok | rpm_limited | tpm_limited | rpd_limited | tpd_limited |
                      request_too_large | ramp_limited | concurrency_limited |
                      quota_exhausted | batch_queue_full | context_length_exceeded |
                      auth_failed | model_unavailable | server_overloaded |
                      server_error | network_error | edge_throttled |
                      invalid_request | not_executed | not_api_response |
                      stream_truncated | resource_unavailable |
                      request_unaffordable | unknown,
      "retryable":    true when waiting and retrying can succeed,
      "wait_seconds": the wait the response implies (0 = none given),
      "wait_source":  "retry-after-ms" | "retry-after" | "retry-after-date" |
                      "message" | "reset-requests" | "reset-tokens" | "",
      "status":       HTTP status (0 when a saved body does not say; never guessed),
      "provider", "code", "type", "message", "model", "organization",
      "project", "request_id", "content_type":  strings, "" when absent
                      (content_type: the response's media type),
      "limit_kind":   "RPM" | "TPM" | "RPD" | "TPD" | "",
      "limit", "used", "requested":  requests or tokens from the message (0 = not given),
      "rate_limits": {"provider": "openai" | "azure" | "groq" | "mistral" |
                      "anthropic" | "",
        "requests": WINDOW, "tokens": WINDOW  (the organization's),
        "project_requests": WINDOW, "project_tokens": WINDOW  (the project's,
                      x-ratelimit-*-project-{requests,tokens}),
        "input_tokens": WINDOW, "output_tokens": WINDOW  (Anthropic's
                      separate input and output token buckets),
        "binding":    "project" | "organization" | "": the token window
                      with fewer tokens left},
      "summary":      one line for people,
      "fixes":        [{"code": "...", "text": "..."}], most likely first,
      "exit_code":    this finding's exit code,
      "truncated":    true when the capture was cut short (classified from
                      the readable part: status, headers, partial JSON),
      "scope":        "project" | "organization" | "": whose limit was hit
    }],
    "probe": null | {"requests": N, "ok": N, "verdicts": {VERDICT: N},
                     "concurrency_limit_bites": bool},
    "summary": {"total": N, "verdicts": {VERDICT: N}, "worst_verdict": VERDICT,
                "exit_code": N}
  }

  WINDOW = {"known": bool, "limit": N|null, "remaining": N|null,
            "reset": header text, "reset_seconds": N|null (null when the reset
            is absent or unparseable, e.g. "-1", "1d", "soon"), "daily": bool,
            "utilization": 0..1|null}
`

// --- text -------------------------------------------------------------------

// TSVColumns names the columns of the tab-separated output (stdout not a
// terminal), one row per finding, no header; "-" marks an unknown value.
var TSVColumns = []string{
	"origin", "status", "verdict", "retryable", "wait_seconds", "limit_kind", "limit", "used", "requested", "model",
	"requests_limit", "requests_remaining", "requests_reset_seconds", "tokens_limit", "tokens_remaining",
	"tokens_reset_seconds", "usage_tier", "summary",
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\t", " "), "\n", " ")
}

func intOrDash(n int64, known bool) string {
	if !known {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func secs(d time.Duration) string { return strconv.FormatFloat(round3(d.Seconds()), 'f', -1, 64) }

// WriteTSV writes one tab-separated row per finding (TSVColumns), raw
// integers and seconds, for scripts.
func (r Report) WriteTSV(w io.Writer) error {
	st := NewStream(w, r.Mode, "tsv", nil)
	for _, e := range r.Findings {
		if err := st.Add(e); err != nil {
			return err
		}
	}
	st.Probe = r.Probe
	return st.Close()
}

// tsvRow is one finding as a TSV row (TSVColumns), newline included.
func tsvRow(e Entry) string {
	rq, tk := e.RateLimits.Requests, e.RateLimits.Tokens
	resetOr := func(win Window) string {
		if !win.ResetKnown {
			return "-"
		}
		return secs(win.Reset)
	}
	status := "-"
	if e.Status != 0 {
		status = strconv.Itoa(e.Status)
	}
	row := []string{
		dash(e.Origin), status, string(e.Verdict), strconv.FormatBool(e.Retryable), secs(e.Wait), dash(e.LimitKind),
		intOrDash(e.Limit, e.Limit > 0), intOrDash(e.Used, e.Used > 0), intOrDash(e.Requested, e.Requested > 0), dash(e.Model),
		intOrDash(rq.Limit, rq.Known && rq.Limit >= 0), intOrDash(rq.Remaining, rq.Known && rq.Remaining >= 0), resetOr(rq),
		intOrDash(tk.Limit, tk.Known && tk.Limit >= 0), intOrDash(tk.Remaining, tk.Known && tk.Remaining >= 0), resetOr(tk),
		dash(e.UsageTier), dash(e.Summary),
	}
	return strings.Join(row, "\t") + "\n"
}

// WriteText writes the report for people: one block per finding (verdict,
// figures, a table of the rate-limit windows, fixes), then a summary line
// when there are several.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for i, e := range r.Findings {
		if i > 0 {
			b.WriteString("\n")
		}
		writeEntry(&b, e, len(r.Findings) > 1, i+1)
	}
	if p := r.Probe; p != nil {
		fmt.Fprintf(&b, "\nConcurrency probe: %d requests at once: %d ok", p.Requests, p.OK)
		for _, v := range sortedVerdicts(p.Verdicts) {
			if v != OK {
				fmt.Fprintf(&b, ", %d %s", p.Verdicts[v], v)
			}
		}
		if p.Bites {
			b.WriteString("\n  a concurrency limit bites at this level: lower --max-concurrent\n")
		} else {
			fmt.Fprintf(&b, "\n  no concurrency limit seen at %d in flight\n", p.Requests)
		}
	}
	if len(r.Findings) > 1 {
		fmt.Fprintf(&b, "\n%s\n", r.SummaryLine())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// SummaryLine is one line over all findings: "3 responses: 2 rpm_limited,
// 1 quota_exhausted; worst: quota_exhausted (exit 5)".
func (r Report) SummaryLine() string {
	return summaryLine(len(r.Findings), r.counts(), r.worst(), r.ExitCode())
}

func summaryLine(n int, c map[Verdict]int, worst Verdict, code int) string {
	parts := []string{}
	for _, v := range sortedVerdicts(c) {
		parts = append(parts, fmt.Sprintf("%d %s", c[v], v))
	}
	noun := "responses"
	if n == 1 {
		noun = "response"
	}
	return fmt.Sprintf("%d %s: %s; worst: %s (exit %d)", n, noun, strings.Join(parts, ", "), worst, code)
}

func sortedVerdicts(m map[Verdict]int) []Verdict {
	vs := make([]Verdict, 0, len(m))
	for v := range m {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool {
		if m[vs[i]] != m[vs[j]] {
			return m[vs[i]] > m[vs[j]]
		}
		return vs[i] < vs[j]
	})
	return vs
}

func writeEntry(b *strings.Builder, e Entry, numbered bool, n int) {
	head := ""
	if numbered {
		head = fmt.Sprintf("#%d ", n)
	}
	status := "no status"
	if e.Status != 0 {
		status = fmt.Sprintf("HTTP %d", e.Status)
	}
	fmt.Fprintf(b, "%s%s (%s, %s)\n", head, dash(e.Origin), e.Format, status)
	retry := "do not retry"
	if e.Verdict == OK {
		retry = "the request succeeded"
	} else if e.Retryable {
		retry = "retryable"
		if e.Wait > 0 {
			retry += fmt.Sprintf(", wait %s (from %s)", FormatWait(e.Wait), e.WaitSource)
		}
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  verdict\t%s: %s\n", e.Verdict, retry)
	fmt.Fprintf(tw, "  summary\t%s\n", e.Summary)
	if e.Code != "" || e.Type != "" {
		fmt.Fprintf(tw, "  error\tcode %s, type %s\n", dash(e.Code), dash(e.Type))
	}
	if e.Model != "" {
		fmt.Fprintf(tw, "  model\t%s\n", e.Model)
	}
	if e.Organization != "" || e.Project != "" {
		fmt.Fprintf(tw, "  organization\t%s  project %s\n", dash(e.Organization), dash(e.Project))
	}
	if e.Provider != "" {
		fmt.Fprintf(tw, "  provider\t%s\n", e.Provider)
	}
	if e.RequestID != "" {
		fmt.Fprintf(tw, "  request id\t%s\n", e.RequestID)
	}
	if e.LimitKind != "" || e.Limit > 0 || e.Requested > 0 {
		fmt.Fprintf(tw, "  from message\t%s%s\n", dash(e.LimitKind), figures(e.Finding))
	}
	if e.Format == "live" && e.Status != 0 {
		tier := "custom limits (no published tier matches the headers)"
		switch e.UsageTier {
		case "":
			tier = "unknown (model not in the registry, or no rate-limit headers)"
		case "custom":
		case "free":
			tier = "free tier"
		default:
			tier = "tier " + e.UsageTier
		}
		fmt.Fprintf(tw, "  usage tier\t%s\n", tier)
	}
	_ = tw.Flush()
	rl := e.RateLimits
	shown := func(w Window) bool { return w.Known || w.ResetRaw != "" }
	if shown(rl.Requests) || shown(rl.Tokens) || shown(rl.ProjectTokens) || shown(rl.ProjectRequests) {
		b.WriteString("  limits:\n")
		tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "    WINDOW\tLIMIT\tREMAINING\tRESET\tUSED")
		row := func(name string, win Window) {
			if !shown(win) {
				return
			}
			switch {
			case win.Daily:
				name += " (per day)"
			case rl.Provider == "azure" && strings.HasPrefix(name, "requests"):
				// Azure evaluates RPM over 1 s or 10 s windows (wire-formats.md §3).
				name += " (short window)"
			case rl.Provider != "anthropic":
				name += " (per min)"
			}
			lim, rem, reset, used := "?", "?", "?", "?"
			if win.Limit >= 0 {
				lim = human(win.Limit)
			}
			if win.Remaining >= 0 {
				rem = human(win.Remaining)
			}
			if win.ResetKnown {
				reset = win.ResetRaw
			} else if win.ResetRaw != "" {
				reset = "unknown"
			}
			if u, ok := Utilization(win); ok {
				used = fmt.Sprintf("%.0f%%", u*100)
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\n", name, lim, rem, reset, used)
		}
		row("requests", rl.Requests)
		row("tokens", rl.Tokens)
		row("project requests", rl.ProjectRequests)
		row("project tokens", rl.ProjectTokens)
		row("input tokens", rl.InputTokens)
		row("output tokens", rl.OutputTokens)
		_ = tw.Flush()
		if rl.ProjectTokens.Known && rl.Tokens.Known {
			fmt.Fprintf(b, "  binding: the %s's token window (fewer tokens left)\n", rl.Binding())
		}
	}
	if len(e.Fixes) > 0 {
		b.WriteString("  fixes:\n")
		for i, f := range e.Fixes {
			fmt.Fprintf(b, "    %d. %s\n", i+1, f.Text)
		}
	}
}

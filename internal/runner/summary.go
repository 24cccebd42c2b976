package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is what a run did. Its JSON form is `oairl run --format json`
// (stable; pinned by TestSummaryJSONFields):
//
//	{"requests","invalid","skipped","to_send","sent","succeeded","failed",
//	 "failed_by_kind":{code:n},"unsent","abandoned","no_result","skipped_failed",
//	 "quota_errors","attempts","retries",
//	 "rate_limited":{"RPM"|"TPM"|"RPD"|"TPD"|"concurrency"|"other":n},
//	 "prompt_tokens","completion_tokens","cost_usd","elapsed_seconds",
//	 "active_seconds","torn_bytes","stop_reason","exit_code",
//	 "models":[{"model","rpm_limit","tpm_limit","succeeded","failed",
//	   "attempts","retries","rate_limited","tpm_charged","prompt_tokens",
//	   "completion_tokens","achieved_rpm","achieved_tpm","rpm_percent",
//	   "tpm_percent","cost_usd"}]}
//
// sent counts requests that reached the server at least once (an HTTP
// answer, or a transport error other than connection refused / DNS);
// unsent those never sent (not dispatched, or never reached the server);
// no_result every request of this run without a result line (unsent +
// abandoned + those stopped between retries; a rerun sends them);
// abandoned those in flight when the run was interrupted (they may have
// been processed and billed; a rerun sends them again). skipped_failed is
// the skipped requests whose recorded result is a failure. quota_errors
// counts insufficient_quota/billing answers (429 or not), which are never
// counted under rate_limited. rate_limited kinds: RPM, TPM, RPD, TPD,
// concurrency, request_too_large, edge_throttled, other.
//
// Times are in the run's clock (scaled under --time-scale); achieved RPM
// and TPM are steady-state rates per minute of that clock (steadyRate):
// successful requests and their TPM charges (prompt + output budget × n,
// what the limiter charges), excluding the first limit's worth (the
// initial full bucket) and measured from the success that drained it to
// the last one; a run that fits in the initial bucket is measured over
// max(elapsed, 1 minute). rpm_limit/tpm_limit are the limits in force at
// the end (a lower learned one replaces the one given); percentages are
// of those limits (not of the headroom), capped at 100 when the model saw
// no 429 at all (the rest is clock and latency noise). cost_usd is at standard (not Batch) prices
// from the model registry (USD per 1M tokens), on usage tokens.
type Summary struct {
	Requests         int            `json:"requests"`
	Invalid          int            `json:"invalid"`
	Skipped          int            `json:"skipped"`
	ToSend           int            `json:"to_send"`
	Sent             int            `json:"sent"`
	Succeeded        int            `json:"succeeded"`
	Failed           int            `json:"failed"`
	FailedByKind     map[string]int `json:"failed_by_kind"`
	Unsent           int            `json:"unsent"`
	Abandoned        int            `json:"abandoned"`
	NoResult         int            `json:"no_result"`
	SkippedFailed    int            `json:"skipped_failed"`
	QuotaErrors      int            `json:"quota_errors"`
	Attempts         int            `json:"attempts"`
	Retries          int            `json:"retries"`
	RateLimited      map[string]int `json:"rate_limited"`
	PromptTokens     int64          `json:"prompt_tokens"`
	CompletionTokens int64          `json:"completion_tokens"`
	CostUSD          float64        `json:"cost_usd"`
	Elapsed          time.Duration  `json:"-"`
	Active           time.Duration  `json:"-"`
	TornBytes        int64          `json:"torn_bytes"`
	StopReason       string         `json:"stop_reason"`
	ExitCode         int            `json:"exit_code"`
	Models           []ModelSummary `json:"models"`
	// ServerCharge is the server's own TPM charge, measured from the
	// x-ratelimit-remaining-tokens deltas of consecutive admissions,
	// relative to oairl's estimate (tokens.TPMCharge).
	ServerCharge ServerCharge `json:"server_charge"`
}

// ServerCharge is "the server charged Ratio× oairl's estimate on Samples
// requests"; Ratio is 0 when nothing could be measured. Followed is true
// when pacing used the ratio (it was steady and more than 3% from 1).
type ServerCharge struct {
	Ratio    float64 `json:"ratio"`
	Samples  int     `json:"samples"`
	Steady   bool    `json:"steady"`
	Followed bool    `json:"followed"`
}

// ModelSummary is the per-model part of a Summary.
type ModelSummary struct {
	Model            string         `json:"model"`
	RPMLimit         int64          `json:"rpm_limit"`
	TPMLimit         int64          `json:"tpm_limit"`
	Succeeded        int            `json:"succeeded"`
	Failed           int            `json:"failed"`
	Attempts         int            `json:"attempts"`
	Retries          int            `json:"retries"`
	RateLimited      map[string]int `json:"rate_limited"`
	Charged          int64          `json:"tpm_charged"`
	PromptTokens     int64          `json:"prompt_tokens"`
	CompletionTokens int64          `json:"completion_tokens"`
	AchievedRPM      float64        `json:"achieved_rpm"`
	AchievedTPM      float64        `json:"achieved_tpm"`
	RPMPercent       float64        `json:"rpm_percent"`
	TPMPercent       float64        `json:"tpm_percent"`
	CostUSD          float64        `json:"cost_usd"`
}

// MarshalJSON adds elapsed_seconds and active_seconds.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary
	p := plain(s)
	if p.FailedByKind == nil {
		p.FailedByKind = map[string]int{}
	}
	if p.RateLimited == nil {
		p.RateLimited = map[string]int{}
	}
	if p.Models == nil {
		p.Models = []ModelSummary{}
	}
	for i := range p.Models {
		if p.Models[i].RateLimited == nil {
			p.Models[i].RateLimited = map[string]int{}
		}
	}
	return json.Marshal(struct {
		plain
		ElapsedSeconds float64 `json:"elapsed_seconds"`
		ActiveSeconds  float64 `json:"active_seconds"`
	}{p, round3(s.Elapsed.Seconds()), round3(s.Active.Seconds())})
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// WriteJSON writes the summary as one JSON document and a newline.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteTable writes the summary for people (tty) or as tab-separated
// "key\tvalue" rows with raw numbers for scripts (!tty).
func (s *Summary) WriteTable(w io.Writer, tty bool) error {
	type row struct{ k, v string }
	var rows []row
	add := func(k, format string, a ...any) { rows = append(rows, row{k, fmt.Sprintf(format, a...)}) }
	add("requests", "%d", s.Requests)
	if s.Invalid > 0 {
		add("invalid (skipped)", "%d", s.Invalid)
	}
	if s.Skipped > 0 {
		add("already done (skipped)", "%d", s.Skipped)
	}
	add("sent", "%d", s.Sent)
	add("succeeded", "%d", s.Succeeded)
	add("failed", "%d", s.Failed)
	for _, k := range sortedKeys(s.FailedByKind) {
		add("  failed: "+k, "%d", s.FailedByKind[k])
	}
	if s.Unsent > 0 {
		add("not sent (resumable)", "%d", s.Unsent)
	}
	if s.Abandoned > 0 {
		add("abandoned in flight (resent on rerun)", "%d", s.Abandoned)
	}
	// NoResult counts the not-sent and abandoned requests too: for people,
	// list only the rest, so that after Ctrl-C no request is listed twice;
	// the tab-separated rows keep no_result_yet (a contract for scripts).
	if stopped := s.NoResult - s.Unsent - s.Abandoned; tty && stopped > 0 {
		add("sent, stopped before a final answer (resumable)", "%d", stopped)
	} else if !tty && s.NoResult > 0 {
		add("no result yet (resumable)", "%d", s.NoResult)
	}
	if s.SkippedFailed > 0 {
		add("recorded failures (skipped)", "%d", s.SkippedFailed)
	}
	if s.QuotaErrors > 0 {
		add("quota/billing errors", "%d", s.QuotaErrors)
	}
	add("retries", "%d", s.Retries)
	total429 := 0
	for _, v := range s.RateLimited {
		total429 += v
	}
	add("429s", "%d", total429)
	for _, k := range sortedKeys(s.RateLimited) {
		add("  429s: "+k, "%d", s.RateLimited[k])
	}
	for _, m := range s.Models {
		if m.RPMLimit > 0 {
			add(m.Model+" RPM", "%.0f of %d (%.1f%%)%s", m.AchievedRPM, m.RPMLimit, m.RPMPercent, overNote(m.RPMPercent, tty))
		} else {
			add(m.Model+" RPM", "%.0f", m.AchievedRPM)
		}
		if m.TPMLimit > 0 {
			add(m.Model+" TPM", "%.0f of %d (%.1f%%)%s", m.AchievedTPM, m.TPMLimit, m.TPMPercent, overNote(m.TPMPercent, tty))
		} else {
			add(m.Model+" TPM", "%.0f", m.AchievedTPM)
		}
	}
	if sc := s.ServerCharge; sc.Samples > 0 {
		v := fmt.Sprintf("the server charged %.2f× oairl's estimate on %d requests", sc.Ratio, sc.Samples)
		if sc.Followed {
			v += " (steady: pacing followed it)"
		}
		add("server TPM charge", "%s", v)
	}
	add("tokens used", "%d prompt + %d completion", s.PromptTokens, s.CompletionTokens)
	add("cost (USD)", "%.4f", s.CostUSD)
	add("time", "%s", s.Elapsed.Round(time.Millisecond))
	if s.StopReason != "" {
		add("stopped", "%s", s.StopReason)
	}
	if !tty {
		for _, r := range rows {
			k := strings.TrimSpace(strings.ReplaceAll(r.k, ":", ""))
			if _, err := fmt.Fprintf(w, "%s\t%s\n", strings.ReplaceAll(k, " ", "_"), r.v); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r.k, r.v)
	}
	return tw.Flush()
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// overNote explains an achieved rate above the limit: the server's bucket
// starts full, so a run can carry one bucket on top of the per-minute refill,
// and the two clocks (ours, the server's) differ by network latency. For
// people only: the tab-separated value keeps its shape for scripts.
func overNote(pct float64, tty bool) string {
	if pct <= 100 || !tty {
		return ""
	}
	return " — above the limit: the server's bucket starts full, so a short run can send a bucket on top of the refill"
}

package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"

	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/humanize"
	"github.com/oairl/oairl/internal/input"
	"github.com/oairl/oairl/internal/iostreams"
	"github.com/oairl/oairl/internal/models"
	"github.com/oairl/oairl/tokens"
)

// CountOptions holds the dependencies and flag values of 'oairl count'.
type CountOptions struct {
	IO       *iostreams.IOStreams
	Registry func() (*models.Registry, error)
	Getenv   func(string) string

	Files        []string
	Model        string // --model: for lines whose body names none
	Encoding     string // --encoding: overrides every model's encoding
	AssumeOutput int64  // --assume-output: tokens assumed when a line sets no output budget
	Tier         string // --tier: "free", "1".."5"
	RPM          int64  // --rpm: requests per minute
	TPM          int64  // --tpm: tokens per minute
	Format       string // table, json, jsonl
	Strict       bool   // warnings fail too (exit 3)
	MaxProblems  int    // problems listed; 0 = all
	Workers      int    // counting goroutines (0 = all cores)
}

// countMemoryLimit is the Go runtime's soft memory limit during count
// (bytes; runtime/debug.SetMemoryLimit): the GC works harder near it, and
// never fails because of it.
const countMemoryLimit = 64 << 20

// countFormats are the values --format accepts.
var countFormats = []string{"table", "json", "jsonl"}

// countEncodings are the values --encoding accepts (the encodings embedded
// by pkoukk/tiktoken-go-loader).
var countEncodings = []string{"o200k_base", "cl100k_base", "p50k_base", "r50k_base"}

const countLong = `Count the tokens of every request in one or more JSONL files, offline, and
report what the file will cost and which lines the API would reject.

Input: JSONL in the Batch API input format ({"custom_id", "method", "url",
"body"} per line) or bare request bodies ({"model", "messages", ...}; their
custom_id is "line-N" in the first file and "BASE:line-N" in later ones,
BASE the file name, and they take part in the duplicate check; the
endpoint is inferred from the body, and one file holds one endpoint). Several
files are read in order; "-" is standard input (once); gzip data is read
transparently (a gzip file not named .gz is a warning). A file that cannot
be read is reported (unreadable_file) and the others are still counted.
Line numbers are physical lines of the file as written. A model not in the
registry has unknown cost and limits: a warning, never $0.

For each model: requests, prompt tokens (what the API reports as
usage.prompt_tokens), output budget (max_completion_tokens, max_tokens or
max_output_tokens times n; --assume-output tokens for a line that sets none),
TPM charge (prompt + output budget: what the rate limiter reserves), and the
cost at standard and Batch API prices in USD (counting the whole output
budget as output, an upper bound). With --tier, or --rpm/--tpm, also the
minutes of quota the file needs: per model, TPM charge / TPM and requests /
RPM, the larger binds; models have separate limits, so the file needs the
largest per-model figure. Models in one shared-limit group (the registry's
shared_limit_groups: one pool of buckets for several model names) are
counted together against the pool's limits.

Output
  On a terminal: a table per model, with totals, then the problems on stderr
  (the first --max-problems, then "... and N more"), each as
      FILE:LINE: custom_id "X": message [code]
  Piped: the same rows tab-separated, no header, raw integers; the last row
  is "total". Columns: model, encoding, requests, prompt_tokens,
  output_budget, tpm_charge, cost_standard_usd, cost_batch_usd, and with
  limits quota_minutes. An unknown cost or quota is an empty cell (on a
  terminal "?" and "—"); control characters in a cell are escaped (\t, \n,
  \u{200B}), so each row is one line of the same columns.

  --format json (--json): one document:
    schema_version        1 (fields are only ever added)
    requests, valid_requests, prompt_tokens, output_budget, tpm_charge
                          integers (tokens), totals over every request
    cost_usd              {standard, batch} in USD (models with unknown
                          prices left out; an assumption says so)
    by_model[]            {model, encoding, requests, prompt_tokens,
                          output_budget, tpm_charge, cost_usd{standard,batch}
                          (both null for a model not in the registry),
                          quota{rpm, tpm, minutes, binding, long_context,
                          shared_limit_group, note} (with limits)}; under
                          --tier, rpm/tpm are
                          the standard bucket, long_context {rpm, tpm,
                          minutes, binding} the bucket of prompts above the
                          model's long-context threshold (gpt-4.1: >128k),
                          binding "tpm", "rpm" or "long_context_tpm"/_rpm;
                          minutes null and note set when no limits are known
    quota                 {tier, minutes} with --tier, {tier, rpm, tpm,
                          minutes} with --rpm/--tpm (minutes: the largest
                          per-model figure)
    problems[]            {file, line, custom_id, severity, code, message};
                          file-level findings anchored to a line carry it
                          (bom 1, crlf/blank_lines the first such line,
                          over_batch_requests the 50,001st request), the
                          others line 0
    problems_total, errors, warnings   integers
    problems_by_code      {code: count}
    assumptions[]         strings: every assumption behind the figures
  --format jsonl: one object per request, in input order:
    {file, line, custom_id, model, encoding, endpoint, prompt_tokens,
    output_budget, n, tpm_charge, estimated, budget_assumed, valid,
    problems[{severity, code, message}]}; file-level problems go to stderr.

Problems (severity, code)
` + "%s" + `

With --tier, a prompt above a model's long-context threshold is checked
against (and its quota and Batch queue counted in) the long-context limits.

Exit codes: 0 no errors (warnings alone are fine), 3 some line has an error
(the API would reject it; everything countable is still counted and
printed), or under --strict some warning too, 1 a file cannot be read (the
others are still checked; 3 wins over 1), 2 bad flags. See 'oairl help
exit-codes'.`

func newCountCmd(f *Factory, runF func(*CountOptions) error) *cobra.Command {
	opts := &CountOptions{IO: f.IOStreams, Registry: f.Registry, Getenv: f.Getenv}
	c := &cobra.Command{
		Use:   "count FILE... [flags]",
		Short: "Count tokens, TPM charge and cost of a JSONL request file, and find the lines the API would reject",
		Long:  fmt.Sprintf(countLong, problemCodesHelp()),
		Example: `  oairl count requests.jsonl
  oairl count batch.jsonl --tier 1
  oairl count --format json batch.jsonl > report.json     # CI gate: exit 3 on errors
  zcat big.jsonl.gz | oairl count - --format jsonl`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Files = args
			stdin := 0
			for _, a := range args {
				if a == "-" {
					stdin++
				}
			}
			if stdin > 1 {
				return FlagErrorf(`"-" (standard input) can be given only once`)
			}
			if opts.Encoding != "" && !contains(countEncodings, opts.Encoding) {
				return FlagErrorf("invalid --encoding %q: valid encodings are %s", opts.Encoding, strings.Join(countEncodings, ", "))
			}
			if opts.AssumeOutput < 0 || opts.RPM < 0 || opts.TPM < 0 || opts.MaxProblems < 0 {
				return FlagErrorf("--assume-output, --rpm, --tpm and --max-problems must not be negative")
			}
			if opts.Tier != "" && (opts.RPM > 0 || opts.TPM > 0) {
				return FlagErrorf("--tier and --rpm/--tpm cannot be combined: give a tier or your own limits")
			}
			if opts.Tier == "" && opts.RPM == 0 && opts.TPM == 0 && opts.Getenv != nil {
				opts.Tier = opts.Getenv("OAIRL_TIER")
			}
			if opts.Tier != "" {
				t, ok := normalizeTier(strings.TrimSpace(opts.Tier))
				if !ok {
					return FlagErrorf("invalid --tier %q: valid tiers are free, 1, 2, 3, 4, 5, project (limits pulled by 'oairl limits pull')", opts.Tier)
				}
				opts.Tier = t
			}
			if err := usePulledLimits(f, &opts.Tier, opts.RPM > 0 || opts.TPM > 0); err != nil {
				return err
			}
			if !c.Flags().Changed("max-problems") && opts.Format == "json" {
				opts.MaxProblems = 1000
			}
			if runF != nil {
				return runF(opts)
			}
			return countRun(c, opts)
		},
	}
	fl := c.Flags()
	fl.StringVar(&opts.Model, "model", "", "model for lines whose body names none (it is inserted into those bodies)")
	fl.StringVar(&opts.Encoding, "encoding", "", "count every line with this encoding: "+strings.Join(countEncodings, ", "))
	fl.Int64Var(&opts.AssumeOutput, "assume-output", 1024, "output budget assumed for a line that sets no max_completion_tokens/max_tokens/max_output_tokens (tokens)")
	fl.StringVar(&opts.Tier, "tier", "", "usage tier whose published limits to check against: free, 1-5 (env OAIRL_TIER)")
	_ = c.RegisterFlagCompletionFunc("tier", noFiles(tierValues...))
	_ = c.RegisterFlagCompletionFunc("encoding", noFiles(countEncodings...))
	_ = c.RegisterFlagCompletionFunc("model", completeModels(f))
	fl.Int64Var(&opts.RPM, "rpm", 0, "your requests-per-minute limit (instead of --tier)")
	fl.Int64Var(&opts.TPM, "tpm", 0, "your tokens-per-minute limit (instead of --tier); a request whose TPM charge exceeds it is an error")
	addFormatFlags(f, c, &opts.Format, "output format: table, json, jsonl", countFormats...)
	fl.BoolVar(&opts.Strict, "strict", false, "exit 3 on warnings too")
	fl.IntVar(&opts.MaxProblems, "max-problems", 20, "problems to list, 0 for all (--format json: 1000 unless given)")
	fl.IntVar(&opts.Workers, "workers", 0, "counting goroutines (default: one per core)")
	_ = fl.MarkHidden("workers")
	return c
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// problemCodesHelp lists every problem code for the Long help: the
// line-level ones of package input with a summary, then the body-level ones
// of package tokens.
func problemCodesHelp() string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, c := range input.Codes {
		seen[c.Code] = true
		fmt.Fprintf(&b, "  %-8s %-29s %s\n", c.Severity, c.Code, c.Summary)
	}
	b.WriteString("  Request bodies (package tokens):\n")
	for _, sev := range []tokens.Severity{tokens.Error, tokens.Warning, tokens.Note} {
		var codes []string
		for c, s := range tokens.CodeSeverity {
			if s == sev && !seen[c] {
				codes = append(codes, c)
			}
		}
		sort.Strings(codes)
		for _, c := range codes {
			fmt.Fprintf(&b, "  %-8s %s\n", sev, c)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// modelTotals accumulates one model's figures.
type modelTotals struct {
	Model        string
	Encoding     string
	Requests     int64
	PromptTokens int64
	OutputBudget int64 // Σ output budget × n
	TPMCharge    int64
	CostStandard float64
	CostBatch    float64
	res          models.Resolution
	// LCRequests and LCTPMCharge are the part of Requests and TPMCharge
	// whose prompt is above the model's long-context threshold
	// (models.Model.LongContextThreshold): they draw on the model's
	// separate long-context rate-limit bucket.
	LCRequests  int64
	LCTPMCharge int64
	// CostUnknown is true when some request's model has no registry
	// entry, so its cost is unknown (shown as "?" / null, never $0).
	CostUnknown bool
	// UnknownCostRequests counts those requests (their cost is left out
	// of the totals, and an assumption says so).
	UnknownCostRequests int64
}

// fileModel keys the per-file, per-model TPM charge for the enqueued check;
// lc is the model's long-context bucket (a separate Batch queue limit).
type fileModel struct {
	file, model string
	lc          bool
}

// problemSet keeps the first problems of each severity (bounded memory)
// and counts all of them.
type problemSet struct {
	limit  int
	kept   map[input.Severity][]input.Problem
	total  int
	bySev  map[input.Severity]int
	byCode map[string]int
}

func newProblemSet(limit int) *problemSet {
	return &problemSet{limit: limit, kept: map[input.Severity][]input.Problem{}, bySev: map[input.Severity]int{}, byCode: map[string]int{}}
}

// keepPerCode is how many warnings or notes of one code the kept list
// holds before it folds the rest into a count (errors are never folded).
const keepPerCode = 3

func (s *problemSet) add(p input.Problem) {
	s.total++
	s.bySev[p.Severity]++
	s.byCode[p.Code]++
	if s.limit == 0 || len(s.kept[p.Severity]) < s.limit*4 {
		s.kept[p.Severity] = append(s.kept[p.Severity], p)
	}
}

// list returns at most limit problems (0: all), errors first, then
// warnings, then notes, sorted by file (in argument order) and line. With
// fold, warnings and notes after the first keepPerCode of a code are left
// out (the summary line counts them).
func (s *problemSet) list(files []string, fold bool) []input.Problem {
	var out []input.Problem
	perCode := map[string]int{}
	for _, sev := range []input.Severity{tokens.Error, tokens.Warning, tokens.Note} {
		for _, p := range s.kept[sev] {
			if s.limit > 0 && len(out) >= s.limit {
				break
			}
			if fold && sev != tokens.Error && perCode[p.Code] >= keepPerCode {
				continue
			}
			perCode[p.Code]++
			out = append(out, p)
		}
	}
	idx := map[string]int{}
	for i, f := range files {
		if _, ok := idx[f]; !ok {
			idx[f] = i
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if idx[out[i].File] != idx[out[j].File] {
			return idx[out[i].File] < idx[out[j].File]
		}
		return out[i].Line < out[j].Line
	})
	return out
}

// hidden returns "code ×n" for the problems list left out, most first.
func (s *problemSet) hidden(shown []input.Problem) []string {
	left := map[string]int{}
	for c, n := range s.byCode {
		left[c] = n
	}
	for _, p := range shown {
		left[p.Code]--
	}
	var codes []string
	for c, n := range left {
		if n > 0 {
			codes = append(codes, c)
		}
	}
	sort.Slice(codes, func(i, j int) bool {
		if left[codes[i]] != left[codes[j]] {
			return left[codes[i]] > left[codes[j]]
		}
		return codes[i] < codes[j]
	})
	out := make([]string, len(codes))
	for i, c := range codes {
		out[i] = fmt.Sprintf("%s ×%s", c, input.Thousands(int64(left[c])))
	}
	return out
}

func countRun(c *cobra.Command, opts *CountOptions) error {
	reg, err := opts.Registry()
	if err != nil {
		return err
	}
	counter := tokens.NewCounter(tokens.Options{Registry: reg, AssumeOutput: opts.AssumeOutput, Encoding: opts.Encoding})
	ios := opts.IO
	// Lines of tens of MB (data-URL images) would otherwise let the heap
	// grow to twice what is live before the GC runs: a soft limit keeps
	// peak RSS near what is really in use (input bounds that to about two
	// lines). Not when the user set GOMEMLIMIT.
	if opts.Getenv == nil || opts.Getenv("GOMEMLIMIT") == "" {
		prev := debug.SetMemoryLimit(countMemoryLimit)
		defer debug.SetMemoryLimit(prev)
	}

	var size int64
	for _, f := range opts.Files {
		if st, err := os.Stat(f); err == nil {
			size += st.Size()
		}
	}
	var bar *iostreams.Progress
	var last int64
	progress := func(n int64) {
		if bar == nil {
			if size < 4<<20 {
				bar = &iostreams.Progress{}
			} else {
				bar = ios.NewBytesBar(size, "counting")
			}
		}
		bar.Add(n - last)
		last = n
	}

	sources := make([]input.Source, len(opts.Files))
	for i, f := range opts.Files {
		sources[i] = input.Source{Name: f}
	}
	iopts := input.Options{
		Registry: reg, Counter: counter, Model: opts.Model, Workers: opts.Workers,
		Stdin: ios.In, Progress: progress, KeepGoing: true,
	}
	if opts.TPM > 0 {
		iopts.TPMLimit, iopts.TPMLimitName = opts.TPM, "--tpm"
	} else if opts.Tier != "" {
		iopts.Tier = opts.Tier
	}

	var out *bufio.Writer
	var enc *json.Encoder
	if opts.Format == "jsonl" {
		out = bufio.NewWriterSize(ios.Out, 64<<10)
		enc = json.NewEncoder(out)
		enc.SetEscapeHTML(false)
	}

	byModel := map[string]*modelTotals{}
	var order []string
	perFile := map[fileModel]int64{}
	probs := newProblemSet(opts.MaxProblems)
	var assumed, estimated, flex int64
	var total modelTotals

	sum, scanErr := input.Scan(c.Context(), sources, iopts, func(r *input.Request) error {
		for _, p := range r.Problems {
			probs.add(p)
		}
		cnt := r.Count
		if cnt.BudgetAssumed {
			assumed++
		}
		if cnt.Estimated {
			estimated++
		}
		n := cnt.N
		if n < 1 {
			n = 1
		}
		outBudget := cnt.OutputBudget * n
		mt := byModel[r.Model]
		if mt == nil {
			mt = &modelTotals{Model: r.Model, Encoding: cnt.Encoding, res: r.Resolution}
			if mt.Encoding == "" {
				mt.Encoding = r.Resolution.Encoding
			}
			byModel[r.Model] = mt
			order = append(order, r.Model)
		}
		std, batch := 0.0, 0.0
		if r.Resolution.Model != nil {
			std, batch = tokens.Cost(r.Resolution.Model, cnt.PromptTokens, outBudget)
			if cnt.ServiceTier == "flex" {
				// Flex processing is billed at Batch API rates (OpenAI flex
				// processing guide), so its synchronous price is the batch one.
				std = batch
				flex++
			}
		}
		lc := false
		if m := r.Resolution.Model; m != nil {
			if th := m.LongContextThreshold(); th > 0 && cnt.PromptTokens > th {
				lc = true
			}
		}
		for _, t := range []*modelTotals{mt, &total} {
			t.Requests++
			t.PromptTokens += cnt.PromptTokens
			t.OutputBudget += outBudget
			t.TPMCharge += cnt.TPMCharge
			t.CostStandard += std
			t.CostBatch += batch
			if lc {
				t.LCRequests++
				t.LCTPMCharge += cnt.TPMCharge
			}
			if r.Resolution.Model == nil && r.Model != "" {
				t.CostUnknown = true
				t.UnknownCostRequests++
			}
		}
		if r.Model != "" {
			perFile[fileModel{r.File, r.Model, lc}] += cnt.TPMCharge
		}
		if enc != nil {
			return enc.Encode(requestJSON(r))
		}
		return nil
	})
	bar.Finish()
	if out != nil {
		if err := out.Flush(); err != nil {
			return err
		}
	}
	if scanErr != nil {
		if errors.Is(scanErr, context.Canceled) {
			return exitcode.New(exitcode.Interrupted, errors.New("interrupted"))
		}
		return scanErr
	}
	for _, p := range sum.FileProblems {
		probs.add(p)
	}
	// The Batch API's enqueued-token limit, per file (one batch) and model.
	if opts.Tier != "" {
		keys := make([]fileModel, 0, len(perFile))
		for k := range perFile {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].file != keys[j].file {
				return keys[i].file < keys[j].file
			}
			if keys[i].model != keys[j].model {
				return keys[i].model < keys[j].model
			}
			return !keys[i].lc && keys[j].lc
		})
		for _, k := range keys {
			mt := byModel[k.model]
			if mt == nil || mt.res.Model == nil {
				continue
			}
			l, ok := mt.res.Model.TierLimits(opts.Tier)
			name := "tier " + opts.Tier
			if k.lc {
				l, _, ok = mt.res.Model.LimitsFor(opts.Tier, mt.res.Model.LongContextThreshold()+1)
				name = "tier " + opts.Tier + " long-context (" + mt.res.Model.LongContext.AppliesWhen + ")"
			}
			if !ok {
				continue
			}
			if p, over := input.CheckEnqueued(k.file, k.model, perFile[k], l.BatchQueueTokens, name); over {
				probs.add(p)
			}
		}
	}

	// Most requests first; lines without a model last.
	sort.SliceStable(order, func(i, j int) bool {
		a, b := byModel[order[i]], byModel[order[j]]
		if (a.Model == "") != (b.Model == "") {
			return b.Model == ""
		}
		return a.Requests > b.Requests
	})
	rep := countReport{opts: opts, sum: sum, total: total, probs: probs, reg: reg}
	for _, m := range order {
		rep.models = append(rep.models, byModel[m])
	}
	rep.assumptions = countAssumptions(opts, assumed, estimated, total.UnknownCostRequests)
	if flex > 0 {
		rep.assumptions = append(rep.assumptions, fmt.Sprintf("%s with service_tier \"flex\" priced at Batch API rates in the standard column too (flex processing is billed at Batch prices; OpenAI flex processing guide)", pluralize(flex, "request", "requests")))
	}
	for _, n := range rep.quotaNotes() {
		rep.assumptions = append(rep.assumptions, "quota: "+n)
	}

	switch opts.Format {
	case "json":
		err = rep.writeJSON(ios.Out)
	case "jsonl":
		err = rep.writeProblems(ios.ErrOut)
	default:
		if ios.IsStdoutTTY() {
			err = rep.writeTable(ios.Out, ios.TermWidth())
		} else {
			err = rep.writeTSV(ios.Out)
		}
		if err == nil {
			err = rep.writeProblems(ios.ErrOut)
		}
	}
	if err != nil {
		return err
	}
	errs, warns := probs.bySev[tokens.Error], probs.bySev[tokens.Warning]
	unreadable := probs.byCode["unreadable_file"]
	errs -= unreadable
	var msgs []string
	code := exitcode.OK
	if unreadable > 0 {
		code = exitcode.Failure
		msgs = append(msgs, fmt.Sprintf("%s could not be read", pluralize(int64(unreadable), "file", "files")))
	}
	switch {
	case errs > 0:
		code = exitcode.Worst(code, exitcode.Input)
		what := pluralize(int64(countInvalid(sum)), "request", "requests") + " the API would reject"
		if countInvalid(sum) == 0 {
			// A file-level error (an empty file, a wrong format): no
			// request to blame, the file itself is what is rejected.
			what = "the API would reject the file"
		}
		msgs = append(msgs, fmt.Sprintf("%s (%s, %s)",
			what, pluralize(int64(errs), "error", "errors"), pluralize(int64(warns), "warning", "warnings")))
	case opts.Strict && warns > 0:
		code = exitcode.Worst(code, exitcode.Input)
		msgs = append(msgs, fmt.Sprintf("%s (--strict)", pluralize(int64(warns), "warning", "warnings")))
	}
	if code != exitcode.OK {
		return exitcode.New(code, errors.New(strings.Join(msgs, "; ")))
	}
	return nil
}

func countInvalid(s input.Summary) int { return s.Requests - s.Valid }

func pluralize(n int64, one, many string) string { return humanize.Count(n, one, many) }

// countAssumptions states every assumption behind the figures.
func countAssumptions(opts *CountOptions, assumed, estimated, unknownCost int64) []string {
	var a []string
	if assumed > 0 {
		verb, each := "sets", "it"
		if assumed > 1 {
			verb, each = "set", "each"
		}
		a = append(a, fmt.Sprintf("output budget: %s %s no max_completion_tokens, max_tokens or max_output_tokens; %s tokens assumed for %s (--assume-output)",
			pluralize(assumed, "request", "requests"), verb, input.Thousands(opts.AssumeOutput), each))
	}
	if estimated > 0 {
		a = append(a, fmt.Sprintf("%s estimated rather than exact (remote images, tool definitions, or a model whose encoding is assumed); see README", pluralize(estimated, "request is", "requests are")))
	}
	if opts.Encoding != "" {
		a = append(a, fmt.Sprintf("every request counted with %s (--encoding)", opts.Encoding))
	}
	a = append(a, "cost counts the whole output budget as output tokens (an upper bound); Batch prices are 50% of standard (OpenAI pricing)")
	if unknownCost > 0 {
		a = append(a, fmt.Sprintf("cost unknown for %s of models not in the registry (shown as ?/null); the totals leave them out", pluralize(unknownCost, "request", "requests")))
	}
	switch {
	case opts.Tier != "":
		a = append(a, fmt.Sprintf("quota: the published tier %s limits of each model (your organization's limits may differ: see its x-ratelimit-limit-* headers); minutes = max(TPM charge / TPM, requests / RPM) per model, models run side by side", opts.Tier))
	case opts.RPM > 0 || opts.TPM > 0:
		a = append(a, "quota: --rpm/--tpm apply to each model separately; minutes = max(TPM charge / TPM, requests / RPM) per model, models run side by side")
	}
	return a
}

// countReport renders the results.
type countReport struct {
	opts        *CountOptions
	sum         input.Summary
	models      []*modelTotals
	total       modelTotals
	probs       *problemSet
	assumptions []string
	reg         *models.Registry
}

// quota is the minutes of quota one model's requests need. Under --tier,
// RPM and TPM are the model's published standard limits at that tier;
// requests whose prompt is above the model's long-context threshold are
// charged to its separate long-context bucket (LongContext), and Minutes
// is the larger of the two. Note says why limits are missing (a model not
// in the registry, or none published at the tier); Minutes is then nil.
type quota struct {
	RPM         int64    `json:"rpm"`
	TPM         int64    `json:"tpm"`
	Minutes     *float64 `json:"minutes"`
	Binding     string   `json:"binding,omitempty"` // "tpm" or "rpm"
	LongContext *quota   `json:"long_context,omitempty"`
	// Group is the shared-limit group whose one pool of buckets the model
	// shares with the other models of the file in it; the minutes are then
	// the pool's (all its members' requests together).
	Group string `json:"shared_limit_group,omitempty"`
	Note  string `json:"note,omitempty"`
}

func (r *countReport) hasLimits() bool {
	return r.opts.Tier != "" || r.opts.RPM > 0 || r.opts.TPM > 0
}

// bucketMinutes fills q.Minutes and q.Binding for requests and charge
// (tokens) against q.RPM and q.TPM.
func bucketMinutes(q *quota, requests, charge int64) {
	var best float64
	known := false
	if q.TPM > 0 {
		best, q.Binding, known = float64(charge)/float64(q.TPM), "tpm", true
	}
	if q.RPM > 0 {
		if v := float64(requests) / float64(q.RPM); !known || v > best {
			best, q.Binding = v, "rpm"
		}
		known = true
	}
	if known {
		v := round(best, 4)
		q.Minutes = &v
	}
}

func (r *countReport) quotaFor(m *modelTotals) quota {
	if g := r.groupOf(m); g != "" {
		return r.groupQuota(g)
	}
	q := quota{RPM: r.opts.RPM, TPM: r.opts.TPM}
	if r.opts.Tier == "" {
		bucketMinutes(&q, m.Requests, m.TPMCharge)
		return q
	}
	q = quota{}
	mod := m.res.Model
	if mod == nil {
		if m.Model == "" {
			q.Note = "no model: no limits known"
		} else {
			q.Note = fmt.Sprintf("unknown model %s: no published limits", m.Model)
		}
		return q
	}
	l, ok := mod.TierLimits(r.opts.Tier)
	if !ok {
		q.Note = fmt.Sprintf("no published tier %s limits for %s", r.opts.Tier, mod.ID)
	}
	q.RPM, q.TPM = l.RPM, l.TPM
	bucketMinutes(&q, m.Requests-m.LCRequests, m.TPMCharge-m.LCTPMCharge)
	if m.LCRequests > 0 {
		lq := quota{}
		if ll, lc, ok := mod.LimitsFor(r.opts.Tier, mod.LongContextThreshold()+1); ok && lc {
			lq.RPM, lq.TPM = ll.RPM, ll.TPM
		} else {
			lq.Note = fmt.Sprintf("no published tier %s long-context limits for %s", r.opts.Tier, mod.ID)
		}
		bucketMinutes(&lq, m.LCRequests, m.LCTPMCharge)
		if lq.Minutes != nil && (q.Minutes == nil || *lq.Minutes > *q.Minutes) {
			v := *lq.Minutes
			q.Minutes = &v
			q.Binding = "long_context_" + lq.Binding
		}
		q.LongContext = &lq
	}
	return q
}

// groupOf returns the shared-limit group of m when the registry puts m in
// one (models.Registry.LimitKey), else "".
func (r *countReport) groupOf(m *modelTotals) string {
	if r.reg == nil || m.Model == "" {
		return ""
	}
	if g := r.reg.Group(m.Model); g != nil {
		return g.ID
	}
	return ""
}

// groupQuota is the quota of a shared-limit pool: every model of the
// file in group g charges the same RPM and TPM buckets, so their
// requests and TPM charges add up (long-context prompts included: no
// group has a separate long-context bucket).
func (r *countReport) groupQuota(g string) quota {
	q := quota{RPM: r.opts.RPM, TPM: r.opts.TPM, Group: g}
	var reqs, charge int64
	for _, o := range r.models {
		if r.groupOf(o) == g {
			reqs += o.Requests
			charge += o.TPMCharge
		}
	}
	if r.opts.Tier != "" {
		l, ok := r.reg.KeyLimits(g, r.opts.Tier)
		if !ok {
			q.Note = fmt.Sprintf("no published tier %s limits for shared limit %s", r.opts.Tier, g)
		}
		q.RPM, q.TPM = l.RPM, l.TPM
	}
	bucketMinutes(&q, reqs, charge)
	return q
}

// totalMinutes is the largest per-model figure (models have separate
// limits, so they run side by side); nil when no model's limits are known.
func (r *countReport) totalMinutes() *float64 {
	var out *float64
	for _, m := range r.models {
		if q := r.quotaFor(m); q.Minutes != nil && (out == nil || *q.Minutes > *out) {
			v := *q.Minutes
			out = &v
		}
	}
	return out
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

func modelName(m string) string {
	if m == "" {
		return "(none)"
	}
	return m
}

// countLayouts are the table's layouts, widest first: full headers; short
// headers; short headers without the encoding column; then without the
// Batch price too (MIN is the quota minutes, REQS the requests). writeTable uses the first that fits the terminal.
var countLayouts = []struct {
	header                []string
	encoding, batchColumn bool
}{
	{[]string{"MODEL", "ENCODING", "REQUESTS", "PROMPT TOKENS", "OUTPUT BUDGET", "TPM CHARGE", "COST USD", "BATCH USD", "QUOTA MIN"}, true, true},
	{[]string{"MODEL", "ENCODING", "REQS", "PROMPT", "OUTPUT", "TPM", "COST $", "BATCH $", "MIN"}, true, true},
	{[]string{"MODEL", "REQS", "PROMPT", "OUTPUT", "TPM", "COST $", "BATCH $", "MIN"}, false, true},
	{[]string{"MODEL", "REQS", "PROMPT", "OUTPUT", "TPM", "COST $", "MIN"}, false, false},
}

func (r *countReport) writeTable(w io.Writer, width int) error {
	// Render each layout until one fits width columns (a table that
	// wraps is unreadable); the narrowest is printed if none does.
	var out bytes.Buffer
	for _, l := range countLayouts {
		out.Reset()
		if err := r.renderTable(&out, l.header, l.encoding, l.batchColumn); err != nil {
			return err
		}
		if tableWidth(out.String()) <= width {
			break
		}
	}
	if _, err := w.Write(out.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s, %s valid", pluralize(int64(r.sum.Requests), "request", "requests"), input.Thousands(int64(r.sum.Valid)))
	if r.hasLimits() {
		if m := r.totalMinutes(); m != nil {
			fmt.Fprintf(w, "; needs %s minutes of quota at %s", minutesText(*m), r.limitName())
			if len(r.quotaNotes()) > 0 {
				fmt.Fprint(w, " (for the models whose limits are known)")
			}
		}
	}
	fmt.Fprintln(w, ".")
	for _, a := range r.assumptions {
		fmt.Fprintf(w, "  * %s\n", a)
	}
	return nil
}

// tableWidth is the widest line of s in terminal columns (runes).
func tableWidth(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		n = max(n, utf8.RuneCountInString(strings.TrimRight(l, " ")))
	}
	return n
}

func (r *countReport) renderTable(w io.Writer, header []string, encoding, batchColumn bool) error {
	if !r.hasLimits() {
		header = header[:len(header)-1]
	}
	align := make([]tw.Align, len(header))
	for i := range align {
		align[i] = tw.AlignRight
	}
	align[0] = tw.AlignLeft
	if encoding {
		align[1] = tw.AlignLeft
	}
	t := newTable(w, header, align, true)
	row := func(m *modelTotals, name, enc string, minutes *float64) []string {
		cells := []string{name}
		if encoding {
			cells = append(cells, enc)
		}
		cells = append(cells, input.Thousands(m.Requests), input.Thousands(m.PromptTokens),
			input.Thousands(m.OutputBudget), input.Thousands(m.TPMCharge), costCell(m, m.CostStandard, name == "TOTAL"))
		if batchColumn {
			cells = append(cells, costCell(m, m.CostBatch, name == "TOTAL"))
		}
		if r.hasLimits() {
			if minutes == nil {
				cells = append(cells, "—")
			} else {
				cells = append(cells, minutesText(*minutes))
			}
		}
		return cells
	}
	for _, m := range r.models {
		if err := t.Append(row(m, tsvCell(modelName(m.Model)), tsvCell(m.Encoding), r.quotaFor(m).Minutes)); err != nil {
			return err
		}
	}
	t.Footer(row(&r.total, "TOTAL", "", r.totalMinutes()))
	return t.Render()
}

// quotaNotes says why models' quota is unknown (not in the registry, or
// no published limits at the tier), grouped, so that a "—" in the quota
// column or a null minutes is never left unexplained.
func (r *countReport) quotaNotes() []string {
	if r.opts.Tier == "" {
		return nil
	}
	var unpublished, unknown, lcMissing []string
	for _, m := range r.models {
		q := r.quotaFor(m)
		switch {
		case q.Note == "":
		case m.res.Model != nil:
			unpublished = append(unpublished, m.res.Model.ID)
		case m.Model != "":
			unknown = append(unknown, jsonString(m.Model))
		}
		if q.LongContext != nil && q.LongContext.Note != "" {
			lcMissing = append(lcMissing, m.res.Model.ID)
		}
	}
	var out []string
	if len(unpublished) > 0 {
		out = append(out, fmt.Sprintf("no published tier %s limits for %s: quota unknown", r.opts.Tier, strings.Join(dedupe(unpublished), ", ")))
	}
	if len(unknown) > 0 {
		out = append(out, fmt.Sprintf("not in the registry, so no published limits: %s: quota unknown", strings.Join(unknown, ", ")))
	}
	if len(lcMissing) > 0 {
		out = append(out, fmt.Sprintf("no published tier %s long-context limits for %s", r.opts.Tier, strings.Join(dedupe(lcMissing), ", ")))
	}
	return out
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// tsvCell escapes the control characters of a table or TSV cell (a model
// name may hold a tab or newline): \t, \n, \r and \\ as such, any
// other C0/C1 control or Unicode format character as \u{XXXX} — so each row
// stays one line with a fixed number of columns.
func tsvCell(s string) string {
	clean := true
	for _, c := range s {
		if needsEscape(c) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\\':
			b.WriteString(`\\`)
		case needsEscape(c):
			fmt.Fprintf(&b, `\u{%04X}`, c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func needsEscape(c rune) bool {
	return c < 0x20 || c == 0x7f || c == '\\' || (c >= 0x80 && c < 0xa0) || unicode.Is(unicode.Cf, c)
}

// minutesText shows minutes with 2 decimals under 10, else 1.
func minutesText(m float64) string {
	if m < 10 {
		return fmt.Sprintf("%.2f", m)
	}
	return fmt.Sprintf("%s.%d", input.Thousands(int64(m)), int64(m*10)%10)
}

func (r *countReport) limitName() string {
	if r.opts.Tier != "" {
		return "tier " + r.opts.Tier
	}
	var parts []string
	if r.opts.RPM > 0 {
		parts = append(parts, fmt.Sprintf("%s RPM", input.Thousands(r.opts.RPM)))
	}
	if r.opts.TPM > 0 {
		parts = append(parts, fmt.Sprintf("%s TPM", input.Thousands(r.opts.TPM)))
	}
	return strings.Join(parts, " / ")
}

// costCell is a table cost: "?" for a model not in the registry (its
// prices are unknown), "—" for the lines that name no model.
func costCell(m *modelTotals, v float64, total bool) string {
	switch {
	case total:
	case m.CostUnknown:
		return "?"
	case m.res.Model == nil:
		return "—"
	}
	return usd(v, false)
}

// usd formats dollars for people: 4 decimals under $1, else 2.
func usd(v float64, unknown bool) string {
	if unknown {
		return "—"
	}
	v = round(v, 6) // the figure TSV and JSON give, rounded once more
	if v < 1 {
		return fmt.Sprintf("$%.4f", v)
	}
	cents := int64(math.Round(v * 100))
	return fmt.Sprintf("$%s.%02d", input.Thousands(cents/100), cents%100)
}

// usd6 is a cost in USD for TSV: the same rounding to 6 decimals as the
// JSON's (round), printed with all 6, so the two never disagree
// (0.018087 vs 0.018088 when %.6f truncated a binary fraction).
func usd6(v float64) string { return strconv.FormatFloat(round(v, 6), 'f', 6, 64) }

func (r *countReport) writeTSV(w io.Writer) error {
	bw := bufio.NewWriter(w)
	row := func(m *modelTotals, name, encoding string, minutes *float64) {
		fmt.Fprintf(bw, "%s\t%s\t%d\t%d\t%d\t%d", tsvCell(name), tsvCell(encoding), m.Requests, m.PromptTokens, m.OutputBudget, m.TPMCharge)
		if m.CostUnknown && name != "total" {
			fmt.Fprint(bw, "\t\t") // unknown cost: empty cells, never 0
		} else {
			fmt.Fprintf(bw, "\t%s\t%s", usd6(m.CostStandard), usd6(m.CostBatch))
		}
		if r.hasLimits() {
			if minutes != nil {
				fmt.Fprintf(bw, "\t%.2f", *minutes)
			} else {
				fmt.Fprint(bw, "\t")
			}
		}
		fmt.Fprintln(bw)
	}
	for _, m := range r.models {
		row(m, modelName(m.Model), m.Encoding, r.quotaFor(m).Minutes)
	}
	row(&r.total, "total", "", r.totalMinutes())
	return bw.Flush()
}

// writeProblems prints the kept problems, one per line, then a count of
// the rest by code.
func (r *countReport) writeProblems(w io.Writer) error {
	bw := bufio.NewWriter(w)
	// --max-problems 0 lists them all: no folding by code either.
	list := r.probs.list(r.opts.Files, r.opts.MaxProblems > 0)
	for _, p := range list {
		fmt.Fprintln(bw, formatProblem(p))
	}
	if rest := r.probs.total - len(list); rest > 0 && r.opts.MaxProblems > 0 {
		fmt.Fprintf(bw, "… and %s more: %s (--max-problems 0 or --format json lists them all)\n", input.Thousands(int64(rest)),
			strings.Join(r.probs.hidden(list), ", "))
	}
	return bw.Flush()
}

// formatProblem renders FILE:LINE: custom_id "X": message [code]; an
// auto-assigned id (line-N, FILE:line-N) is left out, the line says it.
func formatProblem(p input.Problem) string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.CustomID != "" && !autoID(p.CustomID, p.Line) {
		fmt.Fprintf(&b, "custom_id %s: ", jsonString(p.CustomID))
	}
	if p.Severity == tokens.Warning {
		b.WriteString("warning: ")
	} else if p.Severity == tokens.Note {
		b.WriteString("note: ")
	}
	fmt.Fprintf(&b, "%s [%s]", p.Message, p.Code)
	return b.String()
}

func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// Stable JSON shapes (pinned by TestCountJSONFields).

// costJSON is USD; both null for a model not in the registry (unknown
// prices).
type costJSON struct {
	Standard *float64 `json:"standard"`
	Batch    *float64 `json:"batch"`
}

type modelJSON struct {
	Model        string   `json:"model"`
	Encoding     string   `json:"encoding"`
	Requests     int64    `json:"requests"`
	PromptTokens int64    `json:"prompt_tokens"`
	OutputBudget int64    `json:"output_budget"`
	TPMCharge    int64    `json:"tpm_charge"`
	CostUSD      costJSON `json:"cost_usd"`
	Quota        *quota   `json:"quota,omitempty"`
}

// quotaJSON is the top-level quota: rpm and tpm are the --rpm/--tpm values
// and are omitted under --tier (each model's published limits are in
// by_model[].quota).
type quotaJSON struct {
	Tier    string   `json:"tier"`
	RPM     int64    `json:"rpm,omitempty"`
	TPM     int64    `json:"tpm,omitempty"`
	Minutes *float64 `json:"minutes"`
}

type countJSON struct {
	Requests       int64           `json:"requests"`
	ValidRequests  int64           `json:"valid_requests"`
	PromptTokens   int64           `json:"prompt_tokens"`
	OutputBudget   int64           `json:"output_budget"`
	TPMCharge      int64           `json:"tpm_charge"`
	CostUSD        costJSON        `json:"cost_usd"`
	ByModel        []modelJSON     `json:"by_model"`
	Quota          *quotaJSON      `json:"quota,omitempty"`
	Problems       []input.Problem `json:"problems"`
	ProblemsTotal  int             `json:"problems_total"`
	Errors         int             `json:"errors"`
	Warnings       int             `json:"warnings"`
	ProblemsByCode map[string]int  `json:"problems_by_code"`
	Assumptions    []string        `json:"assumptions"`
}

type problemJSON struct {
	Severity input.Severity `json:"severity"`
	Code     string         `json:"code"`
	Message  string         `json:"message"`
}

type requestLineJSON struct {
	File          string        `json:"file"`
	Line          int           `json:"line"`
	CustomID      string        `json:"custom_id"`
	Model         string        `json:"model"`
	Encoding      string        `json:"encoding"`
	Endpoint      string        `json:"endpoint"`
	PromptTokens  int64         `json:"prompt_tokens"`
	OutputBudget  int64         `json:"output_budget"`
	N             int64         `json:"n"`
	TPMCharge     int64         `json:"tpm_charge"`
	Estimated     bool          `json:"estimated"`
	BudgetAssumed bool          `json:"budget_assumed"`
	Valid         bool          `json:"valid"`
	Problems      []problemJSON `json:"problems"`
}

func requestJSON(r *input.Request) requestLineJSON {
	enc := r.Count.Encoding
	if enc == "" {
		enc = r.Resolution.Encoding
	}
	n := r.Count.N
	if n < 1 {
		n = 1
	}
	out := requestLineJSON{File: r.File, Line: r.Line, CustomID: r.CustomID, Model: r.Model, Encoding: enc,
		Endpoint: r.URL, PromptTokens: r.Count.PromptTokens, OutputBudget: r.Count.OutputBudget, N: n,
		TPMCharge: r.Count.TPMCharge, Estimated: r.Count.Estimated, BudgetAssumed: r.Count.BudgetAssumed,
		Valid: r.Valid(), Problems: []problemJSON{}}
	for _, p := range r.Problems {
		out.Problems = append(out.Problems, problemJSON{p.Severity, p.Code, p.Message})
	}
	return out
}

func (r *countReport) writeJSON(w io.Writer) error {
	cost := func(m *modelTotals) costJSON {
		if m != &r.total && m.CostUnknown {
			return costJSON{}
		}
		s, b := round(m.CostStandard, 6), round(m.CostBatch, 6)
		return costJSON{&s, &b}
	}
	doc := countJSON{
		Requests: int64(r.sum.Requests), ValidRequests: int64(r.sum.Valid),
		PromptTokens: r.total.PromptTokens, OutputBudget: r.total.OutputBudget, TPMCharge: r.total.TPMCharge,
		CostUSD: cost(&r.total), ByModel: []modelJSON{}, Problems: r.probs.list(r.opts.Files, false),
		ProblemsTotal: r.probs.total, Errors: r.probs.bySev[tokens.Error], Warnings: r.probs.bySev[tokens.Warning],
		ProblemsByCode: r.probs.byCode, Assumptions: r.assumptions,
	}
	if doc.Problems == nil {
		doc.Problems = []input.Problem{}
	}
	for _, m := range r.models {
		mj := modelJSON{Model: m.Model, Encoding: m.Encoding, Requests: m.Requests, PromptTokens: m.PromptTokens,
			OutputBudget: m.OutputBudget, TPMCharge: m.TPMCharge, CostUSD: cost(m)}
		if r.hasLimits() {
			q := r.quotaFor(m)
			mj.Quota = &q
		}
		doc.ByModel = append(doc.ByModel, mj)
	}
	if r.hasLimits() {
		doc.Quota = &quotaJSON{Tier: r.opts.Tier, RPM: r.opts.RPM, TPM: r.opts.TPM, Minutes: r.totalMinutes()}
	}
	return writeJSON(w, doc)
}

package cmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"

	"github.com/oairl/oairl/internal/atomicfile"
	"github.com/oairl/oairl/internal/exitcode"
	"github.com/oairl/oairl/internal/humanize"
	"github.com/oairl/oairl/internal/iostreams"
	"github.com/oairl/oairl/internal/limits"
	"github.com/oairl/oairl/internal/models"
)

func newLimitsCmd(f *Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "limits",
		Short: "Read a project's real rate limits from the Admin API",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(newLimitsPullCmd(f))
	return c
}

func newLimitsPullCmd(f *Factory) *cobra.Command {
	var project, output, format string
	c := &cobra.Command{
		Use:   "pull",
		Short: "Fetch the project's real limits and save them for count, run and batch",
		Long: `Fetch the project's real per-model rate limits from the OpenAI Admin API
(GET /v1/organization/projects/{project_id}/rate_limits) and write them to a
limits file. count, run and batch submit then use them instead of the
public tier table (as tier "project") whenever they are given no --tier and
no limits of their own, and say so on stderr.

The request authenticates with an organization admin key from
OPENAI_ADMIN_KEY (platform.openai.com/settings/organization/admin-keys); the
key is never printed or written anywhere. The project is --project, else
OPENAI_PROJECT_ID.

The file is --output, else $OAIRL_LIMITS, else limits.json in the state
directory ($OAIRL_STATE_DIR, $XDG_STATE_HOME/oairl or ~/.local/state/oairl).
It holds {source, base_url, project_id, pulled_at, models[{model,
max_requests_per_1_minute, max_tokens_per_1_minute, max_requests_per_1_day,
batch_1_day_max_input_tokens}]}, field names as the Admin API's. Delete it to
go back to the public tier table.

Stdout: one row per model (model, rpm, tpm, rpd, batch_queue_tokens); a
table on a terminal, tab-separated otherwise. --format json (--json): the
document written to the file, schema_version (1) first: schema_version,
source, base_url, project_id, pulled_at, models[].

Exit codes: 0 written, 4 the key is not an admin key or lacks access, 1
other failures, 2 bad flags.`,
		Example: `  OPENAI_ADMIN_KEY=sk-admin-... oairl limits pull --project proj_abc
  oairl count requests.jsonl      # now checked against the project's real limits`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if project == "" {
				project = f.Getenv("OPENAI_PROJECT_ID")
			}
			if project == "" {
				return FlagErrorf("no project: give --project or set OPENAI_PROJECT_ID")
			}
			if output == "" {
				output = f.LimitsPath()
			}
			cl, err := f.AdminClient()
			if err != nil {
				return err
			}
			p, err := limits.Pull(c.Context(), cl, project, f.Now())
			if err != nil {
				var he *limits.HTTPError
				if errors.As(err, &he) && (he.Status == 401 || he.Status == 403) {
					return exitcode.New(exitcode.Auth, err)
				}
				return err
			}
			if err := os.MkdirAll(filepath.Dir(output), 0o755); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(output, p.WriteJSON); err != nil {
				return fmt.Errorf("writing %s: %w", output, err)
			}
			if format == "json" {
				if err := writeJSON(f.IOStreams.Out, p); err != nil {
					return err
				}
			} else if err := writePulledRows(f.IOStreams, p); err != nil {
				return err
			}
			if !f.IOStreams.Quiet {
				fmt.Fprintf(f.IOStreams.ErrOut, "wrote the limits of %d models of project %s to %s; count, run and batch submit use them unless given --tier or limits\n",
					len(p.Models), project, output)
			}
			return nil
		},
	}
	c.Flags().StringVar(&project, "project", "", "project id (proj_…) whose limits to read (env OPENAI_PROJECT_ID)")
	c.Flags().StringVarP(&output, "output", "o", "", "limits file to write (env OAIRL_LIMITS; default limits.json in the state directory)")
	addFormatFlags(f, c, &format, "output format: table (tab-separated when piped) or json", "table", "json")
	return c
}

func writePulledRows(ios *iostreams.IOStreams, p *models.Pulled) error {
	if !ios.IsStdoutTTY() {
		for _, m := range p.Models {
			if _, err := fmt.Fprintf(ios.Out, "%s\t%d\t%d\t%d\t%d\n", tsvCell(m.Model), m.RPM, m.TPM, m.RPD, m.BatchDayInputTokens); err != nil {
				return err
			}
		}
		return nil
	}
	right := tw.AlignRight
	t := newTable(ios.Out, []string{"MODEL", "RPM", "TPM", "RPD", "BATCH QUEUE"}, []tw.Align{tw.AlignLeft, right, right, right, right}, false)
	num := func(n int64) string {
		if n == 0 {
			return "—"
		}
		return humanize.Int(n)
	}
	for _, m := range p.Models {
		if err := t.Append([]string{m.Model, num(m.RPM), num(m.TPM), num(m.RPD), num(m.BatchDayInputTokens)}); err != nil {
			return err
		}
	}
	return t.Render()
}

// normalizeTier returns a --tier value (or OAIRL_TIER) in canonical form:
// lower case without a "tier" prefix ("Tier1" → "1"), and whether it names
// a known tier: free, 1-5, or models.PulledTier. The caller words the error.
func normalizeTier(tier string) (string, bool) {
	t := strings.TrimPrefix(strings.ToLower(tier), "tier")
	switch t {
	case "free", "1", "2", "3", "4", "5", models.PulledTier:
		return t, true
	}
	return t, false
}

// usePulledLimits sets *tier to models.PulledTier, and says so on stderr,
// when a limits file written by `oairl limits pull` exists and the command
// was given no tier (flag or OAIRL_TIER) and no limits of its own.
func usePulledLimits(f *Factory, tier *string, ownLimits bool) error {
	if *tier != "" || ownLimits {
		return nil
	}
	t, note, err := f.pulledTier()
	if err != nil {
		return err
	}
	if t != "" {
		*tier = t
		if !f.IOStreams.Quiet {
			fmt.Fprintln(f.IOStreams.ErrOut, note)
		}
	}
	return nil
}

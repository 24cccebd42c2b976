package cmd

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// VersionOptions holds the dependencies and flag values of 'oairl version'.
type VersionOptions struct {
	Factory *Factory
	Format  string // --format: table or json
}

const versionLong = `Print oairl's version, the commit it was built from and that commit's
time, and the Go toolchain.

A release build has its version stamped in (-X main.version=...). Otherwise
(go install, go build from a clone) it comes from the build information Go
embeds: the module version ("v1.2.3" for 'go install
github.com/oairl/oairl@v1.2.3', "(devel)" from a clone, shown as "dev"),
and the VCS revision, its commit time and whether the tree had local
changes (Go records no build time, so that builds are reproducible).
'oairl --version' prints the same text.

--format json (--json): one document:
  {"schema_version": 1, "version": "v1.2.3", "commit": "0123abcd...",
   "modified": false, "commit_time": "2026-12-04T10:00:00Z" (or null),
   "go_version": "go1.26.0", "platform": "linux/amd64"}
commit is "" when unknown.`

// versionInfo is what 'oairl version' reports.
type versionInfo struct {
	Version    string  `json:"version"`
	Commit     string  `json:"commit"`
	Modified   bool    `json:"modified"`
	CommitTime *string `json:"commit_time"`
	GoVersion  string  `json:"go_version"`
	Platform   string  `json:"platform"`
}

// buildVersion combines the stamped version with the build information Go
// embeds in the binary.
func buildVersion(stamped string) versionInfo {
	bi, ok := debug.ReadBuildInfo()
	return versionFrom(stamped, bi, ok)
}

func versionFrom(stamped string, bi *debug.BuildInfo, ok bool) versionInfo {
	v := versionInfo{Version: stamped, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if !ok || bi == nil {
		if v.Version == "" {
			v.Version = "dev"
		}
		return v
	}
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	if v.Version == "" || v.Version == "dev" {
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v.Version = mv
		} else {
			v.Version = "dev"
		}
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			t := s.Value
			v.CommitTime = &t
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// versionText is the text form: "oairl VERSION" on the first line, then
// what is known of the build.
func versionText(v versionInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "oairl %s\n", v.Version)
	if v.Commit != "" {
		mod := ""
		if v.Modified {
			mod = " (modified)"
		}
		fmt.Fprintf(&b, "commit  %s%s\n", v.Commit, mod)
	}
	if v.CommitTime != nil {
		fmt.Fprintf(&b, "date    %s\n", *v.CommitTime)
	}
	fmt.Fprintf(&b, "go      %s %s\n", v.GoVersion, v.Platform)
	return b.String()
}

func newVersionCmd(f *Factory) *cobra.Command {
	opts := &VersionOptions{Factory: f}
	c := &cobra.Command{
		Use:   "version",
		Short: "Print oairl's version, commit, commit time and Go version",
		Long:  versionLong,
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			v := buildVersion(f.Version)
			if opts.Format == "json" {
				return writeJSON(f.IOStreams.Out, v)
			}
			_, err := fmt.Fprint(f.IOStreams.Out, versionText(v))
			return err
		},
	}
	addFormatFlags(f, c, &opts.Format, "output format: table or json", "table", "json")
	return c
}

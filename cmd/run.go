package cmd

// PLACEHOLDER: replaced by the run implementation.

import (
	"fmt"

	"github.com/spf13/cobra"
)

// RunOptions holds the dependencies and flag values of 'oairl run'.
type RunOptions struct{ f *Factory }

func newRunCmd(f *Factory, runF func(*RunOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "(run: not built yet)",
		RunE: func(c *cobra.Command, args []string) error {
			return fmt.Errorf("run is not built yet")
		},
	}
}

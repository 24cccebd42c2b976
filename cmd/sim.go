package cmd

// PLACEHOLDER: replaced by the sim implementation.

import (
	"fmt"

	"github.com/spf13/cobra"
)

// SimOptions holds the dependencies and flag values of 'oairl sim'.
type SimOptions struct{ f *Factory }

func newSimCmd(f *Factory, runF func(*SimOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:   "sim",
		Short: "(sim: not built yet)",
		RunE: func(c *cobra.Command, args []string) error {
			return fmt.Errorf("sim is not built yet")
		},
	}
}

package cmd

// PLACEHOLDER: replaced by the count implementation.

import (
	"fmt"

	"github.com/spf13/cobra"
)

// CountOptions holds the dependencies and flag values of 'oairl count'.
type CountOptions struct{ f *Factory }

func newCountCmd(f *Factory, runF func(*CountOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:   "count",
		Short: "(count: not built yet)",
		RunE: func(c *cobra.Command, args []string) error {
			return fmt.Errorf("count is not built yet")
		},
	}
}

package cmd

// PLACEHOLDER: replaced by the diagnose implementation.

import (
	"fmt"

	"github.com/spf13/cobra"
)

// DiagnoseOptions holds the dependencies and flag values of 'oairl diagnose'.
type DiagnoseOptions struct{ f *Factory }

func newDiagnoseCmd(f *Factory, runF func(*DiagnoseOptions) error) *cobra.Command {
	return &cobra.Command{
		Use:   "diagnose",
		Short: "(diagnose: not built yet)",
		RunE: func(c *cobra.Command, args []string) error {
			return fmt.Errorf("diagnose is not built yet")
		},
	}
}

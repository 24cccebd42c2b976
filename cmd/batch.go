package cmd

// PLACEHOLDER: replaced by the batch implementation (batch.go registers
// batch_submit.go, batch_status.go, ... subcommands).

import "github.com/spf13/cobra"

func newBatchCmd(f *Factory) *cobra.Command {
	return &cobra.Command{Use: "batch", Short: "(batch: not built yet)"}
}

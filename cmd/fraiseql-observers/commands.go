package main

import "github.com/spf13/cobra"

// subcommands lists every subcommand; each lives in its own file.
func subcommands() []*cobra.Command {
	return []*cobra.Command{
		newRunCmd(),
		newMigrateCmd(),
		newValidateConfigCmd(),
		newStatusCmd(),
		newReplayCmd(),
		newDebugEventCmd(),
		newDLQCmd(),
		newMetricsCmd(),
		newVersionCmd(),
		newRetentionCmd(),
		newSearchCmd(),
		newVerifySignatureCmd(),
	}
}

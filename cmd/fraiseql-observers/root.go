package main

import (
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/buildinfo"
	"github.com/fraiseql/fraiseql-observers/observers"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and found a problem (bad config, degraded status)
	exitUsage   = 2 // bad flags or arguments, or the database is unreachable
)

// exitError carries an exit code out of a command's RunE.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withExitCode wraps err so that the process exits with code.
func withExitCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// defaultDatabaseURL is used when neither --database-url nor DATABASE_URL is set.
const defaultDatabaseURL = "postgres:///postgres"

// databaseURLFlag registers --database-url on cmd, defaulting to $DATABASE_URL.
func databaseURLFlag(cmd *cobra.Command, dst *string) {
	def := os.Getenv("DATABASE_URL")
	if def == "" {
		def = defaultDatabaseURL
	}
	cmd.Flags().StringVar(dst, "database-url", def, "Postgres connection URL (env DATABASE_URL)")
	// --help prints the default: never the password of $DATABASE_URL.
	cmd.Flags().Lookup("database-url").DefValue = observers.RedactURL(def)
}

// formatFlag registers --format text|json on cmd.
func formatFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVar(dst, "format", "text", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

func validateFormat(f string) error {
	if f != "text" && f != "json" {
		return errors.WithHint(errors.Newf("--format %q is not supported", f), "use --format text or --format json")
	}
	return nil
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "fraiseql-observers",
		Short:         "Turn Postgres change-log rows into reliable side effects",
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what `version` prints.
		Version: buildinfo.Version(),
	}
	root.SetVersionTemplate(versionText(buildinfo.Get()))
	root.SetOut(stdout)
	root.SetErr(stderr)
	for _, c := range subcommands() {
		root.AddCommand(c)
	}
	completionCmd(root)
	return root
}

// completionCmd adds cobra's `completion bash|zsh|fish|powershell` now
// (cobra would add it at Execute) and makes an unknown shell a usage error
// instead of a help page that exits 0.
func completionCmd(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return withExitCode(exitUsage, errors.WithHint(errors.Newf("completion: unknown shell %q", args[0]),
				"use bash, zsh, fish or powershell, e.g. `fraiseql-observers completion bash > /etc/bash_completion.d/fraiseql-observers`"))
		}
	}
}

// execute runs the CLI and returns the process exit code. Errors are printed
// with their hints; secrets never reach them because commands redact before
// returning.
func execute(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	code := exitUsage
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if ee == nil || ee.err != errSilent {
		fmt.Fprintf(stderr, "error: %v\n", err)
		for _, h := range errors.GetAllHints(err) {
			fmt.Fprintf(stderr, "hint: %s\n", h)
		}
	}
	return code
}

// errSilent is returned (wrapped by withExitCode) by a command that has
// already printed its own report and only needs to set the exit code.
var errSilent = errors.New("silent")

// Command fraiseql-observers turns rows of a Postgres change log into
// reliable side effects. main builds the root command (root.go) and exits;
// each subcommand lives in its own file (run.go, migrate.go, status.go,
// validate_config.go) as a newXCmd whose RunE calls a function taking an
// opts struct and an io.Writer. The commands only wire: the daemon runs
// the process, observers loads configurations, status reads the state.
// See the README for the commands.
package main

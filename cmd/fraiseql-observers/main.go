// Command fraiseql-observers turns rows of a Postgres change log into reliable
// side effects. See the README for the commands.
package main

import (
	"os"
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

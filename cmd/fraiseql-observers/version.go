package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/spf13/cobra"

	"github.com/fraiseql/fraiseql-observers/buildinfo"
)

type versionOpts struct {
	Format string
}

func (o *versionOpts) Validate() error { return validateFormat(o.Format) }

func newVersionCmd() *cobra.Command {
	opts := &versionOpts{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the version and the commit this binary was built from",
		Long: `Show the module version and the VCS commit the go command recorded in the
binary: a tag (v1.2.3) for ` + "`go install …@v1.2.3`" + `, a pseudo-version made of the
commit's time and hash for ` + "`go build`" + ` in a git checkout (+dirty when the tree
had uncommitted changes), or (devel) when the go command recorded none
(-buildvcs=false, a git worktree, a source archive). The same version is
logged by ` + "`run`" + ` and written with each heartbeat (` + "`status --detailed`" + `).
` + "`fraiseql-observers --version`" + ` prints the same text.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return withExitCode(exitUsage, err)
			}
			return runVersion(opts, cmd.OutOrStdout())
		},
	}
	formatFlag(cmd, &opts.Format)
	return cmd
}

func runVersion(opts *versionOpts, w io.Writer) error {
	in := buildinfo.Get()
	if opts.Format == "json" {
		return writeJSON(w, in)
	}
	_, err := io.WriteString(w, versionText(in))
	return errors.Wrap(err, "write output")
}

// versionText is the text of `version` and `--version`.
func versionText(in buildinfo.Info) string {
	var b strings.Builder
	fmt.Fprintf(&b, "fraiseql-observers %s\n", in.Version)
	commit := "not recorded (built with -buildvcs=false, in a git worktree or from a source archive)"
	if in.Commit != "" {
		commit = in.Commit
		if in.Dirty {
			commit += " (dirty: uncommitted changes)"
		}
	}
	fmt.Fprintf(&b, "  commit:       %s\n", commit)
	if in.CommitTime != nil {
		fmt.Fprintf(&b, "  commit time:  %s\n", fmtTime(*in.CommitTime))
	}
	fmt.Fprintf(&b, "  go:           %s %s\n", in.GoVersion, in.Platform)
	return b.String()
}

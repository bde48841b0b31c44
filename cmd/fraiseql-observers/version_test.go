package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/buildinfo"
	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// stampedSource returns a git checkout of this module that the go command
// can stamp with VCS information, and its commit: the module's own
// directory when it is a plain checkout (.git a directory, as in CI), else
// (a git worktree, whose .git is a file the go command does not follow) a
// shared clone of its HEAD.
func stampedSource(t *testing.T) (dir, commit string) {
	t.Helper()
	git := func(dir string, args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
		return strings.TrimSpace(string(out))
	}
	root := git(".", "rev-parse", "--show-toplevel")
	commit = git(root, "rev-parse", "HEAD")
	if fi, err := os.Stat(filepath.Join(root, ".git")); err == nil && fi.IsDir() {
		return root, commit
	}
	dir = filepath.Join(t.TempDir(), "src")
	git(root, "clone", "--quiet", "--shared", "--no-checkout", root, dir)
	git(dir, "checkout", "--quiet", "--detach", commit)
	return dir, commit
}

// buildStamped builds the command the way a user does (`go build` in a
// checkout; -buildvcs=true overrides a GOFLAGS that turns stamping off).
func buildStamped(t *testing.T, src string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fraiseql-observers")
	cmd := exec.Command("go", "build", "-buildvcs=true", "-trimpath", "-o", bin, "./cmd/fraiseql-observers")
	cmd.Dir = src
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// goVersionM reads what `go version -m` says of bin: the main module's
// version and the build settings.
func goVersionM(t *testing.T, bin string) (version string, settings map[string]string) {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	require.NoError(t, err, "%s", out)
	settings = map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "mod":
			version = f[2]
		case len(f) >= 2 && f[0] == "build":
			k, v, _ := strings.Cut(strings.Join(f[1:], " "), "=")
			settings[k] = v
		}
	}
	return version, settings
}

// A binary built by `go build` in a checkout reports the module version and
// the commit `go version -m` shows (not "dev"), in `--version`, `version`
// and `version --format json`; `run` logs it and writes it with each
// heartbeat, so `status --detailed` shows the same.
func TestVersionOfABuiltBinaryIsItsCommit(t *testing.T) {
	t.Parallel()
	src, commit := stampedSource(t)
	bin := buildStamped(t, src)
	modVersion, settings := goVersionM(t, bin)
	require.Equal(t, commit, settings["vcs.revision"], "the go command stamped the commit")
	require.Regexp(t, `^v\d+\.\d+\.\d+-.*`+commit[:12], modVersion, "a pseudo-version made of the commit")

	out, err := exec.Command(bin, "version", "--format", "json").Output()
	require.NoError(t, err)
	var got buildinfo.Info
	require.NoError(t, json.Unmarshal(out, &got))
	require.Equal(t, modVersion, got.Version)
	require.Equal(t, commit, got.Commit)
	require.Equal(t, settings["vcs.modified"] == "true", got.Dirty)
	require.NotNil(t, got.CommitTime)
	require.Equal(t, settings["vcs.time"], got.CommitTime.UTC().Format(time.RFC3339))
	require.Equal(t, "github.com/fraiseql/fraiseql-observers", got.Module)
	require.Regexp(t, `^go1\.`, got.GoVersion)

	text, err := exec.Command(bin, "--version").Output()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(text), "fraiseql-observers "+modVersion+"\n"), string(text))
	require.Contains(t, string(text), "commit:       "+commit)
	require.Contains(t, string(text), "commit time:  "+settings["vcs.time"])
	sub, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	require.Equal(t, string(text), string(sub), "--version and version print the same")

	// `run` logs the version and heartbeats it; status --detailed shows it.
	pool, url := sqltest.NewDB(t)
	p := observertest.StartProcess(t, observertest.ProcessOptions{Binary: bin, DatabaseURL: url,
		Config: "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, p.WaitLeader(ctx, pool))
	require.Regexp(t, `run: started.* version=`+regexp.QuoteMeta(modVersion), p.Log())
	var hb string
	require.NoError(t, pool.QueryRow(ctx, `SELECT version FROM observer_listeners WHERE pid = $1`, p.Pid()).Scan(&hb))
	require.Equal(t, modVersion, hb)
	code, st, errOut := runStatusCLI(t, "--database-url", url, "--detailed")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, st, modVersion)
}

func TestVersionCommandInProcess(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, execute([]string{"version", "--format", "json"}, &out, &errOut), errOut.String())
	var got buildinfo.Info
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	require.Equal(t, buildinfo.Get().Version, got.Version)
	require.NotEmpty(t, got.Version)
	require.NotEqual(t, "dev", got.Version)

	out.Reset()
	require.Equal(t, exitOK, execute([]string{"--version"}, &out, &errOut))
	require.True(t, strings.HasPrefix(out.String(), "fraiseql-observers "+got.Version+"\n"), out.String())

	require.Equal(t, exitUsage, execute([]string{"version", "--format", "yaml"}, &out, &errOut))
	require.Contains(t, errOut.String(), "--format")
}

package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// bombFiles are the hostile configurations of issue #11: an alias bomb
// under a database action's params and a merge-key bomb.
var bombFiles = []string{"alias_bomb.yaml", "merge_bomb.yaml"}

func readBomb(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "observers", "testdata", "invalid", name))
	require.NoError(t, err)
	return data
}

// A running daemon survives the bombs, file change and SIGHUP alike: each
// is rejected (the running observers stay), and the next good file is
// applied and delivers.
func TestReloadSurvivesConfigBombs(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	p := observertest.StartProcess(t, runOptions(url, webhookConfig("", pathObserver(recv.URL(), "a"))))
	rejected := func(trigger string) int {
		n := 0
		for _, line := range strings.Split(p.Log(), "\n") {
			if strings.Contains(line, "config: reload rejected") && strings.Contains(line, "trigger="+trigger) {
				n++
			}
		}
		return n
	}
	write := func(data []byte) {
		t.Helper()
		require.NoError(t, os.WriteFile(p.ConfigPath()+".tmp", data, 0o600))
		require.NoError(t, os.Rename(p.ConfigPath()+".tmp", p.ConfigPath()))
	}
	alive := func() {
		t.Helper()
		select {
		case <-p.Exited():
			t.Fatalf("the daemon died: %v\n%s", p.ExitErr(), p.Tail())
		default:
		}
	}

	for i, name := range bombFiles {
		write(readBomb(t, name))
		require.Eventually(t, func() bool { return rejected(`"file changed"`) > i }, 30*time.Second, 20*time.Millisecond, "%s: file change", name)
		require.NoError(t, p.Signal(syscall.SIGHUP))
		require.Eventually(t, func() bool { return rejected("SIGHUP") > i }, 30*time.Second, 20*time.Millisecond, "%s: SIGHUP", name)
		alive()
	}
	require.Contains(t, p.Log(), "the configuration expands to more than 100000 nodes (aliases or merge keys)")
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "1", Kind: "INSERT", Data: `{}`})
	require.Equal(t, "/a", recv.WaitN(t, 1, 30*time.Second)[0].Path, "the running observers stay")

	obs := pathObserver(recv.URL(), "a")
	obs["added"] = "entity: Order\nevents: [INSERT]\nactions:\n  - {type: webhook, url: " + recv.URL() + "/added}\n"
	write([]byte(webhookConfig("", obs)))
	require.Eventually(t, func() bool { return strings.Contains(p.Log(), "config: reloaded") }, 30*time.Second, 20*time.Millisecond)
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "2", Kind: "INSERT", Data: `{}`})
	paths := map[string]bool{}
	for _, d := range recv.WaitN(t, 2, 30*time.Second) {
		paths[d.Path] = true
	}
	require.Equal(t, map[string]bool{"/a": true, "/added": true}, paths, "the good file after the bombs is in force")
	alive()
}

// validate-config refuses each bomb with its positioned error and exit
// status 1, well within the deadline.
func TestValidateConfigBombs(t *testing.T) {
	t.Parallel()
	for _, name := range bombFiles {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), name)
			require.NoError(t, os.WriteFile(path, readBomb(t, name), 0o600))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, binary, "validate-config", path).CombinedOutput()
			require.NoError(t, ctx.Err(), "validate-config did not finish: %s", out)
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "%s", out)
			require.Equal(t, 1, ee.ExitCode(), "%s", out)
			require.Regexp(t, `(?m)^`+regexp.QuoteMeta(path)+`:\d+:\d+: the configuration expands to more than 100000 nodes \(aliases or merge keys\), past the limit at alias \*\w+$`, string(out))
			require.Contains(t, string(out), "  hint: ")
		})
	}
}

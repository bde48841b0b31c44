package observertest_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// config has one observer of Order inserts per (path, url) pair, each a
// webhook signed with secret.
func config(urls ...string) string {
	var b strings.Builder
	b.WriteString("listener:\n  id: observertest\n  poll_interval: 200ms\nallow_private_targets: true\nobservers:\n")
	for i, u := range urls {
		fmt.Fprintf(&b, "  o%d:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - {type: webhook, url: %s, signing_secret: %s}\n"+
			"    retry: {max_attempts: 1}\n", i, u, secret)
	}
	return b.String()
}

// The process starts, leads its group (WaitLeader), delivers a change to a
// receiver that verifies its signature, is refused by a receiver holding
// another secret, exposes its metrics, and stops cleanly.
func TestProcessDeliversSignedChange(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	good := observertest.NewReceiver(t, observertest.ReceiverOptions{Secret: secret})
	wrong := observertest.NewReceiver(t, observertest.ReceiverOptions{Secret: otherSecret})
	p := observertest.StartProcess(t, observertest.ProcessOptions{
		Binary: binary, Config: config(good.URL()+"/orders", wrong.URL()+"/orders"), DatabaseURL: url,
	})
	require.NotEmpty(t, p.HTTPAddr(), "read from the started line")
	startedAddr := p.HTTPAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.WaitLeader(ctx, pool))
	require.Equal(t, startedAddr, p.HTTPAddr(), "the listener row has the same address")

	pk := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "42", Kind: "INSERT", Data: `{"total": 250}`})
	require.Positive(t, pk)
	d := good.WaitN(t, 1, 30*time.Second)[0]
	require.Equal(t, "/orders", d.Path)
	require.Equal(t, observertest.SchemeStandard, d.Scheme)
	require.NoError(t, d.SignatureErr)
	require.Contains(t, string(d.Body), `"total":250`)

	require.Eventually(t, func() bool { return len(wrong.All()) > 0 && wrong.All()[0].Status != 0 }, 30*time.Second, 20*time.Millisecond)
	refused := wrong.All()[0]
	require.Equal(t, 401, refused.Status)
	require.True(t, errors.Is(refused.SignatureErr, webhook.ErrSignature), "%v", refused.SignatureErr)
	wrong.Quiet(t, 100*time.Millisecond)

	require.Eventually(t, func() bool {
		v, ok := observertest.LookupMetric(t, p.HTTPAddr(), "observer_events_processed_total")
		return ok && v == 1
	}, 30*time.Second, 20*time.Millisecond)
	_, ok := observertest.LookupMetric(t, p.HTTPAddr(), "observer_no_such_metric_total")
	require.False(t, ok)

	require.NoError(t, p.Stop(30*time.Second))
	require.NoError(t, p.ExitErr())
	require.Contains(t, p.Log(), `msg="run: started"`)
}

// A process that cannot start reports it, with its exit status; a log file
// keeps every line while Tail keeps the last ones; WaitLeader waits while
// another instance leads; Kill ends a process.
func TestProcessStartFailureAndLogFile(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	bad, err := observertest.Spawn(ctx, observertest.ProcessOptions{Binary: binary, DatabaseURL: url,
		Config: "observers:\n  o:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - {type: webhok}\n"})
	require.NoError(t, err)
	err = bad.WaitStarted(ctx)
	require.ErrorContains(t, err, "exited before starting")
	var ee *exec.ExitError
	require.ErrorAs(t, bad.ExitErr(), &ee)
	require.Equal(t, 1, ee.ExitCode())
	require.Contains(t, bad.Log(), `unknown action type \"webhok\"`)
	msg := fatal(t, func(tb testing.TB) {
		observertest.StartProcess(tb, observertest.ProcessOptions{Binary: binary, DatabaseURL: url, Config: "observers: [\n"})
	})
	require.Contains(t, msg, "exited before starting")

	logPath := filepath.Join(t.TempDir(), "run.log")
	p := observertest.SpawnProcess(t, observertest.ProcessOptions{Binary: binary, DatabaseURL: url,
		Config: config("http://127.0.0.1:9/x"), LogLevel: "debug", LogFile: logPath, TailLines: 3})
	require.NoError(t, p.WaitStarted(ctx))
	require.NoError(t, p.WaitLeader(ctx, pool))
	var role string
	require.NoError(t, pool.QueryRow(ctx, `SELECT role FROM observer_listeners WHERE pid = $1`, p.Pid()).Scan(&role))
	require.Equal(t, "leader", role)

	// A second instance stands by: WaitLeader does not return until the
	// first is gone.
	standby := observertest.StartProcess(t, observertest.ProcessOptions{Binary: binary, DatabaseURL: url,
		Config: config("http://127.0.0.1:9/x"), Args: []string{"--standby-retry", "200ms"}})
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	require.ErrorIs(t, standby.WaitLeader(short, pool), context.DeadlineExceeded)

	require.Equal(t, logPath, p.LogPath())
	require.FileExists(t, p.ConfigPath())
	require.Contains(t, p.Log(), `msg="run: started"`)
	require.LessOrEqual(t, len(strings.Split(p.Tail(), "\n")), 3)
	require.Greater(t, len(strings.Split(p.Log(), "\n")), 3)
	p.Kill()
	select {
	case <-p.Exited():
	default:
		t.Fatal("Kill returns once the process is gone")
	}
	require.Error(t, p.ExitErr(), "killed")
	require.NoFileExists(t, p.ConfigPath(), "the written config is removed after exit")
	require.NoError(t, standby.WaitLeader(ctx, pool), "the standby takes over")
}

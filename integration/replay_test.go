package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// A replay process that dies inside a batch's transaction (after its jobs
// are inserted, before it commits: as kill -9 would) leaves nothing of that
// batch; the same command resumes after the last committed batch, and every
// change is delivered exactly once more, with its webhook-id.
func TestReplayCrashInsideBatchResumes(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	observertest.StartProcess(t, runOptions(url, webhookConfig("", orderObserver(recv.URL()))))
	const n = 30
	for i := range n {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("o", i), Kind: "INSERT", Data: `{}`})
	}
	original := map[string]int{}
	for _, d := range recv.WaitN(t, n, 60*time.Second) {
		original[d.ID]++
	}
	require.Len(t, original, n)

	replay := func(env ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, "replay", "--database-url", url, "--from", "0", "--batch-size", "10")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		require.NoError(t, err, string(out))
		return 0, string(out)
	}
	code, out := replay("FRAISEQL_OBSERVERS_CRASH_IN_BATCH=2")
	require.Equal(t, 75, code, out)
	require.Contains(t, out, "fault injection: exiting inside enqueue transaction 2")
	var read int64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT (counts->>'events_read')::bigint FROM observer_replays WHERE id = 1`).Scan(&read))
	require.EqualValues(t, 10, read, "only the first batch committed")

	code, out = replay()
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "Replay 1 resumed")
	require.Contains(t, out, "Replay 1 finished")
	require.Contains(t, out, "30 read, 30 matched")

	for _, d := range recv.WaitN(t, n, 60*time.Second) {
		require.Contains(t, original, d.ID, "a replayed delivery keeps its webhook-id")
		original[d.ID]++
	}
	recv.Quiet(t, 500*time.Millisecond)
	for id, times := range original {
		require.Equal(t, 2, times, id)
	}
}

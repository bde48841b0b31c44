package river

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The jobs a replay enqueues (with an inserter: a client that works none)
// wait behind the listener's (River priority 2) and carry the replay's id,
// in their batch job and in the follow-up of a delivery that failed there.
func TestReplayJobsCarryTheReplay(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, "", "    retry: {max_attempts: 5, initial_delay: 10ms, max_delay: 20ms}\n", 0, func(id string, n int) int {
		if id == "flaky" && n < 2 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	enq, err := NewInserter(e.pool, 100, ReplayPriority)
	require.NoError(t, err)
	e.enqueueWith(t, enq, 7, "ok", "flaky")
	ctx := context.Background()
	var kind, replay string
	var priority int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT kind, priority, args->>'replay' FROM river_job`).Scan(&kind, &priority, &replay))
	require.Equal(t, BatchKind, kind, "one batch job")
	require.Equal(t, ReplayPriority, priority)
	require.Equal(t, "7", replay)

	e.start(t)
	require.Eventually(t, func() bool { return e.settled(t) && e.requests("flaky") == 2 }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 1, e.requests("ok"))
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT args->>'replay' FROM river_job WHERE kind = $1`, ActionKind).Scan(&replay))
	require.Equal(t, "7", replay, "the follow-up is still the replay's")
}

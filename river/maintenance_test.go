package river

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// Storage cleanups run as a River periodic job: on start and then every
// interval; one failing cleanup does not keep the others from running.
func TestCleanupRunsAsPeriodicJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := sqltest.NewDB(t)
	cfg := logConfig(t)

	var failing, counted atomic.Int64
	client, err := NewClient(ClientParams{
		WorkerParams: WorkerParams{Pool: pool, Configs: NewConfigStore(pool)}, Config: cfg, CleanupInterval: 300 * time.Millisecond,
		Cleanups: []Cleanup{
			func(context.Context) error { failing.Add(1); return errors.New("backend down") },
			func(context.Context) error { counted.Add(1); return nil },
		},
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.WithoutCancel(ctx))) })

	require.Eventually(t, func() bool { return counted.Load() >= 2 }, 30*time.Second, 20*time.Millisecond,
		"the cleanup runs on start and again after the interval")
	require.GreaterOrEqual(t, failing.Load(), counted.Load()-1, "a failing cleanup runs each time too")
	var kinds int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1`, CleanupKind).Scan(&kinds))
	require.Positive(t, kinds, "it runs as a River job")
}

package river

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// Retention runs as a River periodic job, on start and then every
// interval, with its own timeout; River's own cleaner deletes no finished
// job (retention does, and counts them).
func TestRetentionRunsAsPeriodicJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := sqltest.NewDB(t)
	cfg := logConfig(t)

	// Finished long ago: River's cleaner, with its old periods (24h, 30d),
	// would delete them as soon as it starts.
	_, err := pool.Exec(ctx, `INSERT INTO river_job (kind, args, state, max_attempts, finalized_at)
		VALUES ($1, '{}', 'completed', 1, now() - interval '10 days'), ($1, '{}', 'discarded', 1, now() - interval '400 days'),
		       ($1, '{}', 'cancelled', 1, now() - interval '400 days')`, ActionKind)
	require.NoError(t, err)
	var logs syncBuffer
	var runs atomic.Int64
	var deadline atomic.Value
	client, err := NewClient(ClientParams{
		WorkerParams: WorkerParams{Pool: pool, Configs: NewConfigStore(pool),
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		Config:            cfg,
		RetentionInterval: 300 * time.Millisecond,
		Retention: func(ctx context.Context) error {
			if d, ok := ctx.Deadline(); ok {
				deadline.Store(time.Until(d))
			}
			runs.Add(1)
			return nil
		},
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.WithoutCancel(ctx))) })

	require.Eventually(t, func() bool { return runs.Load() >= 2 }, 30*time.Second, 20*time.Millisecond,
		"retention runs on start and again after the interval")
	d, _ := deadline.Load().(time.Duration)
	require.Greater(t, d, RetentionRunTimeout/2, "a run has River's timeout of RetentionRunTimeout")
	require.LessOrEqual(t, d, RetentionRunTimeout)
	require.Less(t, RetentionRunTimeout, rescueFloor, "River never rescues a run that is still working")
	var kinds int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1`, RetentionKind).Scan(&kinds))
	require.Positive(t, kinds, "it runs as a River job")

	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "JobCleaner: Run loop started") },
		30*time.Second, 20*time.Millisecond, "River's cleaner runs (on the River leader)")
	require.Never(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND finalized_at < now() - interval '1 day'`,
			ActionKind).Scan(&n))
		return n < 3
	}, 2*time.Second, 50*time.Millisecond, "River's cleaner deletes no finished job: retention does")
}

// logConfig is a configuration with one observer logging Order inserts.
func logConfig(t *testing.T) *observers.Config {
	t.Helper()
	cfg, _, err := observers.ParseWithEnv("test.yaml", []byte(`
observers:
  audit:
    entity: Order
    events: [INSERT]
    actions:
      - {type: log}
`), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	return cfg
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A dead letter put back (dlq retry) while retention waits for its row lock
// is checked again in its new state and stays.
func TestDeleteFinishedJobsRechecksALockedJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := sqltest.NewDB(t)
	var id int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO river_job (kind, args, state, max_attempts, finalized_at)
		VALUES ($1, '{"seq": 1}', 'discarded', 5, now() - interval '40 days') RETURNING id`, ActionKind).Scan(&id))
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `UPDATE river_job SET state = 'available', finalized_at = NULL, max_attempts = 10 WHERE id = $1`, id)
	require.NoError(t, err)

	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := DeleteFinishedJobs(ctx, pool, DeadLetterJobs, time.Now().Add(-30*24*time.Hour), 100)
		done <- result{n, err}
	}()
	require.Eventually(t, func() bool {
		var waiting bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM river_job%')`).Scan(&waiting))
		return waiting
	}, 10*time.Second, 10*time.Millisecond, "the delete waits for the retry's row lock")
	require.NoError(t, tx.Commit(ctx))
	res := <-done
	require.NoError(t, res.err)
	require.Equal(t, int64(0), res.n)
	var state string
	require.NoError(t, pool.QueryRow(ctx, `SELECT state FROM river_job WHERE id = $1`, id).Scan(&state))
	require.Equal(t, "available", state)
}

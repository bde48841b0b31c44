package river

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

func TestParseDeliveryID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]DeliveryID{"123": {123, -1}, " 45.2 ": {45, 2}, "7.0": {7, 0}} {
		id, err := ParseDeliveryID(in)
		require.NoError(t, err, in)
		require.Equal(t, want, id)
		require.Equal(t, want, must(ParseDeliveryID(id.String())))
	}
	for _, bad := range []string{"", "0", "-3", "x", "1.", "1.x", "1.-1", "1.2.3", "99999999999999999999"} {
		_, err := ParseDeliveryID(bad)
		require.Error(t, err, bad)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// seedDead writes a configuration version, n dead action jobs and one dead
// batch job of three deliveries; n+3 dead deliveries in all.
func seedDead(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO observer_config_versions (id, hash, source) VALUES (1, 'h', $1)`, `observers:
  o:
    entity: Order
    events: [INSERT]
    actions:
      - type: log
    retry: {max_attempts: 7}
`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO river_job (kind, queue, state, attempt, max_attempts, finalized_at, args)
		SELECT $1, 'fraiseql_observers_log', 'discarded', 3, 3, now(),
			jsonb_build_object('seq', g, 'observer', 'o', 'action', 0, 'action_type', 'log', 'config_version', 1)
		FROM generate_series(1, $2::int) g`, ActionKind, n)
	require.NoError(t, err)
	args, err := json.Marshal(BatchArgs{ActionType: "log", ConfigVersion: 1, Deliveries: []BatchDelivery{{Observer: "o", Seqs: []int64{1, 2, 3}}}})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO river_job (kind, queue, state, attempt, max_attempts, finalized_at, args)
		VALUES ($1, 'fraiseql_observers_log', 'cancelled', 1, 25, now(), $2)`, BatchKind, args)
	require.NoError(t, err)
}

// RetryAll works in chunks, reports its progress, and a second run finds
// nothing left; each delivery gets the policy's attempts.
func TestRetryAllChunksAndIsSafeToRerun(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	seedDead(t, pool, 7)
	q, err := NewDLQ(pool)
	require.NoError(t, err)
	q.ChunkSize = 3
	ctx := context.Background()

	var calls, done, total int
	s, err := q.RetryAll(ctx, DeadFilter{}, false, func(tot, n int) { calls, total, done = calls+1, tot, done+n })
	require.NoError(t, err)
	require.Equal(t, 10, s.Done)
	require.Zero(t, s.Skipped+s.Failed)
	require.Equal(t, 10, total)
	require.Equal(t, 10, done)
	require.Equal(t, 5, calls, "the total, then one call per chunk of 3")

	var available, attempts int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), min(max_attempts) FROM river_job WHERE state = 'available'`).Scan(&available, &attempts))
	require.Equal(t, 10, available, "7 jobs in place, 3 new ones for the batch's deliveries")
	require.Equal(t, 7, attempts)
	var n int64
	_, n, err = q.List(ctx, DeadFilter{}, 10, 0)
	require.NoError(t, err)
	require.Zero(t, n)

	s, err = q.RetryAll(ctx, DeadFilter{}, false, nil)
	require.NoError(t, err)
	require.Equal(t, Summary{}, *s, "a second run has nothing to do")
}

// Two RetryAll runs at once retry each delivery exactly once between them.
func TestRetryAllConcurrentRunsRetryEachOnce(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	seedDead(t, pool, 40)
	ctx := context.Background()
	var wg sync.WaitGroup
	sums := make([]*Summary, 2)
	for i := range sums {
		q, err := NewDLQ(pool)
		require.NoError(t, err)
		q.ChunkSize = 5
		wg.Go(func() {
			s, err := q.RetryAll(ctx, DeadFilter{}, false, nil)
			require.NoError(t, err)
			sums[i] = s
		})
	}
	wg.Wait()
	require.Equal(t, 43, sums[0].Done+sums[1].Done)
	require.Zero(t, sums[0].Failed+sums[1].Failed)
	var jobs int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND args ? 'batch'`, ActionKind).Scan(&jobs))
	require.Equal(t, 3, jobs, "one new job per delivery of the batch, not two")
	var retries int
	require.NoError(t, pool.QueryRow(ctx, `SELECT max(jsonb_array_length(metadata->'dlq_retries')) FROM river_job WHERE kind = $1`, ActionKind).Scan(&retries))
	require.Equal(t, 1, retries)
}

// A delivery whose configuration version cannot be read fails with the
// reason: its job could not run either.
func TestRetryFailsWhenTheVersionIsGone(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	seedDead(t, pool, 1)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `UPDATE river_job SET args = jsonb_set(args, '{config_version}', '99') WHERE kind = $1`, ActionKind)
	require.NoError(t, err)
	q, err := NewDLQ(pool)
	require.NoError(t, err)
	s, err := q.Retry(ctx, []DeliveryID{{Job: must(firstJob(ctx, pool)), Index: -1}}, false)
	require.NoError(t, err)
	require.Equal(t, 1, s.Failed)
	require.Contains(t, s.Outcomes[0].Reason, "load config version 99")
}

func firstJob(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var id int64
	err := pool.QueryRow(ctx, `SELECT min(id) FROM river_job WHERE kind = $1`, ActionKind).Scan(&id)
	return id, err
}

package status_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers/listener"
	"github.com/fraiseql/fraiseql-observers/observers/status"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

func statusCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func gather(t *testing.T, pool *pgxpool.Pool, p status.Params) *status.Status {
	t.Helper()
	p.JobCounts = obsriver.CountJobs
	st, err := status.Gather(statusCtx(t), pool, p)
	require.NoError(t, err)
	return st
}

func statusExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	_, err := pool.Exec(statusCtx(t), sql, args...)
	require.NoError(t, err)
}

// seedInstance writes an observer_listeners row whose heartbeat is age old.
func seedInstance(t *testing.T, pool *pgxpool.Pool, id, listenerID, role string, age time.Duration) {
	t.Helper()
	statusExec(t, pool, `INSERT INTO observer_listeners
		(id, listener_id, host, pid, http_addr, role, version, started_at, heartbeat_at, leader_since)
		VALUES ($1, $2, 'host-'||$1, 4242, '127.0.0.1:8000', $3, 'v1.2.3', now() - interval '1 hour',
		        now() - make_interval(secs => $4), CASE WHEN $3 = 'leader' THEN now() - interval '10 minutes' END)`,
		id, listenerID, role, age.Seconds())
}

func TestStatusHealthyWithOneFreshLeader(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	statusExec(t, pool, `INSERT INTO observer_checkpoints (listener_id, event_id, events_processed) VALUES ('orders', 7, 7), ('billing', 0, 0)`)
	seedInstance(t, pool, "a", "orders", "leader", 0)
	seedInstance(t, pool, "b", "orders", "standby", time.Second)
	seedInstance(t, pool, "killed", "orders", "standby", time.Minute) // SIGKILLed, row left behind
	seedInstance(t, pool, "ancient", "orders", "standby", 2*time.Hour)
	seedInstance(t, pool, "other", "billing", "leader", 0)

	st := gather(t, pool, status.Params{})
	require.Equal(t, "orders", st.ListenerID, "defaults to the first listener id in observer_checkpoints")
	require.Equal(t, []string{"billing"}, st.OtherListenerIDs)
	require.True(t, st.Healthy, st.Problems)
	require.Equal(t, status.Healthy, st.Status)
	require.Empty(t, st.Problems)

	require.NotNil(t, st.Leader)
	require.Equal(t, "a", st.Leader.InstanceID)
	require.Equal(t, "host-a", st.Leader.Host)
	require.Equal(t, 4242, st.Leader.PID)
	require.NotNil(t, st.Leader.Since)

	require.Equal(t, 2, st.HealthyListeners)
	ids := []string{}
	for _, l := range st.Listeners {
		ids = append(ids, l.ID)
	}
	require.Equal(t, []string{"a", "b", "killed"}, ids, "rows older than an hour are omitted")
	require.Equal(t, listener.RoleLeader, st.Listeners[0].Role)
	require.True(t, st.Listeners[0].Healthy)
	require.True(t, st.Listeners[1].Healthy)
	require.Equal(t, listener.RoleStandby, st.Listeners[2].Role)
	require.False(t, st.Listeners[2].Healthy)
	require.InDelta(t, 60, st.Listeners[2].HeartbeatAgeSeconds, 5)
	require.Equal(t, "v1.2.3", st.Listeners[0].Version)
	require.Equal(t, "127.0.0.1:8000", st.Listeners[0].HTTPAddr)

	require.NotNil(t, st.Checkpoint)
	require.Equal(t, int64(7), st.Checkpoint.EventID)
	require.Equal(t, int64(7), st.Checkpoint.EventsProcessed)
	require.Empty(t, st.CircuitBreakers)

	// Read-only: the stale rows are still there.
	var n int
	require.NoError(t, pool.QueryRow(statusCtx(t), `SELECT count(*) FROM observer_listeners`).Scan(&n))
	require.Equal(t, 5, n)

	// An explicit listener id.
	st = gather(t, pool, status.Params{ListenerID: "billing"})
	require.Equal(t, "billing", st.ListenerID)
	require.True(t, st.Healthy, st.Problems)
	require.Equal(t, "other", st.Leader.InstanceID)
	require.Equal(t, 1, st.HealthyListeners)
}

func TestDegraded(t *testing.T) {
	t.Parallel()
	for name, seed := range map[string]func(t *testing.T, pool *pgxpool.Pool){
		"no instance": func(*testing.T, *pgxpool.Pool) {},
		"only standbys": func(t *testing.T, pool *pgxpool.Pool) {
			seedInstance(t, pool, "b", "default", "standby", 0)
		},
		"stale leader": func(t *testing.T, pool *pgxpool.Pool) {
			seedInstance(t, pool, "a", "default", "leader", time.Minute)
			seedInstance(t, pool, "b", "default", "standby", 0)
		},
		"leader just past three heartbeats": func(t *testing.T, pool *pgxpool.Pool) {
			seedInstance(t, pool, "a", "default", "leader", 3*listener.HeartbeatIntervalDefault+time.Second)
		},
		"two leaders": func(t *testing.T, pool *pgxpool.Pool) {
			seedInstance(t, pool, "a", "default", "leader", 0)
			seedInstance(t, pool, "b", "default", "leader", 0)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, _ := sqltest.NewDB(t)
			statusExec(t, pool, `INSERT INTO observer_checkpoints (listener_id) VALUES ('default')`)
			seed(t, pool)
			st := gather(t, pool, status.Params{})
			require.Equal(t, "default", st.ListenerID)
			require.False(t, st.Healthy)
			require.Equal(t, status.Degraded, st.Status)
			require.Nil(t, st.Leader)
			require.NotEmpty(t, st.Problems)
			require.Contains(t, st.Problems[0], "lead")
		})
	}
}

func TestStatusNoCheckpointDefaultsToDefault(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	st := gather(t, pool, status.Params{})
	require.Equal(t, "default", st.ListenerID)
	require.Nil(t, st.Checkpoint)
	require.False(t, st.Healthy)
	require.Equal(t, 0, st.HealthyListeners)
	require.Empty(t, st.Listeners)
}

func TestStatusQueueAndDLQ(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	seedInstance(t, pool, "a", "default", "leader", 0)
	insert := func(kind string, states ...string) {
		statusExec(t, pool, `INSERT INTO river_job (kind, args, state, max_attempts, finalized_at)
			SELECT $1, '{}', s::river_job_state, 5,
			       CASE WHEN s IN ('completed', 'cancelled', 'discarded') THEN now() END
			FROM unnest($2::text[]) AS s`, kind, states)
	}
	insert(obsriver.ActionKind, "available", "available", "available", "running", "retryable", "retryable",
		"scheduled", "completed", "completed", "completed", "completed", "cancelled", "discarded", "discarded")
	insert("some_other_kind", "available", "discarded", "cancelled")

	st := gather(t, pool, status.Params{})
	require.Equal(t, status.QueueDepth{
		Available: 3, Running: 1, Retryable: 2, Scheduled: 1, Completed: 4, Cancelled: 1, Discarded: 2,
	}, st.Queue)
	require.Equal(t, int64(3), st.DLQSize)
	require.True(t, st.Healthy, "a dead-letter queue is not a health criterion: %v", st.Problems)
}

func TestStatusLag(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := statusCtx(t)
	seedInstance(t, pool, "a", "default", "leader", 0)
	statusExec(t, pool, `INSERT INTO observer_checkpoints (listener_id) VALUES ('default')`)

	st := gather(t, pool, status.Params{})
	require.Zero(t, st.LagEvents)
	require.Zero(t, st.LagSeconds)

	for range 5 { // five transactions, five txids
		statusExec(t, pool, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data, created_at)
			VALUES ('Order', '1', 'INSERT', '{}', now() - interval '30 seconds')`)
	}
	st = gather(t, pool, status.Params{})
	require.Equal(t, int64(5), st.LagEvents)
	require.False(t, st.LagEventsCapped)
	require.InDelta(t, 30, st.LagSeconds, 10)
	require.True(t, st.Healthy, "lag under five minutes is healthy: %v", st.Problems)

	// Checkpoint at the second row: three remain.
	var txid, pk int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT txid::text::bigint, pk_entity_change_log FROM core.tb_entity_change_log
		ORDER BY txid, pk_entity_change_log OFFSET 1 LIMIT 1`).Scan(&txid, &pk))
	statusExec(t, pool, `UPDATE observer_checkpoints SET txid = $1::bigint::text::xid8, event_id = $2 WHERE listener_id = 'default'`, txid, pk)
	st = gather(t, pool, status.Params{})
	require.Equal(t, int64(3), st.LagEvents)
	require.Equal(t, pk, st.Checkpoint.EventID)
	require.Equal(t, txid, st.Checkpoint.TxID)

	st = gather(t, pool, status.Params{LagEventsLimit: 2})
	require.Equal(t, int64(2), st.LagEvents)
	require.True(t, st.LagEventsCapped)

	// An undelivered change older than five minutes degrades.
	statusExec(t, pool, `UPDATE core.tb_entity_change_log SET created_at = now() - interval '10 minutes'`)
	st = gather(t, pool, status.Params{})
	require.False(t, st.Healthy)
	require.InDelta(t, 600, st.LagSeconds, 10)
	require.Contains(t, st.Problems[0], "lag")

	// Caught up.
	statusExec(t, pool, `UPDATE observer_checkpoints SET (txid, event_id) = (SELECT txid, pk_entity_change_log
		FROM core.tb_entity_change_log ORDER BY txid DESC, pk_entity_change_log DESC LIMIT 1)`)
	st = gather(t, pool, status.Params{})
	require.Zero(t, st.LagEvents)
	require.Zero(t, st.LagSeconds)
	require.True(t, st.Healthy, st.Problems)
}

func TestStatusMissingChangeLogTable(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	seedInstance(t, pool, "a", "default", "leader", 0)
	st := gather(t, pool, status.Params{Table: "app.no_such_log"})
	require.False(t, st.Healthy)
	require.Contains(t, st.Problems[0], "app.no_such_log does not exist")
}

func TestStatusHorizonBlocker(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := statusCtx(t)
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()

	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var pid int
	var xid string
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid(), pg_current_xact_id()::text`).Scan(&pid, &xid))

	// Transaction ids are cluster-wide: a short transaction of a test running
	// in another database can be older for a moment, so wait until ours is
	// the oldest.
	var st *status.Status
	require.Eventually(t, func() bool {
		st = gather(t, pool, status.Params{})
		return st.HorizonBlocker != nil && st.HorizonBlocker.PID == pid
	}, 20*time.Second, 20*time.Millisecond)
	b := st.HorizonBlocker
	require.Equal(t, "idle in transaction", b.State)
	require.Contains(t, b.Query, "pg_current_xact_id")
	require.NotNil(t, b.XactStart)
	require.NotNil(t, b.QueryStart)
	require.GreaterOrEqual(t, b.AgeSeconds, 0.0)
	var db string
	require.NoError(t, pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db))
	require.Equal(t, db, b.Database)

	require.NoError(t, tx.Commit(ctx))
	st = gather(t, pool, status.Params{})
	// Null when nothing else in the cluster has a transaction open; another
	// test's may be, but never ours.
	require.True(t, st.HorizonBlocker == nil || st.HorizonBlocker.PID != pid, "%+v", st.HorizonBlocker)
}

func TestStatusQueryIsTruncated(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := statusCtx(t)
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var pid int
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	_, err = tx.Exec(ctx, "SELECT pg_current_xact_id() /* "+strings.Repeat("x", 400)+" */")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st := gather(t, pool, status.Params{})
		return st.HorizonBlocker != nil && st.HorizonBlocker.PID == pid && len([]rune(st.HorizonBlocker.Query)) == 200
	}, 20*time.Second, 20*time.Millisecond)
}

func TestStatusCircuitBreakers(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	seedInstance(t, pool, "a", "default", "leader", 0)

	// The migration creates the table; this shape stands in until it exists.
	statusExec(t, pool, `CREATE TABLE IF NOT EXISTS observer_circuit_breakers (
		name text PRIMARY KEY, state text NOT NULL, expiry timestamptz, counts jsonb, data jsonb, updated_at timestamptz)`)
	st := gather(t, pool, status.Params{})
	require.Empty(t, st.CircuitBreakers)
	statusExec(t, pool, `INSERT INTO observer_circuit_breakers (name, state, expiry, data) VALUES
		('https://a.example/hook', 'closed', NULL, '{}'),
		('https://b.example/hook', 'half-open', NULL, '{}'),
		('https://c.example/hook', 'open', now() - interval '1 minute', '{}')`)
	st = gather(t, pool, status.Params{})
	require.Len(t, st.CircuitBreakers, 3)
	require.Equal(t, "https://a.example/hook", st.CircuitBreakers[0].Name)
	require.Equal(t, "closed", st.CircuitBreakers[0].State)
	require.False(t, st.CircuitBreakers[2].Open, "an open period that is over lets the next probe through")
	require.NotNil(t, st.CircuitBreakers[2].Expiry)
	require.True(t, st.Healthy, st.Problems)

	statusExec(t, pool, `UPDATE observer_circuit_breakers SET expiry = now() + interval '1 minute' WHERE state = 'open'`)
	st = gather(t, pool, status.Params{})
	require.True(t, st.CircuitBreakers[2].Open)
	require.False(t, st.Healthy)
	require.Equal(t, []string{"1 circuit breaker(s) open: https://c.example/hook"}, st.Problems)

	// An absent table: an empty list, not an error.
	statusExec(t, pool, `DROP TABLE observer_circuit_breakers`)
	st = gather(t, pool, status.Params{})
	require.NotNil(t, st.CircuitBreakers)
	require.Empty(t, st.CircuitBreakers)
	require.True(t, st.Healthy, st.Problems)
}

// A checkpoint that has not moved while changes wait is a stall, seen well
// before the five-minute lag limit; so is a leader that keeps failing its
// batch.
func TestStatusStallAndFailingLeader(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	seedInstance(t, pool, "a", "default", "leader", 0)
	statusExec(t, pool, `INSERT INTO observer_checkpoints (listener_id, last_processed_at) VALUES ('default', now() - interval '2 minutes')`)
	statusExec(t, pool, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data, created_at)
		VALUES ('Order', '1', 'INSERT', '{}', now() - interval '90 seconds')`)
	st := gather(t, pool, status.Params{})
	require.False(t, st.Healthy)
	require.Len(t, st.Problems, 1, st.Problems)
	require.Contains(t, st.Problems[0], "stalled: the checkpoint has not moved for more than 60s while 1 change(s) wait")

	// The same wait with a checkpoint that moved recently is not a stall.
	statusExec(t, pool, `UPDATE observer_checkpoints SET last_processed_at = now()`)
	st = gather(t, pool, status.Params{})
	require.True(t, st.Healthy, st.Problems)

	// A leader that failed three batches in a row, with its last error.
	statusExec(t, pool, `UPDATE observer_listeners SET batch_failures = 3, batch_error = 'deduplicate (redis backend): connection refused' WHERE id = 'a'`)
	st = gather(t, pool, status.Params{})
	require.False(t, st.Healthy)
	require.Equal(t, []string{"the leader failed 3 batches in a row; last error: deduplicate (redis backend): connection refused"}, st.Problems)
	require.Equal(t, 3, st.Listeners[0].BatchFailures)
}

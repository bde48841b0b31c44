package sql_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

func TestCheckpointQueries(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, _ := sqltest.NewDB(t)
	q := dbsqlc.New(pool)

	_, err := q.CheckpointGet(ctx, "default")
	require.ErrorIs(t, err, pgx.ErrNoRows)

	require.NoError(t, q.CheckpointEnsure(ctx, "default"))
	require.NoError(t, q.CheckpointEnsure(ctx, "default"))

	// A real txid, taken from the server, round-trips through bigint.
	var realTxid int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&realTxid))

	for _, txid := range []int64{realTxid, 1<<32 + 7, math.MaxInt64} {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		pos, err := dbsqlc.New(tx).CheckpointLock(ctx, "default")
		require.NoError(t, err)
		require.GreaterOrEqual(t, pos.Txid, int64(0))
		n, err := dbsqlc.New(tx).CheckpointAdvance(ctx, dbsqlc.CheckpointAdvanceParams{
			ListenerID: "default", Txid: txid, EventID: 42, EventsProcessedDelta: 3,
		})
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		require.NoError(t, tx.Commit(ctx))

		pos, err = q.CheckpointLock(ctx, "default")
		require.NoError(t, err)
		require.Equal(t, dbsqlc.CheckpointLockRow{Txid: txid, EventID: 42}, pos)
	}

	// The stored xid8 compares with the server's own txids.
	var ok bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT txid = '9223372036854775807'::xid8 FROM observer_checkpoints
		WHERE listener_id = 'default'`).Scan(&ok))
	require.True(t, ok)

	cp, err := q.CheckpointGet(ctx, "default")
	require.NoError(t, err)
	require.Equal(t, "default", cp.ListenerID)
	require.Equal(t, int64(math.MaxInt64), cp.Txid)
	require.Equal(t, int64(42), cp.EventID)
	require.Equal(t, int64(9), cp.EventsProcessed)
	require.WithinDuration(t, time.Now(), cp.LastProcessedAt, time.Minute)
	require.NotNil(t, cp.UpdatedAt)

	n, err := q.CheckpointAdvance(ctx, dbsqlc.CheckpointAdvanceParams{ListenerID: "missing", Txid: 1, EventID: 1})
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestListenerQueries(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, _ := sqltest.NewDB(t)
	q := dbsqlc.New(pool)

	host, addr, version := "h1", ":9090", "v1.0.0"
	pid := int32(123)
	started := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	require.NoError(t, q.ListenerHeartbeat(ctx, dbsqlc.ListenerHeartbeatParams{
		ID: "b", ListenerID: "default", Host: &host, Pid: &pid, HttpAddr: &addr,
		Role: "standby", Version: &version, StartedAt: &started,
	}))
	require.NoError(t, q.ListenerHeartbeat(ctx, dbsqlc.ListenerHeartbeatParams{
		ID: "a", ListenerID: "default", Role: "standby",
	}))
	// Upsert: b becomes leader.
	require.NoError(t, q.ListenerHeartbeat(ctx, dbsqlc.ListenerHeartbeatParams{
		ID: "b", ListenerID: "default", Host: &host, Pid: &pid, HttpAddr: &addr,
		Role: "leader", Version: &version, StartedAt: &started, LeaderSince: &started,
	}))
	require.NoError(t, q.ListenerHeartbeat(ctx, dbsqlc.ListenerHeartbeatParams{
		ID: "c", ListenerID: "other", Role: "leader",
	}))

	list, err := q.ListenerList(ctx, "default")
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "b", list[0].ID, "leader first")
	require.Equal(t, "leader", list[0].Role)
	require.Equal(t, pid, *list[0].Pid)
	require.True(t, started.Equal(*list[0].StartedAt))
	require.True(t, started.Equal(*list[0].LeaderSince))
	require.Nil(t, list[1].Host)

	require.NoError(t, q.ListenerDelete(ctx, "b"))
	list, err = q.ListenerList(ctx, "default")
	require.NoError(t, err)
	require.Len(t, list, 1)

	list, err = q.ListenerList(ctx, "nobody")
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestConfigVersionAndSkippedEventQueries(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, _ := sqltest.NewDB(t)
	q := dbsqlc.New(pool)

	id1, err := q.ConfigVersionUpsert(ctx, dbsqlc.ConfigVersionUpsertParams{Hash: "h1", Source: "observers: []\n"})
	require.NoError(t, err)
	id2, err := q.ConfigVersionUpsert(ctx, dbsqlc.ConfigVersionUpsertParams{Hash: "h2", Source: "x: 1\n"})
	require.NoError(t, err)
	again, err := q.ConfigVersionUpsert(ctx, dbsqlc.ConfigVersionUpsertParams{Hash: "h1", Source: "observers: []\n"})
	require.NoError(t, err)
	require.NotEqual(t, id1, id2)
	require.Equal(t, id1, again)

	v, err := q.ConfigVersionGet(ctx, id1)
	require.NoError(t, err)
	require.Equal(t, dbsqlc.ConfigVersionGetRow{Hash: "h1", Source: "observers: []\n"}, v)
	_, err = q.ConfigVersionGet(ctx, 999)
	require.ErrorIs(t, err, pgx.ErrNoRows)

	n, err := q.SkippedEventInsertMany(ctx, dbsqlc.SkippedEventInsertManyParams{
		ListenerID: "default", ChangePks: []int64{7, 9}, Reasons: []string{"unknown modification_type", "bad JSON"},
	})
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	var reason string
	require.NoError(t, pool.QueryRow(ctx, `SELECT reason FROM observer_skipped_events
		WHERE listener_id = 'default' AND change_pk = 9`).Scan(&reason))
	require.Equal(t, "bad JSON", reason)
}

func TestStatusQueries(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, _ := sqltest.NewDB(t)
	q := dbsqlc.New(pool)

	// now() is the transaction's start: StatusNow reads the same clock as
	// the rest of a report taken in one transaction.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	now, err := dbsqlc.New(tx).StatusNow(ctx)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), now, time.Minute)
	var txStart time.Time
	require.NoError(t, tx.QueryRow(ctx, `SELECT now()`).Scan(&txStart))
	require.True(t, now.Equal(txStart), "%s != %s", now, txStart)
	require.NoError(t, tx.Rollback(ctx))

	breakers, err := q.StatusCircuitBreakers(ctx)
	require.NoError(t, err)
	require.Empty(t, breakers)

	_, err = pool.Exec(ctx, `INSERT INTO observer_circuit_breakers (name, state, expiry, data) VALUES
		('e-half-open', 'half-open', NULL, '{}'),
		('d-closed', 'closed', now() + interval '1 minute', '{}'),
		('c-open-no-expiry', 'open', NULL, '{}'),
		('b-open-expired', 'open', now() - interval '1 second', '{}'),
		('a-open', 'open', now() + interval '1 minute', '{}')`)
	require.NoError(t, err)
	breakers, err = q.StatusCircuitBreakers(ctx)
	require.NoError(t, err)
	var names []string
	open := map[string]bool{}
	for _, b := range breakers {
		names = append(names, b.Name)
		open[b.Name] = b.Open
	}
	require.Equal(t, []string{"a-open", "b-open-expired", "c-open-no-expiry", "d-closed", "e-half-open"}, names)
	require.Equal(t, map[string]bool{
		"a-open": true, "b-open-expired": false, "c-open-no-expiry": true, "d-closed": false, "e-half-open": false,
	}, open)
	require.Equal(t, "open", breakers[0].State)
	require.NotNil(t, breakers[0].Expiry)
	require.Nil(t, breakers[2].Expiry)
}

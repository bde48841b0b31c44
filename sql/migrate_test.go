package sql_test

import (
	"context"
	"io/fs"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	obsql "github.com/fraiseql/fraiseql-observers/sql"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

const seedInsert = `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data) VALUES ('Order', 'test-123', 'INSERT', '{"status": "new"}');`

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestMigrateFreshAndIdempotent(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool := sqltest.NewPool(t, sqltest.NewEmptyDB(t))

	res, err := obsql.Migrate(ctx, pool, nil)
	require.NoError(t, err)
	require.NotEmpty(t, res.River)
	require.Len(t, res.Observers, migrationCount(t))
	require.Equal(t, int64(1), res.Observers[0].Version)
	require.Equal(t, "00001_change_log.sql", res.Observers[0].Name)

	res, err = obsql.Migrate(ctx, pool, nil)
	require.NoError(t, err)
	require.Empty(t, res.Applied())

	status, err := obsql.Status(ctx, pool)
	require.NoError(t, err)
	require.NotEmpty(t, status)
	for _, s := range status {
		require.True(t, s.Applied, "%s %d %s", s.Component, s.Version, s.Name)
	}

	for _, rel := range []string{
		"core.tb_entity_change_log", "observer_checkpoints", "observer_listeners",
		"observer_config_versions", "observer_skipped_events", "observer_schema_migrations",
		"river_job", "river_migration",
	} {
		var ok bool
		require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", rel).Scan(&ok))
		require.True(t, ok, rel)
	}
	for _, fn := range []string{
		"observers.notify_change()", "observers.attach_notify(regclass)", "observers.log_change()",
		"observers.track(regclass)", "observers.untrack(regclass)",
	} {
		var ok bool
		require.NoError(t, pool.QueryRow(ctx, "SELECT to_regprocedure($1) IS NOT NULL", fn).Scan(&ok))
		require.True(t, ok, fn)
	}

	_, err = pool.Exec(ctx, seedInsert)
	require.NoError(t, err)
	var txid *int64
	var objectID string
	require.NoError(t, pool.QueryRow(ctx,
		"SELECT txid::text::bigint, object_id FROM core.tb_entity_change_log").Scan(&txid, &objectID))
	require.NotNil(t, txid)
	require.Positive(t, *txid)
	require.Equal(t, "test-123", objectID)
}

func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	url := sqltest.NewEmptyDB(t)
	pools := []*pgxpool.Pool{sqltest.NewPool(t, url), sqltest.NewPool(t, url)}

	errs := make(chan error, len(pools))
	results := make(chan *obsql.MigrateResult, len(pools))
	for _, p := range pools {
		go func() {
			res, err := obsql.Migrate(ctx, p, nil)
			errs <- err
			results <- res
		}()
	}
	total := 0
	for range pools {
		require.NoError(t, <-errs)
		total += len((<-results).Observers)
	}
	require.Equal(t, migrationCount(t), total, "each migration is applied exactly once")
}

func TestMigrateFraiseQLCompat(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool := sqltest.NewPool(t, sqltest.NewEmptyDB(t))

	_, err := pool.Exec(ctx, sqltest.FraiseQLSchema+`
INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
SELECT 'Order', gen_random_uuid(), 'INSERT', '{}' FROM generate_series(1, 3);
INSERT INTO observer_checkpoints (listener_id, last_processed_id, last_processed_at) VALUES ('default', 2, now());
`)
	require.NoError(t, err)

	_, err = obsql.Migrate(ctx, pool, nil)
	require.NoError(t, err)

	for _, col := range []string{"txid", "change_status", "object_data_before", "updated_fields", "tenant_id"} {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
			WHERE table_schema = 'core' AND table_name = 'tb_entity_change_log' AND column_name = $1`, col).Scan(&n))
		require.Equal(t, 1, n, col)
	}
	// object_id keeps FraiseQL's type.
	var typ string
	require.NoError(t, pool.QueryRow(ctx, `SELECT data_type FROM information_schema.columns
		WHERE table_schema = 'core' AND table_name = 'tb_entity_change_log' AND column_name = 'object_id'`).Scan(&typ))
	require.Equal(t, "uuid", typ)

	var nullTxids int
	require.NoError(t, pool.QueryRow(ctx,
		"SELECT count(*) FROM core.tb_entity_change_log WHERE txid IS NULL").Scan(&nullTxids))
	require.Equal(t, 3, nullTxids)

	_, err = pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type)
		VALUES ('Order', gen_random_uuid(), 'UPDATE')`)
	require.NoError(t, err)
	var newTxid *int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT txid::text::bigint FROM core.tb_entity_change_log
		ORDER BY pk_entity_change_log DESC LIMIT 1`).Scan(&newTxid))
	require.NotNil(t, newTxid)

	q := dbsqlc.New(pool)
	cp, err := q.CheckpointGet(ctx, "default")
	require.NoError(t, err)
	require.Equal(t, int64(2), cp.EventID)
	require.Equal(t, int64(0), cp.Txid)
	require.Positive(t, cp.ID)

	// The observer can create its own checkpoint rows in FraiseQL's table.
	require.NoError(t, q.CheckpointEnsure(ctx, "other"))
	require.NoError(t, q.CheckpointEnsure(ctx, "other"))
	lock, err := q.CheckpointLock(ctx, "other")
	require.NoError(t, err)
	require.Equal(t, int64(0), lock.EventID)

	// track() writes into FraiseQL's uuid object_id.
	_, err = pool.Exec(ctx, `CREATE TABLE demo_user (id uuid PRIMARY KEY, email text);
		SELECT observers.track('demo_user');
		INSERT INTO demo_user VALUES ('6f1c1a56-8d3e-4c1e-9d0f-6b9f7a0e2c11', 'a@example.com');`)
	require.NoError(t, err)
	var trackedID string
	require.NoError(t, pool.QueryRow(ctx, `SELECT object_id::text FROM core.tb_entity_change_log
		WHERE object_type = 'demo_user'`).Scan(&trackedID))
	require.Equal(t, "6f1c1a56-8d3e-4c1e-9d0f-6b9f7a0e2c11", trackedID)

	// Idempotent on this database too.
	res, err := obsql.Migrate(ctx, pool, nil)
	require.NoError(t, err)
	require.Empty(t, res.Applied())
}

func TestNotifyOnCommit(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, url := sqltest.NewDB(t)

	listener, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = listener.Close(context.Background()) })
	_, err = listener.Exec(ctx, "LISTEN fraiseql_observers")
	require.NoError(t, err)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	// One statement, two rows: one notification.
	_, err = tx.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type)
		VALUES ('Order', '1', 'INSERT'), ('Order', '2', 'INSERT')`)
	require.NoError(t, err)

	// Nothing is delivered before commit.
	shortCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = listener.WaitForNotification(shortCtx)
	cancel()
	require.Error(t, err)

	require.NoError(t, tx.Commit(ctx))
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(waitCtx)
	require.NoError(t, err)
	require.Equal(t, "fraiseql_observers", n.Channel)
	require.Equal(t, "core.tb_entity_change_log", n.Payload)

	// attach_notify on another table, twice: one trigger, same payload form.
	_, err = pool.Exec(ctx, `CREATE TABLE public.my_log (LIKE core.tb_entity_change_log INCLUDING DEFAULTS INCLUDING IDENTITY);
		SELECT observers.attach_notify('public.my_log');
		SELECT observers.attach_notify('public.my_log');`)
	require.NoError(t, err)
	var triggers int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_trigger
		WHERE tgrelid = 'public.my_log'::regclass AND NOT tgisinternal`).Scan(&triggers))
	require.Equal(t, 1, triggers)
	_, err = pool.Exec(ctx, `INSERT INTO public.my_log (object_type, object_id, modification_type) VALUES ('A', '1', 'INSERT')`)
	require.NoError(t, err)
	n, err = listener.WaitForNotification(waitCtx)
	require.NoError(t, err)
	require.Equal(t, "public.my_log", n.Payload)
}

// migrationCount is the number of our embedded migrations.
func migrationCount(t *testing.T) int {
	t.Helper()
	files, err := fs.Glob(obsql.Migrations(), "*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return len(files)
}

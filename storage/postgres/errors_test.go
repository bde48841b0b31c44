package postgres_test

import (
	"context"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

// TestErrorNotFound: a row that is not there is storage.ErrNotFound for
// every store that reads one, and nothing else.
func TestErrorNotFound(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()

	_, err := postgres.NewCache(pool).Get(ctx, "absent")
	require.ErrorIs(t, err, storage.ErrNotFound)
	require.False(t, errors.Is(err, storage.ErrRejected), "got %v", err)
	require.ErrorContains(t, err, `cache key "absent"`)

	_, err = postgres.NewSearch(pool).Get(ctx, storage.DocKey{Index: "order", EntityType: "Order", EntityID: "absent"})
	require.ErrorIs(t, err, storage.ErrNotFound)
	require.False(t, errors.Is(err, storage.ErrRejected), "got %v", err)
	require.ErrorContains(t, err, "search: get order/Order/absent")

	// The breaker store reads no row as no state, and a held lease as
	// ErrLocked: neither leaks ErrNotFound.
	b := postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{})
	data, err := b.GetData("gobreaker:state:absent")
	require.NoError(t, err)
	require.Nil(t, data)
	require.NoError(t, b.Lock("gobreaker:mutex:held"))
	err = postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{}).Lock("gobreaker:mutex:held")
	require.ErrorIs(t, err, storage.ErrLocked)
	require.False(t, errors.Is(err, storage.ErrNotFound), "got %v", err)
}

// TestErrorRejectedKeepsCause: a document that is not JSON is
// storage.ErrRejected, and the error still carries Postgres's own.
func TestErrorRejectedKeepsCause(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	err := postgres.NewSearch(pool).Index(context.Background(),
		storage.DocKey{Index: "order", EntityType: "Order", EntityID: "1"}, storage.Version{TxID: 1, Seq: 1}, []byte(`{not json`))
	// Both errors.Is see it: cockroachdb's and the standard library's.
	require.True(t, errors.Is(err, storage.ErrRejected), "got %v", err)
	require.ErrorIs(t, err, storage.ErrRejected)
	require.False(t, errors.Is(err, storage.ErrNotFound), "got %v", err)
	require.ErrorContains(t, err, "search: index order/Order/1")

	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "the cause is lost: %v", err)
	require.Equal(t, "22P02", pgErr.Code) // invalid_text_representation
	require.True(t, errors.Is(err, pgErr))
	require.ErrorIs(t, err, pgErr, "the standard library unwraps to the cause too")
	require.True(t, postgres.Rejected(err))
}

// TestRejected: the SQLSTATE classes a retry would meet again (22, 23, 42, 54)
// and only those, on errors of a real server as the database action meets
// them, and on errors made here.
func TestRejected(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()

	exec := func(t *testing.T, sql string) error {
		t.Helper()
		_, err := pool.Exec(ctx, sql)
		require.Error(t, err)
		return errors.Wrap(err, "database action")
	}
	for _, c := range []struct {
		name, sql, code string
		rejected        bool
	}{
		{"division by zero", `SELECT 1/0`, "22012", true},
		{"invalid json", `SELECT '{x'::jsonb`, "22P02", true},
		{"not null", `INSERT INTO observer_cache (key, value, expires_at) VALUES ('k', NULL, now())`, "23502", true},
		{"missing function", `SELECT no_such_function('{}'::jsonb)`, "42883", true},
		{"missing table", `SELECT * FROM no_such_table`, "42P01", true},
		{"program limit exceeded", `SELECT array_fill(0, ARRAY[7, 7, 7, 7, 7, 7, 7])`, "54000", true},
		{"raised by a function", `DO $$ BEGIN RAISE EXCEPTION 'boom'; END $$`, "P0001", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := exec(t, c.sql)
			var pgErr *pgconn.PgError
			require.True(t, errors.As(err, &pgErr))
			require.Equal(t, c.code, pgErr.Code)
			require.Equal(t, c.rejected, postgres.Rejected(err))
		})
	}

	t.Run("statement timeout", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		_, err = tx.Exec(ctx, `SET LOCAL statement_timeout = 10`)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `SELECT pg_sleep(5)`)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "got %v", err)
		require.Equal(t, "57014", pgErr.Code) // query_canceled: may pass next time
		require.False(t, postgres.Rejected(err))
	})

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := pool.Exec(cctx, `SELECT 1`)
	require.Error(t, err)
	require.False(t, postgres.Rejected(err), "a cancelled context is retried")

	for code, rejected := range map[string]bool{
		"22001": true,  // string_data_right_truncation
		"23505": true,  // unique_violation
		"42501": true,  // insufficient_privilege
		"54000": true,  // program_limit_exceeded
		"54001": true,  // statement_too_complex
		"54011": true,  // too_many_columns
		"40001": false, // serialization_failure
		"40P01": false, // deadlock_detected
		"08006": false, // connection_failure
		"53300": false, // too_many_connections
		"":      false,
	} {
		err := errors.Wrap(&pgconn.PgError{Code: code}, "call")
		require.Equal(t, rejected, postgres.Rejected(err), "SQLSTATE %q", code)
	}
	require.False(t, postgres.Rejected(nil))
	require.False(t, postgres.Rejected(pgx.ErrNoRows))
	require.False(t, postgres.Rejected(errors.New("connection refused")))
	require.True(t, postgres.Rejected(errors.Wrap(errors.Mark(errors.New("x"), storage.ErrRejected), "already marked")))
}

package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
	"github.com/fraiseql/fraiseql-observers/storage/storagetest"
)

func TestDedupSuite(t *testing.T) {
	t.Parallel()
	storagetest.RunDedup(t, storagetest.DedupHarness{
		New: func(t *testing.T, pool *pgxpool.Pool, window time.Duration) storage.Dedup {
			return postgres.NewDedup(pool, postgres.DedupConfig{Window: window})
		},
	})
}

func TestCacheSuite(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	storagetest.RunCache(t, storagetest.CacheHarness{
		// One database for the whole suite; each subtest gets its own
		// key space through a distinct prefix.
		New: func(t *testing.T) storage.Cache { return prefixed{postgres.NewCache(pool), t.Name() + "/"} },
	})
}

func TestCleanupDeletesExpiredRows(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	c := postgres.NewCache(pool)
	require.NoError(t, c.Set(ctx, "short", []byte("v"), 50*time.Millisecond))
	require.NoError(t, c.Set(ctx, "long", []byte("v"), time.Hour))
	d := postgres.NewDedup(pool, postgres.DedupConfig{Window: 50 * time.Millisecond})
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = d.Claim(ctx, tx, []string{"a", "b"})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	count := func(table string) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool {
		require.NoError(t, c.Cleanup(ctx))
		require.NoError(t, d.Cleanup(ctx))
		return count("observer_cache") == 1 && count("observer_dedup_keys") == 0
	}, 10*time.Second, 50*time.Millisecond)
	_, err = c.Get(ctx, "long")
	require.NoError(t, err, "a live row survives the cleanup")
}

// prefixed gives a subtest its own key space in a shared table.
type prefixed struct {
	storage.Cache
	p string
}

func (c prefixed) Get(ctx context.Context, k string) ([]byte, error) { return c.Cache.Get(ctx, c.p+k) }
func (c prefixed) Set(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	return c.Cache.Set(ctx, c.p+k, v, ttl)
}
func (c prefixed) SetNX(ctx context.Context, k string, v []byte, ttl time.Duration) (bool, error) {
	return c.Cache.SetNX(ctx, c.p+k, v, ttl)
}
func (c prefixed) Delete(ctx context.Context, ks ...string) error {
	full := make([]string, len(ks))
	for i, k := range ks {
		full[i] = c.p + k
	}
	return c.Cache.Delete(ctx, full...)
}

func TestRateLimitStoreSuite(t *testing.T) {
	t.Parallel()
	storagetest.RunRateLimitStore(t, storagetest.RateLimitHarness{
		New: func(t *testing.T) func() storage.RateLimitStore {
			pool, _ := sqltest.NewDB(t)
			return func() storage.RateLimitStore { return postgres.NewRateLimitStore(pool) }
		},
	})
}

// Cleanup deletes the buckets that are full again, and only those.
func TestRateLimitCleanup(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	s := postgres.NewRateLimitStore(pool)
	_, err := s.Take(ctx, "busy", time.Hour, 1)
	require.NoError(t, err)
	_, err = s.Take(ctx, "idle", time.Millisecond, 1)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE observer_rate_limits SET tat = tat - interval '2 minutes', queue_until = queue_until - interval '2 minutes' WHERE name = 'idle'`)
	require.NoError(t, err)
	require.NoError(t, s.Cleanup(ctx))
	var names []string
	rows, err := pool.Query(ctx, `SELECT name FROM observer_rate_limits`)
	require.NoError(t, err)
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"busy"}, names)
	wait, err := s.Take(ctx, "busy", time.Hour, 1)
	require.NoError(t, err)
	require.Positive(t, wait, "the busy bucket kept its state")
}

package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/redis"
	"github.com/fraiseql/fraiseql-observers/storage/storagetest"
)

// realRedis returns a client on TEST_REDIS_URL (default the local server);
// tests share it, so each uses a random key prefix and never flushes.
func realRedis(t *testing.T) goredis.UniversalClient {
	t.Helper()
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	c, err := redis.NewClient(url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, redis.Ping(context.Background(), c), "a Redis server is needed at %s (scripts/ensure-services.sh starts one)", url)
	return c
}

func prefix(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "fraiseql-observers-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() { cleanPrefix(t, p) })
	return p
}

// cleanPrefix deletes what a test left under its prefix (TTLs would too).
func cleanPrefix(t *testing.T, p string) {
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	c, err := redis.NewClient(url)
	if err != nil {
		return
	}
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, p+"*", 1000).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
}

func miniRedis(t *testing.T) (*miniredis.Miniredis, goredis.UniversalClient) {
	t.Helper()
	mr := miniredis.RunT(t)
	c, err := redis.NewClient("redis://" + mr.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return mr, c
}

func TestCacheSuiteRealRedis(t *testing.T) {
	t.Parallel()
	c := realRedis(t)
	storagetest.RunCache(t, storagetest.CacheHarness{
		New: func(t *testing.T) storage.Cache { return redis.NewCache(c, redis.CacheConfig{Prefix: prefix(t)}) },
	})
}

func TestCacheSuiteMiniredis(t *testing.T) {
	t.Parallel()
	mr, c := miniRedis(t)
	storagetest.RunCache(t, storagetest.CacheHarness{
		New:     func(t *testing.T) storage.Cache { return redis.NewCache(c, redis.CacheConfig{Prefix: prefix(t)}) },
		Advance: mr.FastForward,
	})
}

func TestDedupSuiteRealRedis(t *testing.T) {
	t.Parallel()
	c := realRedis(t)
	storagetest.RunDedup(t, storagetest.DedupHarness{
		New: func(t *testing.T, pool *pgxpool.Pool, window time.Duration) storage.Dedup {
			return redis.NewDedup(c, pool, redis.DedupConfig{Prefix: prefix(t), Window: window})
		},
	})
}

func TestDedupSuiteMiniredis(t *testing.T) {
	t.Parallel()
	mr, c := miniRedis(t)
	storagetest.RunDedup(t, storagetest.DedupHarness{
		New: func(t *testing.T, pool *pgxpool.Pool, window time.Duration) storage.Dedup {
			return redis.NewDedup(c, pool, redis.DedupConfig{Prefix: prefix(t), Window: window})
		},
		Advance: mr.FastForward,
	})
}

// A Redis error is marked ErrUnavailable and leaves the enqueue transaction
// usable, so the listener can apply on_error: process; a claim made while
// Redis failed does not count as seen.
func TestDedupRedisErrorsLeaveTransactionUsable(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	for _, fail := range []struct {
		name   string
		inject func(mr *miniredis.Miniredis)
		heal   func(mr *miniredis.Miniredis)
	}{
		{"error reply", func(mr *miniredis.Miniredis) { mr.SetError("LOADING injected") }, func(mr *miniredis.Miniredis) { mr.SetError("") }},
		{"server gone", func(mr *miniredis.Miniredis) { mr.Close() }, func(mr *miniredis.Miniredis) { require.NoError(t, mr.Restart()) }},
	} {
		t.Run(fail.name, func(t *testing.T) {
			mr, c := miniRedis(t)
			d := redis.NewDedup(c, pool, redis.DedupConfig{Prefix: prefix(t), Window: time.Minute})
			tx, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			fail.inject(mr)
			_, err = d.Claim(ctx, tx, []string{"k"})
			require.Error(t, err)
			require.True(t, errors.Is(err, storage.ErrUnavailable), "got %v", err)
			var one int
			require.NoError(t, tx.QueryRow(ctx, "SELECT 1").Scan(&one), "the transaction is intact")
			require.NoError(t, tx.Commit(ctx))

			fail.heal(mr)
			tx2, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx2.Rollback(ctx) }()
			fresh, err := d.Claim(ctx, tx2, []string{"k"})
			require.NoError(t, err)
			require.Equal(t, []bool{true}, fresh)
		})
	}
}

// A key written to Redis by a transaction that never committed (the process
// died before COMMIT) is taken over by the next claim, and its token is
// tombstoned so that a late commit of the dead claim would fail instead of
// counting.
func TestDedupDeadClaimIsTakenOverAndFenced(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	mr, c := miniRedis(t)
	ctx := context.Background()
	p := prefix(t)
	d := redis.NewDedup(c, pool, redis.DedupConfig{Prefix: p, Window: time.Minute})

	// A dead claim: the key holds a token that has no row.
	mr.Set(p+"k", "dead-token")
	mr.SetTTL(p+"k", time.Minute)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	fresh, err := d.Claim(ctx, tx, []string{"k"})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, fresh, "a key held by a dead claim is fresh")
	require.NoError(t, tx.Commit(ctx))
	v, err := mr.Get(p + "k")
	require.NoError(t, err)
	require.NotEqual(t, "dead-token", v, "the key now names the committed claim")

	_, err = pool.Exec(ctx, "INSERT INTO observer_dedup_tokens (token, committed) VALUES ('dead-token', true)")
	require.Error(t, err, "the dead claim's token is tombstoned: it can no longer commit")

	tx2, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx2.Rollback(ctx) }()
	fresh, err = d.Claim(ctx, tx2, []string{"k"})
	require.NoError(t, err)
	require.Equal(t, []bool{false}, fresh)
}

func TestNewClientHidesURL(t *testing.T) {
	t.Parallel()
	_, err := redis.NewClient("http://user:s3cret@host")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}

func TestRateLimitStoreSuiteRealRedis(t *testing.T) {
	t.Parallel()
	c := realRedis(t)
	storagetest.RunRateLimitStore(t, storagetest.RateLimitHarness{
		New: func(t *testing.T) func() storage.RateLimitStore {
			p := prefix(t)
			return func() storage.RateLimitStore {
				return redis.NewRateLimitStore(c, redis.RateLimitStoreConfig{Prefix: p})
			}
		},
	})
}

func TestRateLimitStoreSuiteMiniredis(t *testing.T) {
	t.Parallel()
	mr, c := miniRedis(t)
	now := time.Now()
	mr.SetTime(now) // the script reads TIME: the clock moves only when the suite says
	var mu sync.Mutex
	storagetest.RunRateLimitStore(t, storagetest.RateLimitHarness{
		New: func(t *testing.T) func() storage.RateLimitStore {
			p := prefix(t)
			return func() storage.RateLimitStore {
				return redis.NewRateLimitStore(c, redis.RateLimitStoreConfig{Prefix: p})
			}
		},
		Advance: func(d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(d)
			mr.SetTime(now)
			mr.FastForward(d)
		},
	})
}

// A bucket's key expires once the bucket is full again and its line empty.
func TestRateLimitKeyExpires(t *testing.T) {
	t.Parallel()
	c := realRedis(t)
	p := prefix(t)
	s := redis.NewRateLimitStore(c, redis.RateLimitStoreConfig{Prefix: p})
	ctx := context.Background()
	_, err := s.Take(ctx, "https://a.example:443/x", time.Minute, 2)
	require.NoError(t, err)
	ttl, err := c.PTTL(ctx, p+"https://a.example:443/x").Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 55*time.Second)
	require.LessOrEqual(t, ttl, 62*time.Second)
}

package postgres

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// CacheOpTimeoutDefault bounds each Cache call unless the caller's context
// ends sooner.
const CacheOpTimeoutDefault = 5 * time.Second

// Cache keeps values in observer_cache, the default cache backend. Expired
// rows read as absent; Cleanup deletes them. It implements storage.Cache and
// is safe for concurrent use.
type Cache struct {
	pool *pgxpool.Pool
	q    *dbsqlc.Queries
}

var _ storage.Cache = (*Cache)(nil)

// NewCache returns a Cache on pool.
func NewCache(pool *pgxpool.Pool) *Cache {
	return &Cache{pool: pool, q: dbsqlc.New(pool)}
}

// Backend returns "postgres".
func (c *Cache) Backend() string { return "postgres" }

func opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, CacheOpTimeoutDefault)
}

// Get returns the value under key, or storage.ErrNotFound.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := opCtx(ctx)
	defer cancel()
	v, err := c.q.CacheGet(ctx, key)
	err = interpretError(err)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errors.Wrapf(err, "cache key %q", key)
	}
	if err != nil {
		return nil, errors.Wrap(err, "cache: get")
	}
	return v, nil
}

// Set stores value under key for ttl.
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.Newf("cache: ttl must be positive, got %s", ttl)
	}
	ctx, cancel := opCtx(ctx)
	defer cancel()
	if err := c.q.CacheSet(ctx, dbsqlc.CacheSetParams{Key: key, Value: nonNil(value), TtlSeconds: ttl.Seconds()}); err != nil {
		return errors.Wrap(interpretError(err), "cache: set")
	}
	return nil
}

// SetNX stores value under key for ttl when the key is absent or expired.
func (c *Cache) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, errors.Newf("cache: ttl must be positive, got %s", ttl)
	}
	ctx, cancel := opCtx(ctx)
	defer cancel()
	n, err := c.q.CacheSetNX(ctx, dbsqlc.CacheSetNXParams{Key: key, Value: nonNil(value), TtlSeconds: ttl.Seconds()})
	if err != nil {
		return false, errors.Wrap(interpretError(err), "cache: set if absent")
	}
	return n == 1, nil
}

// Delete removes keys.
func (c *Cache) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := opCtx(ctx)
	defer cancel()
	if _, err := c.q.CacheDelete(ctx, keys); err != nil {
		return errors.Wrap(interpretError(err), "cache: delete")
	}
	return nil
}

// Cleanup deletes expired rows.
func (c *Cache) Cleanup(ctx context.Context) error {
	ctx, cancel := opCtx(ctx)
	defer cancel()
	if _, err := c.q.CacheCleanup(ctx); err != nil {
		return errors.Wrap(interpretError(err), "cache: delete expired rows")
	}
	return nil
}

// nonNil keeps an empty value distinct from SQL NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

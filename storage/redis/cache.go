package redis

import (
	"cmp"
	"context"
	"time"

	"github.com/cockroachdb/errors"
	goredis "github.com/redis/go-redis/v9"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// CachePrefixDefault starts every cache key in Redis.
const CachePrefixDefault = "fraiseql-observers:cache:"

// CacheConfig configures a Cache.
type CacheConfig struct {
	Prefix    string        // prepended to every key; default "fraiseql-observers:cache:"
	OpTimeout time.Duration // bounds each call; default 2s
}

// WithDefaults returns c with zero fields set to their defaults.
func (c CacheConfig) WithDefaults() CacheConfig {
	c.Prefix = cmp.Or(c.Prefix, CachePrefixDefault)
	c.OpTimeout = cmp.Or(c.OpTimeout, OpTimeoutDefault)
	return c
}

// Cache keeps values in Redis with native TTLs (expired keys vanish by
// themselves). Errors from Redis are marked storage.ErrUnavailable. It
// implements storage.Cache.
type Cache struct {
	rdb goredis.UniversalClient
	cfg CacheConfig
}

var _ storage.Cache = (*Cache)(nil)

// NewCache returns a Cache on rdb.
func NewCache(rdb goredis.UniversalClient, cfg CacheConfig) *Cache {
	return &Cache{rdb: rdb, cfg: cfg.WithDefaults()}
}

// Backend returns "redis".
func (c *Cache) Backend() string { return "redis" }

func (c *Cache) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.OpTimeout)
}

// Get returns the value under key, or storage.ErrNotFound.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	v, err := c.rdb.Get(ctx, c.cfg.Prefix+key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, errors.Wrapf(storage.ErrNotFound, "cache key %q", key)
	}
	if err != nil {
		return nil, unavailable(err, "cache get")
	}
	return v, nil
}

// Set stores value under key for ttl.
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.Newf("cache: ttl must be positive, got %s", ttl)
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	if err := c.rdb.Set(ctx, c.cfg.Prefix+key, value, ttl).Err(); err != nil {
		return unavailable(err, "cache set")
	}
	return nil
}

// SetNX stores value under key for ttl when the key is absent (Redis SET NX).
func (c *Cache) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, errors.Newf("cache: ttl must be positive, got %s", ttl)
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	ok, err := c.rdb.SetNX(ctx, c.cfg.Prefix+key, value, ttl).Result()
	if err != nil {
		return false, unavailable(err, "cache set if absent")
	}
	return ok, nil
}

// Delete removes keys.
func (c *Cache) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = c.cfg.Prefix + k
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	if err := c.rdb.Del(ctx, full...).Err(); err != nil {
		return unavailable(err, "cache delete")
	}
	return nil
}

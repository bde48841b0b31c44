package redis

import (
	"cmp"
	"context"
	"strconv"
	"time"

	"github.com/cockroachdb/errors"
	goredis "github.com/redis/go-redis/v9"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// RateLimitPrefixDefault starts every key of a RateLimitStore by default.
const RateLimitPrefixDefault = "fraiseql-observers:ratelimit:"

// RateLimitStoreConfig configures a RateLimitStore.
type RateLimitStoreConfig struct {
	// Prefix starts every key: PREFIX NAME is a bucket (a hash of tat and
	// queue, microseconds since the epoch, which expires once full again).
	// Default "fraiseql-observers:ratelimit:".
	Prefix string
	// OpTimeout bounds each call unless the caller's context ends sooner.
	// Default 2s.
	OpTimeout time.Duration
}

// WithDefaults returns c with zero fields set to their defaults.
func (c RateLimitStoreConfig) WithDefaults() RateLimitStoreConfig {
	c.Prefix = cmp.Or(c.Prefix, RateLimitPrefixDefault)
	c.OpTimeout = cmp.Or(c.OpTimeout, OpTimeoutDefault)
	return c
}

// RateLimitStore keeps rate limits in Redis, with the algorithm of the
// Postgres store (the generic cell rate algorithm and a wait line, see
// migration 00014) run by a script on the server's clock, so every instance
// agrees. Errors from Redis are marked storage.ErrUnavailable. It
// implements storage.RateLimitStore and is safe for concurrent use.
type RateLimitStore struct {
	rdb goredis.UniversalClient
	cfg RateLimitStoreConfig
}

var _ storage.RateLimitStore = (*RateLimitStore)(nil)

// NewRateLimitStore returns a store on rdb.
func NewRateLimitStore(rdb goredis.UniversalClient, cfg RateLimitStoreConfig) *RateLimitStore {
	return &RateLimitStore{rdb: rdb, cfg: cfg.WithDefaults()}
}

// Backend returns "redis".
func (s *RateLimitStore) Backend() string { return "redis" }

// takeScript takes a token of KEYS[1] (ARGV[1]: interval, ARGV[2]: burst,
// both in microseconds and tokens) and returns the wait in microseconds, 0
// when taken. The key expires once its bucket is full and its line empty.
var takeScript = goredis.NewScript(`
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'tat', 'queue')
local tat = tonumber(v[1]) or t
local queue = tonumber(v[2]) or t
local fill = math.max(tat, t)
local slot = fill - interval * (burst - 1)
local wait = 0
if slot <= t then
	tat = fill + interval
else
	slot = math.max(slot, queue)
	queue = slot + interval
	wait = slot - t
end
redis.call('HSET', KEYS[1], 'tat', string.format('%d', tat), 'queue', string.format('%d', queue))
redis.call('PEXPIRE', KEYS[1], math.floor((math.max(tat, queue) - t) / 1000) + 1000)
return wait`)

// Take implements storage.RateLimitStore.
func (s *RateLimitStore) Take(ctx context.Context, key string, interval time.Duration, burst int) (time.Duration, error) {
	if interval <= 0 || burst < 1 {
		return 0, errors.Newf("rate limit %s: interval and burst must be positive", key)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	us := max(interval.Microseconds(), 1)
	wait, err := takeScript.Run(ctx, s.rdb, []string{s.cfg.Prefix + key},
		strconv.FormatInt(us, 10), strconv.Itoa(burst)).Int64()
	if err != nil {
		return 0, unavailable(err, "rate limit "+key)
	}
	return time.Duration(wait) * time.Microsecond, nil
}

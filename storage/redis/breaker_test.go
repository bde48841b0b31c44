package redis_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/breaker"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
	"github.com/fraiseql/fraiseql-observers/storage/redis"
	"github.com/fraiseql/fraiseql-observers/storage/storagetest"
)

func TestBreakerStoreSuiteRealRedis(t *testing.T) {
	t.Parallel()
	c := realRedis(t)
	storagetest.RunBreakerStore(t, storagetest.BreakerHarness{
		New: func(t *testing.T) func(time.Duration) storage.BreakerStore {
			p := prefix(t)
			return func(lease time.Duration) storage.BreakerStore {
				return redis.NewBreakerStore(c, redis.BreakerStoreConfig{Prefix: p, Lease: lease})
			}
		},
	})
}

func TestBreakerStoreSuiteMiniredis(t *testing.T) {
	t.Parallel()
	mr, c := miniRedis(t)
	storagetest.RunBreakerStore(t, storagetest.BreakerHarness{
		New: func(t *testing.T) func(time.Duration) storage.BreakerStore {
			p := prefix(t)
			return func(lease time.Duration) storage.BreakerStore {
				return redis.NewBreakerStore(c, redis.BreakerStoreConfig{Prefix: p, Lease: lease})
			}
		},
		Advance: mr.FastForward,
	})
}

// Keys live under the prefix, the lock with the lease as its TTL and a
// token as its value, the state without TTL.
func TestBreakerStoreKeys(t *testing.T) {
	t.Parallel()
	c := realRedis(t)
	p := prefix(t)
	s := redis.NewBreakerStore(c, redis.BreakerStoreConfig{Prefix: p, Lease: 30 * time.Second})
	ctx := context.Background()
	require.NoError(t, s.Lock("gobreaker:mutex:https://a.example:443"))
	ttl, err := c.PTTL(ctx, p+"lock:https://a.example:443").Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 20*time.Second)
	require.LessOrEqual(t, ttl, 30*time.Second)
	require.NoError(t, s.SetData("gobreaker:state:https://a.example:443", []byte(`{"state":0}`)))
	v, err := c.Get(ctx, p+"state:https://a.example:443").Result()
	require.NoError(t, err)
	require.JSONEq(t, `{"state":0}`, v)
	ttl, err = c.PTTL(ctx, p+"state:https://a.example:443").Result()
	require.NoError(t, err)
	require.Equal(t, time.Duration(-1), ttl, "state has no TTL")
	require.NoError(t, s.Unlock("gobreaker:mutex:https://a.example:443"))
	n, err := c.Exists(ctx, p+"lock:https://a.example:443").Result()
	require.NoError(t, err)
	require.Zero(t, n, "unlock deletes the lock key")
}

// Every successful write is mirrored (the daemon mirrors to Postgres for
// `status`); a failed mirror does not fail the write.
func TestBreakerStoreMirror(t *testing.T) {
	t.Parallel()
	c := realRedis(t)
	var mu sync.Mutex
	var got []string
	fail := false
	s := redis.NewBreakerStore(c, redis.BreakerStoreConfig{Prefix: prefix(t), Mirror: func(key string, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, key+"="+string(data))
		if fail {
			return errors.New("postgres down")
		}
		return nil
	}})
	require.NoError(t, s.SetData("gobreaker:state:x", []byte(`{"state":2}`)))
	mu.Lock()
	require.Equal(t, []string{`gobreaker:state:x={"state":2}`}, got)
	fail = true
	mu.Unlock()
	require.NoError(t, s.SetData("gobreaker:state:x", []byte(`{"state":0}`)), "Redis holds the state; the mirror is best effort")
	data, err := s.GetData("gobreaker:state:x")
	require.NoError(t, err)
	require.JSONEq(t, `{"state":0}`, string(data))
	mu.Lock()
	require.Len(t, got, 2)
	mu.Unlock()
}

// A Redis failure is marked ErrUnavailable (not ErrLocked), so the registry
// stops retrying and keeps its last known state.
func TestBreakerStoreRedisDown(t *testing.T) {
	t.Parallel()
	mr, c := miniRedis(t)
	s := redis.NewBreakerStore(c, redis.BreakerStoreConfig{OpTimeout: 500 * time.Millisecond})
	mr.Close()
	// errors.Is of cockroachdb/errors: it sees marks, the standard one does not.
	err := s.Lock("gobreaker:mutex:x")
	require.True(t, errors.Is(err, storage.ErrUnavailable), "got %v", err)
	require.False(t, errors.Is(err, storage.ErrLocked), "got %v", err)
	_, err = s.GetData("gobreaker:state:x")
	require.True(t, errors.Is(err, storage.ErrUnavailable), "got %v", err)
	err = s.SetData("gobreaker:state:x", []byte(`{}`))
	require.True(t, errors.Is(err, storage.ErrUnavailable), "got %v", err)
}

// Breakers on Redis follow the endpoint names: each path of a host has its
// own state key (and its own mirrored row), and a failing path leaves the
// other paths of its host closed.
func TestBreakerStoreEndpointNames(t *testing.T) {
	t.Parallel()
	c := realRedis(t)
	p := prefix(t)
	pool, _ := sqltest.NewDB(t)
	pg := postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{})
	r, err := breaker.New(breaker.Config{Store: redis.NewBreakerStore(c, redis.BreakerStoreConfig{Prefix: p, Mirror: pg.SetData})})
	require.NoError(t, err)
	env := &observers.Env{Breakers: r}
	cfg := observers.CircuitBreakerConfig{MinRequests: 2, SampleSize: 4, Timeout: time.Minute}.WithDefaults()
	ctx := context.Background()
	for range cfg.MinRequests {
		permit, err := env.Allow(ctx, "https://shared.example/down?token=x", cfg)
		require.NoError(t, err)
		permit.Done(ctx, &observers.DeliveryError{StatusCode: 503, Err: errors.New("503")})
	}
	_, err = env.Allow(ctx, "https://shared.example/down", cfg)
	var snooze *observers.SnoozeError
	require.ErrorAs(t, err, &snooze, "the failing path is open")
	_, err = env.Allow(ctx, "https://shared.example/up", cfg)
	require.NoError(t, err, "the other path is not")

	n, err := c.Exists(ctx, p+"state:https://shared.example:443/down").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the state key is the endpoint's")
	n, err = c.Exists(ctx, p+"state:https://shared.example:443").Result()
	require.NoError(t, err)
	require.Zero(t, n, "no key is named by the host alone")
	var state string
	require.NoError(t, pool.QueryRow(ctx, `SELECT state FROM observer_circuit_breakers WHERE name = $1`,
		"https://shared.example:443/down").Scan(&state))
	require.Equal(t, "open", state, "the mirrored row has the same name")
}

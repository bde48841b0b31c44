package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

// testBreakerStore is the behaviour every storage.BreakerStore must have;
// newStore returns two stores on one backend (two instances).
func testBreakerStore(t *testing.T, newStores func(t *testing.T) (a, b storage.BreakerStore)) {
	t.Run("LockIsExclusive", func(t *testing.T) {
		t.Parallel()
		a, b := newStores(t)
		require.NoError(t, a.Lock("gobreaker:mutex:x"))
		require.ErrorIs(t, b.Lock("gobreaker:mutex:x"), storage.ErrLocked)
		require.ErrorIs(t, a.Lock("gobreaker:mutex:x"), storage.ErrLocked, "not reentrant")
		require.NoError(t, b.Lock("gobreaker:mutex:y"), "locks are per name")
		require.NoError(t, a.Unlock("gobreaker:mutex:x"))
		require.NoError(t, b.Lock("gobreaker:mutex:x"))
		require.NoError(t, a.Unlock("gobreaker:mutex:x"), "unlocking a lock not held is a no-op")
		require.ErrorIs(t, a.Lock("gobreaker:mutex:x"), storage.ErrLocked, "b still holds it")
	})
	t.Run("Data", func(t *testing.T) {
		t.Parallel()
		a, b := newStores(t)
		data, err := a.GetData("gobreaker:state:x")
		require.NoError(t, err)
		require.Nil(t, data)
		state := `{"state":2,"generation":3,"age":0,"counts":{"Requests":4},"buckets":[{}],"start":"2026-01-01T00:00:00Z","expiry":"2026-01-01T00:01:00Z"}`
		require.NoError(t, a.SetData("gobreaker:state:x", []byte(state)))
		data, err = b.GetData("gobreaker:state:x")
		require.NoError(t, err)
		require.JSONEq(t, state, string(data))
	})
}

func TestBreakerStore(t *testing.T) {
	t.Parallel()
	testBreakerStore(t, func(t *testing.T) (storage.BreakerStore, storage.BreakerStore) {
		pool, _ := sqltest.NewDB(t)
		return postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{}),
			postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{})
	})
}

func TestBreakerStoreLeaseExpires(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	dead := postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{Lease: 100 * time.Millisecond})
	live := postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{})
	require.NoError(t, dead.Lock("gobreaker:mutex:x")) // and never unlocks
	require.ErrorIs(t, live.Lock("gobreaker:mutex:x"), storage.ErrLocked)
	require.Eventually(t, func() bool { return live.Lock("gobreaker:mutex:x") == nil }, 5*time.Second, 20*time.Millisecond)
	require.NoError(t, dead.Unlock("gobreaker:mutex:x"), "the lost lease is left alone")
	require.ErrorIs(t, dead.Lock("gobreaker:mutex:x"), storage.ErrLocked, "live holds it")
}

func TestBreakerStoreColumns(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	s := postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{})
	ctx := context.Background()
	for _, c := range []struct {
		json, state string
		expiry      bool
	}{
		{`{"state":0,"counts":{"Requests":1},"buckets":[{}],"expiry":"0001-01-01T00:00:00Z"}`, "closed", false},
		{`{"state":2,"counts":{"Requests":1},"buckets":[{}],"expiry":"2026-01-01T00:01:00Z"}`, "open", true},
		{`{"state":1,"counts":{},"buckets":[{}],"expiry":"0001-01-01T00:00:00Z"}`, "half-open", false},
	} {
		require.NoError(t, s.SetData("gobreaker:state:https://a.example:443", []byte(c.json)))
		var state string
		var expiry *time.Time
		var requests *int
		require.NoError(t, pool.QueryRow(ctx, `SELECT state, expiry, (counts->>'Requests')::int FROM observer_circuit_breakers
			WHERE name = 'https://a.example:443'`).Scan(&state, &expiry, &requests))
		require.Equal(t, c.state, state)
		require.Equal(t, c.expiry, expiry != nil)
	}
	require.Error(t, s.SetData("gobreaker:state:x", []byte(`{"state":7}`)))
	require.Error(t, s.SetData("gobreaker:state:x", []byte(`not json`)))
}

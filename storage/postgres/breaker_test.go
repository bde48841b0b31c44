package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
	"github.com/fraiseql/fraiseql-observers/storage/storagetest"
)

// TestBreakerStoreSuite runs the shared suite: each test gets its own
// migrated database, and each store made on it is one instance.
func TestBreakerStoreSuite(t *testing.T) {
	t.Parallel()
	storagetest.RunBreakerStore(t, storagetest.BreakerHarness{
		New: func(t *testing.T) func(time.Duration) storage.BreakerStore {
			pool, _ := sqltest.NewDB(t)
			return func(lease time.Duration) storage.BreakerStore {
				return postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{Lease: lease})
			}
		},
	})
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

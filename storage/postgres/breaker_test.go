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

// Cleanup deletes the breakers idle for a day that are not open (the
// host-named rows migration 00013 kept, once expired, among them) and the
// leases that ran out; open breakers and recent ones stay.
func TestBreakerStoreCleanup(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	future, past := time.Now().Add(time.Hour), time.Now().Add(-time.Hour)
	for _, r := range []struct {
		name, state string
		expiry      *time.Time
		idle        bool
	}{
		{"https://idle-closed.example:443/", "closed", nil, true},
		{"https://idle-expired.example:443", "open", &past, true},
		{"https://idle-half.example:443/x", "half-open", nil, true},
		{"https://idle-open.example:443/", "open", &future, true},
		{"https://recent.example:443/", "closed", nil, false},
	} {
		updated := time.Now()
		if r.idle {
			updated = updated.Add(-25 * time.Hour)
		}
		_, err := pool.Exec(ctx, `INSERT INTO observer_circuit_breakers (name, state, expiry, data, updated_at)
			VALUES ($1, $2, $3, '{}', $4)`, r.name, r.state, r.expiry, updated)
		require.NoError(t, err)
	}
	_, err := pool.Exec(ctx, `INSERT INTO observer_circuit_breaker_locks (name, owner, expires_at)
		VALUES ('gone', 'x', now() - interval '2 minutes'), ('held', 'y', now() + interval '10 seconds')`)
	require.NoError(t, err)

	require.NoError(t, postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{}).Cleanup(ctx))
	names := func(table string) []string {
		rows, err := pool.Query(ctx, `SELECT name FROM `+table+` ORDER BY name`)
		require.NoError(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			out = append(out, n)
		}
		require.NoError(t, rows.Err())
		return out
	}
	require.Equal(t, []string{"https://idle-open.example:443/", "https://recent.example:443/"}, names("observer_circuit_breakers"))
	require.Equal(t, []string{"held"}, names("observer_circuit_breaker_locks"))
}

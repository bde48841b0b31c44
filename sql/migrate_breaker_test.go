package sql_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	obsql "github.com/fraiseql/fraiseql-observers/sql"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// Migration 00013 keeps the host-named breakers that are open (they still
// guard their host with scope: host, and status shows the outage) and drops
// the others, which the default endpoint scope would never read again.
func TestMigrationBreakerEndpointScope(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool := sqltest.NewPool(t, sqltest.NewEmptyDB(t))
	rm, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	require.NoError(t, err)
	_, err = rm.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, obsql.Migrations(),
		goose.WithTableName(obsql.VersionTable), goose.WithDisableGlobalRegistry(true))
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 12)
	require.NoError(t, err)

	future, past := time.Now().Add(time.Hour), time.Now().Add(-time.Hour)
	for _, r := range []struct {
		name, state string
		expiry      *time.Time
	}{
		{"https://open.example:443", "open", &future},
		{"https://expired.example:443", "open", &past},
		{"https://closed.example:443", "closed", &future},
		{"http://half.example:80", "half-open", nil},
		{"https://new.example:443/hooks", "closed", nil}, // an endpoint name (a newer instance) is left alone
	} {
		_, err := pool.Exec(ctx, `INSERT INTO observer_circuit_breakers (name, state, expiry, data) VALUES ($1, $2, $3, '{}')`,
			r.name, r.state, r.expiry)
		require.NoError(t, err)
	}
	_, err = p.UpTo(ctx, 13)
	require.NoError(t, err)
	names := func() []string {
		rows, err := pool.Query(ctx, `SELECT name FROM observer_circuit_breakers ORDER BY name`)
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
	require.Equal(t, []string{"https://new.example:443/hooks", "https://open.example:443"}, names())

	_, err = p.DownTo(ctx, 12)
	require.NoError(t, err)
	require.Equal(t, []string{"https://open.example:443"}, names(), "down leaves what an older version reads")
	_, err = obsql.Migrate(ctx, pool, nil)
	require.NoError(t, err, "the rest applies on top")
}

package sql_test

import (
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	obsql "github.com/fraiseql/fraiseql-observers/sql"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// Migration 00020 re-keys the search documents by (index, entity type,
// entity id): rows of the old layout keep their document, take their entity
// type from it (empty without one), version (0, 0) and their words; down keeps
// the newest live document of each (index, id).
func TestMigrationSearchDocumentsRekeyed(t *testing.T) {
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
	_, err = p.UpTo(ctx, 19)
	require.NoError(t, err)

	_, err = pool.Exec(ctx, `INSERT INTO observer_search_documents ("index", id, doc) VALUES
		('order', '42', '{"entity_type": "Order", "data": {"note": "Déjà vu, A-1002", "n": 12.5, "ok": true}}'),
		('order', '43', '{"data": {"x": 1}}'),
		('order', '44', '[1, "two"]'),
		('order', '45', '"just a string"')`)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 20)
	require.NoError(t, err)

	type row struct {
		typ, id, tsv string
		txid, seq    int64
	}
	rows, err := pool.Query(ctx, `SELECT entity_type, entity_id, coalesce(tsv::text, ''), version_txid, version_seq
		FROM observer_search_documents WHERE "index" = 'order' ORDER BY entity_id`)
	require.NoError(t, err)
	var got []row
	for rows.Next() {
		var r row
		require.NoError(t, rows.Scan(&r.typ, &r.id, &r.tsv, &r.txid, &r.seq))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []row{
		{"Order", "42", "'1002' '12' '5' 'a' 'déjà' 'order' 'true' 'vu'", 0, 0},
		{"", "43", "'1'", 0, 0},
		{"", "44", "'1' 'two'", 0, 0},
		{"", "45", "'a' 'just' 'string'", 0, 0},
	}, got)

	// The new layout takes a tombstone and a second type of the same id.
	_, err = pool.Exec(ctx, `INSERT INTO observer_search_documents ("index", entity_type, entity_id, doc, version_txid) VALUES
		('order', 'OrderLine', '42', '{"line": 1}', 5), ('order', 'Order', '46', NULL, 5)`)
	require.NoError(t, err)
	_, err = p.DownTo(ctx, 19)
	require.NoError(t, err)
	var ids []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT array_agg(id || '=' || doc::text ORDER BY id) FROM observer_search_documents`).Scan(&ids))
	require.Equal(t, []string{`42={"line": 1}`, `43={"data": {"x": 1}}`, `44=[1, "two"]`, `45="just a string"`}, ids,
		"down keeps the newest live document of each id")
	_, err = obsql.Migrate(ctx, pool, nil)
	require.NoError(t, err, "up again")
}

package sql_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

type change struct {
	ObjectType       string
	ObjectID         string
	ModificationType string
	ObjectData       map[string]any
	ObjectDataBefore map[string]any
	UpdatedFields    []string
}

func changes(ctx context.Context, t *testing.T, pool *pgxpool.Pool) []change {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT object_type, object_id::text, modification_type,
		object_data, object_data_before, updated_fields
		FROM core.tb_entity_change_log ORDER BY pk_entity_change_log`)
	require.NoError(t, err)
	defer rows.Close()
	var out []change
	for rows.Next() {
		var c change
		var data, before []byte
		require.NoError(t, rows.Scan(&c.ObjectType, &c.ObjectID, &c.ModificationType, &data, &before, &c.UpdatedFields))
		if data != nil {
			require.NoError(t, json.Unmarshal(data, &c.ObjectData))
		}
		if before != nil {
			require.NoError(t, json.Unmarshal(before, &c.ObjectDataBefore))
		}
		out = append(out, c)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestTrack(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, _ := sqltest.NewDB(t)

	_, err := pool.Exec(ctx, `
CREATE TABLE public.demo_product (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    price numeric NOT NULL,
    attrs json
);
SELECT observers.track('public.demo_product');
SELECT observers.track('demo_product');
INSERT INTO demo_product (id, name, price, attrs) VALUES ('0b7e5a3c-3f5e-4a53-9c55-0b1d2a3c4d5e', 'Mug', 9.5, '{"a": 1}');
UPDATE demo_product SET price = 12 WHERE name = 'Mug';
UPDATE demo_product SET price = 12 WHERE name = 'Mug'; -- changes nothing: not logged
DELETE FROM demo_product;
`)
	require.NoError(t, err)

	var triggers int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_trigger
		WHERE tgrelid = 'demo_product'::regclass AND NOT tgisinternal`).Scan(&triggers))
	require.Equal(t, 1, triggers)

	const id = "0b7e5a3c-3f5e-4a53-9c55-0b1d2a3c4d5e"
	got := changes(ctx, t, pool)
	require.Len(t, got, 3)

	require.Equal(t, "demo_product", got[0].ObjectType)
	require.Equal(t, id, got[0].ObjectID)
	require.Equal(t, "INSERT", got[0].ModificationType)
	require.Equal(t, "Mug", got[0].ObjectData["name"])
	require.InDelta(t, 9.5, got[0].ObjectData["price"], 0)
	require.Nil(t, got[0].ObjectDataBefore)
	require.Empty(t, got[0].UpdatedFields)

	require.Equal(t, "UPDATE", got[1].ModificationType)
	require.Equal(t, id, got[1].ObjectID)
	require.InDelta(t, 12, got[1].ObjectData["price"], 0)
	require.InDelta(t, 9.5, got[1].ObjectDataBefore["price"], 0)
	require.Equal(t, []string{"price"}, got[1].UpdatedFields)

	require.Equal(t, "DELETE", got[2].ModificationType)
	require.Equal(t, id, got[2].ObjectID)
	require.Nil(t, got[2].ObjectData)
	require.InDelta(t, 12, got[2].ObjectDataBefore["price"], 0)

	// untrack stops logging.
	_, err = pool.Exec(ctx, `SELECT observers.untrack('demo_product');
		SELECT observers.untrack('demo_product');
		INSERT INTO demo_product (name, price) VALUES ('Pen', 1);`)
	require.NoError(t, err)
	require.Len(t, changes(ctx, t, pool), 3)
}

func TestTrackCompositePrimaryKey(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, _ := sqltest.NewDB(t)

	_, err := pool.Exec(ctx, `
CREATE TABLE order_line (
    line_no int,
    order_ref text,
    qty int NOT NULL,
    note text,
    PRIMARY KEY (order_ref, line_no)
);
SELECT observers.track('order_line');
INSERT INTO order_line VALUES (3, 'A-1', 2, NULL);
UPDATE order_line SET qty = 5, note = 'rush';
`)
	require.NoError(t, err)

	got := changes(ctx, t, pool)
	require.Len(t, got, 2)
	require.Equal(t, "order_line", got[0].ObjectType)
	require.Equal(t, "A-1,3", got[0].ObjectID, "primary-key columns in key order, joined with ','")
	require.Equal(t, []string{"note", "qty"}, got[1].UpdatedFields)
}

func TestTrackRefusesTableWithoutKey(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, _ := sqltest.NewDB(t)

	_, err := pool.Exec(ctx, `CREATE TABLE keyless (v int); SELECT observers.track('keyless');`)
	require.ErrorContains(t, err, "neither an id column nor a primary key")
}

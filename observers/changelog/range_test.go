package changelog

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// A range is read in (txid, pk) order up to its bound, within its pk,
// created_at and object_type filters; CountRange counts it, counts what the
// filters select after the bound, and finds where to start.
func TestReadRangeAndCountRange(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	// pk 1..6 written by txids 999, 1000, 1000, 1001, 1002, 998: pk 6 sorts first.
	_, err := pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log
		(pk_entity_change_log, txid, object_type, object_id, modification_type, object_data, created_at)
		VALUES (1, '999', 'A', 'a1', 'INSERT', '{}', '2024-05-01T01:00:00Z'),
		       (2, '1000', 'B', 'b2', 'INSERT', '{}', '2024-05-01T02:00:00Z'),
		       (3, '1000', 'A', 'a3', 'INSERT', '{}', '2024-05-01T03:00:00Z'),
		       (4, '1001', 'A', 'a4', 'INSERT', '{}', '2024-05-01T04:00:00Z'),
		       (5, '1002', 'A', 'a5', 'INSERT', '{}', '2024-05-01T05:00:00Z'),
		       (6, '998', 'A', 'a6', 'INSERT', '{}', '2024-05-01T06:00:00Z')`)
	require.NoError(t, err)
	cl, err := New("core.tb_entity_change_log")
	require.NoError(t, err)
	lim := Limits{Rows: 2, Bytes: 1 << 20, MaxEventBytes: 1 << 20}
	bound := Position{TxID: 1001, Seq: 4} // the listener passed pk 6, 1, 2, 3, 4
	pk := func(n int64) *int64 { return &n }
	at := func(s string) *time.Time {
		ts, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return &ts
	}
	readAll := func(r Range) []string {
		n, err := cl.CountRange(ctx, pool, r)
		require.NoError(t, err)
		if n.Start == nil {
			require.Zero(t, n.Rows)
			return nil
		}
		var ids []string
		for pos, more := *n.Start, true; more; {
			b, err := cl.ReadRange(ctx, pool, pos, r, lim)
			require.NoError(t, err)
			require.LessOrEqual(t, b.Rows, 2)
			for _, ev := range b.Events {
				ids = append(ids, ev.EntityID)
			}
			pos, more = b.Last, b.More
		}
		require.Len(t, ids, int(n.Rows))
		return ids
	}

	require.Equal(t, []string{"a6", "a1", "b2", "a3", "a4"}, readAll(Range{Bound: bound}))
	require.Equal(t, []string{"a1", "b2", "a3"}, readAll(Range{Bound: bound, FromPK: pk(1), ToPK: pk(4)}), "to is exclusive")
	require.Equal(t, []string{"a6", "a1", "a3", "a4"}, readAll(Range{Bound: bound, EntityTypes: []string{"A"}}))
	require.Equal(t, []string{"b2", "a3"}, readAll(Range{Bound: bound, From: at("2024-05-01T02:00:00Z"), To: at("2024-05-01T04:00:00Z")}))
	require.Nil(t, readAll(Range{Bound: bound, EntityTypes: []string{"C"}}))

	n, err := cl.CountRange(ctx, pool, Range{Bound: bound, FromPK: pk(3)})
	require.NoError(t, err)
	require.EqualValues(t, 3, n.Rows, "pk 6, 3 and 4")
	require.EqualValues(t, 1, n.Beyond, "pk 5: txid 1002, after the bound")
	require.Equal(t, Position{TxID: 998, Seq: 5}, *n.Start, "just before pk 6")
}

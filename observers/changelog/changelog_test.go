package changelog

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// Rows come in (txid, pk) order, txids compared as numbers: 999 before
// 1000 (as text "1000" < "999"), and a batch's byte bound cuts it after the
// first row that reaches it, reporting that more rows wait.
func TestReadBatchOrderAndBounds(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (txid, object_type, object_id, modification_type, object_data)
		VALUES ('1000', 'A', 'a', 'INSERT', '{"n": 1}'), ('999', 'A', 'b', 'INSERT', '{"n": 2}'),
		       ('1001', 'A', 'c', 'INSERT', jsonb_build_object('blob', repeat('x', 5000))), ('1002', 'A', 'd', 'INSERT', '{"n": 4}')`)
	require.NoError(t, err)
	cl, err := New("core.tb_entity_change_log")
	require.NoError(t, err)

	b, err := cl.ReadBatch(ctx, pool, Position{}, Limits{Rows: 10, Bytes: 1 << 20, MaxEventBytes: 1 << 20})
	require.NoError(t, err)
	var ids []string
	for _, ev := range b.Events {
		ids = append(ids, ev.EntityID)
	}
	require.Equal(t, []string{"b", "a", "c", "d"}, ids, "txid 999, 1000, 1001, 1002")
	require.False(t, b.More)
	require.Equal(t, uint64(1002), b.Last.TxID)

	// 100 bytes: rows are read while those before them stay under the
	// bound, so c (5 kB) still comes, and d after it does not.
	b, err = cl.ReadBatch(ctx, pool, Position{}, Limits{Rows: 10, Bytes: 100, MaxEventBytes: 1 << 20})
	require.NoError(t, err)
	require.Equal(t, 3, b.Rows, "b and a (10 bytes each) leave room, c (5 kB) fills it")
	require.Greater(t, b.Events[2].Size, int64(5000))
	require.True(t, b.More, "cut by bytes: d waits")
	b, err = cl.ReadBatch(ctx, pool, b.Last, Limits{Rows: 10, Bytes: 100, MaxEventBytes: 1 << 20})
	require.NoError(t, err)
	require.Equal(t, 1, b.Rows)
	require.Equal(t, "d", b.Events[0].EntityID)
	require.False(t, b.More)

	// 1 byte: the first row of a batch is read whatever its size.
	b, err = cl.ReadBatch(ctx, pool, Position{TxID: 1000, Seq: 1 << 62}, Limits{Rows: 10, Bytes: 1, MaxEventBytes: 1 << 20})
	require.NoError(t, err)
	require.Equal(t, 1, b.Rows)
	require.Equal(t, "c", b.Events[0].EntityID)
	require.True(t, b.More)

	// A row over MaxEventBytes is skipped with its size, without its data.
	b, err = cl.ReadBatch(ctx, pool, Position{TxID: 1000, Seq: 1 << 62}, Limits{Rows: 10, Bytes: 1 << 20, MaxEventBytes: 1000})
	require.NoError(t, err)
	require.Len(t, b.Skipped, 1)
	require.Contains(t, b.Skipped[0].Reason, "more than listener.max_event_bytes (1000)")
	require.Len(t, b.Events, 1)
	require.Equal(t, "d", b.Events[0].EntityID)
}

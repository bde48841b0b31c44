package changelog

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Find reads a row by pk or uuid, undecodable rows with their reason;
// Recent lists an entity's rows of some kinds, newest first.
func TestFindAndRecent(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (id, object_type, object_id, modification_type, object_data)
		VALUES ('6f1c0f5e-0000-4000-8000-000000000001', 'Order', '1', 'INSERT', '{"n": 1}'),
		       ('6f1c0f5e-0000-4000-8000-000000000002', 'Order', '2', ' created ', '{"n": 2}'),
		       ('6f1c0f5e-0000-4000-8000-000000000003', 'Order', '3', 'UPDATE', '{"n": 3}'),
		       ('6f1c0f5e-0000-4000-8000-000000000004', 'User', '4', 'INSERT', '{"n": 4}'),
		       ('6f1c0f5e-0000-4000-8000-000000000005', 'Order', '5', 'TRUNCATE', '{"n": 5}')`)
	require.NoError(t, err)
	cl, err := New("core.tb_entity_change_log")
	require.NoError(t, err)

	byPK, err := cl.Find(ctx, pool, "2")
	require.NoError(t, err)
	require.Empty(t, byPK.Reason)
	require.Equal(t, "6f1c0f5e-0000-4000-8000-000000000002", byPK.Event.ID)
	require.Equal(t, observers.KindInsert, byPK.Event.Kind)
	require.JSONEq(t, `{"n": 2}`, string(byPK.Event.RawData))

	byID, err := cl.Find(ctx, pool, " 6F1C0F5E-0000-4000-8000-000000000003 ")
	require.NoError(t, err)
	require.Equal(t, int64(3), byID.Event.Seq)

	bad, err := cl.Find(ctx, pool, "5")
	require.NoError(t, err)
	require.Contains(t, bad.Reason, `unknown modification_type "TRUNCATE"`)
	require.Equal(t, "Order", bad.Event.EntityType)

	_, err = cl.Find(ctx, pool, "99")
	require.ErrorIs(t, err, storage.ErrNotFound)
	_, err = cl.Find(ctx, pool, "6f1c0f5e-0000-4000-8000-000000000099")
	require.ErrorIs(t, err, storage.ErrNotFound)
	_, err = cl.Find(ctx, pool, "order-1")
	require.ErrorIs(t, err, ErrBadKey)

	got, err := cl.Recent(ctx, pool, "Order", observers.KindInsert.Spellings(), 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, []int64{2, 1}, []int64{got[0].Event.Seq, got[1].Event.Seq}, "newest first, created and INSERT alike")
	got, err = cl.Recent(ctx, pool, "Order", nil, 2)
	require.NoError(t, err)
	require.Equal(t, []int64{5, 3}, []int64{got[0].Event.Seq, got[1].Event.Seq})
	got, err = cl.Recent(ctx, pool, "", nil, 10)
	require.NoError(t, err)
	require.Len(t, got, 5)

	now := time.Now()
	got, err = cl.SameEntity(ctx, pool, "Order", "3", now.Add(-time.Hour), now.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, int64(3), got[0].Event.Seq)
	got, err = cl.SameEntity(ctx, pool, "Order", "3", now.Add(time.Hour), now.Add(2*time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, got, "outside the time range")
}

// Found keeps the before image as stored: Event.Before, decoded, would
// round a big integer.
func TestFindKeepsTheBeforeImage(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data, object_data_before)
		VALUES ('Order', '1', 'UPDATE', '{"n": 2}', '{"n": 12345678901234567890}')`)
	require.NoError(t, err)
	cl, err := New("core.tb_entity_change_log")
	require.NoError(t, err)
	f, err := cl.Find(ctx, pool, "1")
	require.NoError(t, err)
	require.JSONEq(t, `{"n": 12345678901234567890}`, string(f.Before))
	require.Contains(t, string(f.Before), "12345678901234567890", "big integers keep their digits")
}

package retention_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/retention"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// retention.audit deletes audit records older than the period (by their
// timestamp) and the search documents' tombstones last written before it,
// in batches, never a live document; the dry run counts exactly what the
// run then deletes, and the metric counts it by table.
func TestAuditAndSearchTombstones(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := sqltest.NewDB(t)
	// 11 records 40 days old, 3 of 10 days; ids sort against their age.
	exec(t, pool, `INSERT INTO observer_audit (id, event_id, event_seq, entity_type, entity_id, event_kind, ts, status)
		SELECT g || ':received', 'e', g, 'Order', g::text, 'INSERT',
		       now() - make_interval(days => CASE WHEN g <= 11 THEN 40 ELSE 10 END), 'received'
		FROM generate_series(1, 14) g`)
	// Tombstones: 6 old, 1 recent; live documents: old and recent.
	exec(t, pool, `INSERT INTO observer_search_documents ("index", entity_type, entity_id, doc, version_txid, updated_at)
		SELECT 'i', 'Order', g::text, CASE WHEN g > 7 THEN '{}'::jsonb END, 5,
		       now() - make_interval(days => CASE WHEN g IN (7, 9) THEN 1 ELSE 40 END)
		FROM generate_series(1, 9) g`)

	reg := prometheus.NewRegistry()
	r := newRunner(t, pool, reg, observers.RetentionConfig{})
	dry, err := r.Apply(ctx, retention.Options{DryRun: true})
	require.NoError(t, err)
	audit := tableReport(t, dry, observers.RetentionAudit)
	require.Equal(t, "30d", audit.Period, "the default")
	require.Equal(t, int64(11), audit.Rows)
	require.Equal(t, int64(6), tableReport(t, dry, observers.RetentionSearchTombstones).Rows)
	require.Equal(t, int64(14), count(t, pool, `SELECT count(*) FROM observer_audit`), "a dry run deletes nothing")
	require.Zero(t, deleted(t, r, observers.RetentionAudit))

	rep, err := r.Apply(ctx, retention.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(11), tableReport(t, rep, observers.RetentionAudit).Rows)
	require.True(t, tableReport(t, rep, observers.RetentionAudit).Complete)
	require.Equal(t, int64(6), tableReport(t, rep, observers.RetentionSearchTombstones).Rows)
	require.Equal(t, int64(3), count(t, pool, `SELECT count(*) FROM observer_audit WHERE ts > now() - interval '30 days'`))
	require.Equal(t, int64(3), count(t, pool, `SELECT count(*) FROM observer_audit`))
	require.Equal(t, int64(3), count(t, pool, `SELECT count(*) FROM observer_search_documents`), "the recent tombstone and the live documents stay")
	require.Equal(t, int64(2), count(t, pool, `SELECT count(*) FROM observer_search_documents WHERE doc IS NOT NULL`))
	require.InDelta(t, 11, deleted(t, r, observers.RetentionAudit), 0)
	require.InDelta(t, 6, deleted(t, r, observers.RetentionSearchTombstones), 0)

	// A shorter period takes the rest; off keeps everything.
	r.SetConfig(observers.RetentionConfig{Audit: observers.RetentionOff})
	rep, err = r.Apply(ctx, retention.Options{})
	require.NoError(t, err)
	require.Equal(t, "off", tableReport(t, rep, observers.RetentionAudit).Period)
	require.Equal(t, "off", tableReport(t, rep, observers.RetentionSearchTombstones).Period)
	require.Equal(t, int64(3), count(t, pool, `SELECT count(*) FROM observer_audit`))
	r.SetConfig(observers.RetentionConfig{Audit: 5 * day})
	rep, err = r.Apply(ctx, retention.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(3), tableReport(t, rep, observers.RetentionAudit).Rows)
	require.Zero(t, count(t, pool, `SELECT count(*) FROM observer_audit`))
	require.Equal(t, int64(3), count(t, pool, `SELECT count(*) FROM observer_search_documents`), "a day-old tombstone and the live documents stay")
}

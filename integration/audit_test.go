package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

// auditRow is one row of observer_audit, as the test compares it.
type auditRow struct {
	ID, EventID, EntityType, EntityID, Kind, Observer, ActionType, Status, Error string
	Seq                                                                          int64
	Attempt, ActionIndex                                                         int
	DurationMS                                                                   int64
	Data                                                                         *string
	At                                                                           time.Time
}

func auditRows(t *testing.T, pool *pgxpool.Pool) map[string]auditRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id, event_id, event_seq, entity_type, entity_id, event_kind,
		coalesce(observer_id, ''), coalesce(action_type, ''), action_index, status, coalesce(error, ''), attempt, duration_ms, data::text, ts
		FROM observer_audit`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]auditRow{}
	for rows.Next() {
		var r auditRow
		require.NoError(t, rows.Scan(&r.ID, &r.EventID, &r.Seq, &r.EntityType, &r.EntityID, &r.Kind, &r.Observer, &r.ActionType,
			&r.ActionIndex, &r.Status, &r.Error, &r.Attempt, &r.DurationMS, &r.Data, &r.At))
		out[r.ID] = r
	}
	require.NoError(t, rows.Err())
	return out
}

// With audit: on (postgres), events flow through three webhooks — one
// receiver answers 200, one 400, one 503 and then 200 — and the audit
// table holds, with their fields: the event received (with its data), each
// outcome (succeeded; dead for the 400; failed then succeeded for the
// 503), the deliveries dedup did not enqueue for the same change logged
// again, and the change too large to process (skipped).
func TestAuditTrailOfDeliveries(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	ok := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	bad := observertest.NewReceiver(t, observertest.ReceiverOptions{Respond: func(context.Context, observertest.Delivery) observertest.Response {
		return observertest.Response{Status: http.StatusBadRequest, Body: []byte(`{"error":"order total missing"}`)}
	}})
	var flakyCalls atomic.Int64
	flaky := observertest.NewReceiver(t, observertest.ReceiverOptions{Respond: func(context.Context, observertest.Delivery) observertest.Response {
		if flakyCalls.Add(1) == 1 {
			return observertest.Response{Status: http.StatusServiceUnavailable}
		}
		return observertest.Response{}
	}})
	hook := func(recv *observertest.Receiver) string {
		return fmt.Sprintf("entity: Order\nevents: [INSERT]\nactions:\n  - {type: webhook, url: %s/orders}\n"+
			"retry: {max_attempts: 3, initial_delay: 50ms, max_delay: 100ms}\n", recv.URL())
	}
	cfg := webhookConfig("audit: {backend: postgres, flush_interval: 50ms}\ndedup: {window: 5m}\n", map[string]string{
		"to_ok": hook(ok), "to_bad": hook(bad), "to_flaky": hook(flaky),
	})
	cfg = strings.Replace(cfg, "listener:\n", "listener:\n  max_event_bytes: 2KiB\n", 1)
	p := observertest.StartProcess(t, runOptions(url, cfg))

	data := `{"total": 42, "customer": "Ada"}`
	seq := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "o-1", Kind: "INSERT", Data: data})
	ok.WaitN(t, 1, 30*time.Second)
	flaky.WaitN(t, 1, 30*time.Second)
	dup := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "o-1", Kind: "INSERT", Data: data})
	big := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "o-2", Kind: "INSERT",
		Data: `{"blob": "` + strings.Repeat("x", 4000) + `"}`})

	var eventID string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT id::text FROM `+observertest.ChangeLogTable+
		` WHERE pk_entity_change_log = $1`, seq).Scan(&eventID))
	outcome := func(observer string, attempt int, status storage.AuditStatus) string {
		return storage.AuditID(seq, observer, 0, attempt, status)
	}
	want := []string{
		storage.AuditID(seq, "", 0, 0, storage.AuditReceived),
		outcome("to_ok", 1, storage.AuditSucceeded),
		outcome("to_bad", 1, storage.AuditDead),
		outcome("to_flaky", 1, storage.AuditFailed),
		outcome("to_flaky", 2, storage.AuditSucceeded),
		storage.AuditID(dup, "to_ok", 0, 0, storage.AuditDeduplicated),
		storage.AuditID(dup, "to_bad", 0, 0, storage.AuditDeduplicated),
		storage.AuditID(dup, "to_flaky", 0, 0, storage.AuditDeduplicated),
		storage.AuditID(big, "", 0, 0, storage.AuditSkipped),
	}
	var got map[string]auditRow
	require.Eventually(t, func() bool {
		got = auditRows(t, pool)
		for _, id := range want {
			if _, ok := got[id]; !ok {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "the audit trail holds every record: %v", p.Tail())
	require.Len(t, got, len(want), "nothing else: %v", got)

	rec := got[want[0]]
	require.Equal(t, auditRow{ID: want[0], EventID: eventID, Seq: seq, EntityType: "Order", EntityID: "o-1", Kind: "INSERT",
		Status: "received", Data: rec.Data, At: rec.At}, rec)
	require.NotNil(t, rec.Data)
	require.JSONEq(t, data, *rec.Data, "the event record keeps the event's data")
	for _, id := range want[1:5] {
		r := got[id]
		require.Equal(t, eventID, r.EventID, id)
		require.Equal(t, seq, r.Seq, id)
		require.Equal(t, "Order", r.EntityType, id)
		require.Equal(t, "o-1", r.EntityID, id)
		require.Equal(t, "INSERT", r.Kind, id)
		require.Equal(t, "webhook", r.ActionType, id)
		require.Nil(t, r.Data, "outcomes carry no data: %s", id)
		require.GreaterOrEqual(t, r.DurationMS, int64(0), id)
		require.False(t, r.At.Before(rec.At), "an outcome comes after the event: %s", id)
	}
	require.Equal(t, "to_ok", got[want[1]].Observer)
	require.Equal(t, 1, got[want[1]].Attempt)
	require.Empty(t, got[want[1]].Error)
	require.Contains(t, got[want[2]].Error, "400")
	require.Contains(t, got[want[2]].Error, "order total missing", "the receiver's answer is in the error")
	require.Contains(t, got[want[3]].Error, "503")
	require.Equal(t, 2, got[want[4]].Attempt)
	require.Empty(t, got[want[4]].Error)
	for _, id := range want[5:8] {
		require.Equal(t, "deduplicated", got[id].Status, id)
		require.Equal(t, "o-1", got[id].EntityID, id)
		require.Equal(t, 0, got[id].Attempt, id)
	}
	skipped := got[want[8]]
	require.Equal(t, "o-2", skipped.EntityID)
	require.Contains(t, skipped.Error, "too large")
	require.Nil(t, skipped.Data)

	require.Equal(t, 1.0, observertest.Metric(t, p.HTTPAddr(), `observer_audit_records_total{status="dead"}`))
	require.Zero(t, observertest.Metric(t, p.HTTPAddr(), "observer_audit_dropped_total"))
	var outbox int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM observer_audit_outbox`).Scan(&outbox))
	require.Zero(t, outbox)

	// The free-text search finds the failure by the receiver's words.
	page, err := postgres.NewAudit(pool).Search(context.Background(), storage.AuditQuery{Text: "total missing"})
	require.NoError(t, err)
	require.Len(t, page.Records, 1)
	require.Equal(t, want[2], page.Records[0].ID)
}

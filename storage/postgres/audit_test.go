package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

func auditRec(seq int64, observer string, status storage.AuditStatus, at time.Time) storage.AuditRecord {
	r := storage.AuditRecord{
		ID: storage.AuditID(seq, observer, 0, 1, status), EventID: "e-" + string(rune('a'+seq%26)), EventSeq: seq,
		EntityType: "Order", EntityID: "42", EventKind: "INSERT", Timestamp: at,
		ObserverID: observer, Status: status, Attempt: 1,
	}
	if observer != "" {
		r.ActionType = "webhook"
	}
	return r
}

func TestAuditWriteSearch(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	a := postgres.NewAudit(pool)
	require.Equal(t, "postgres", a.Backend())
	at := time.Date(2026, 3, 4, 5, 6, 7, 891_234_567, time.UTC)

	ev := auditRec(1, "", storage.AuditReceived, at)
	ev.Data = json.RawMessage(`{"note": "Déjà vu", "n": 12}`)
	failed := auditRec(1, "hook", storage.AuditFailed, at.Add(time.Second))
	failed.Error, failed.DurationMS = "POST https://x: 503 Service Unavailable", 17
	require.NoError(t, a.Write(ctx, []storage.AuditRecord{ev, failed, ev}))
	require.NoError(t, a.Write(ctx, []storage.AuditRecord{ev}), "written twice, kept once")

	page, err := a.Search(ctx, storage.AuditQuery{})
	require.NoError(t, err)
	require.Len(t, page.Records, 2)
	require.Empty(t, page.Next)
	got := page.Records[1]
	require.Equal(t, ev.ID, got.ID)
	require.True(t, at.Truncate(time.Millisecond).Equal(got.Timestamp), "to the millisecond: %s", got.Timestamp)
	require.JSONEq(t, string(ev.Data), string(got.Data))
	got.Data, ev.Data, ev.Timestamp = nil, nil, got.Timestamp
	require.Equal(t, ev, got)
	require.Equal(t, failed.ID, page.Records[0].ID, "newest first")

	page, err = a.Search(ctx, storage.AuditQuery{Text: "déjà 12"})
	require.NoError(t, err)
	require.Len(t, page.Records, 1)
	page, err = a.Search(ctx, storage.AuditQuery{Text: "service unavailable", Status: storage.AuditFailed, ObserverID: "hook"})
	require.NoError(t, err)
	require.Len(t, page.Records, 1)
}

func TestAuditWriteRejectedRecords(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	a := postgres.NewAudit(pool)
	at := time.Now()
	var recs []storage.AuditRecord
	for i := range 20 {
		recs = append(recs, auditRec(int64(i+1), "", storage.AuditReceived, at))
	}
	recs[3].Data = json.RawMessage(`{not json`)
	recs[11].Error = "nul \x00 byte"
	recs[17].Data = json.RawMessage(`{"a": "\u0000"}`)
	recs[19].ID = ""
	err := a.Write(ctx, recs)
	var bulk *storage.BulkError
	require.True(t, errors.As(err, &bulk), "got %v", err)
	var failed []int
	for _, f := range bulk.Failed {
		failed = append(failed, f.Index)
		require.True(t, errors.Is(f.Err, storage.ErrRejected), "#%d: %v", f.Index, f.Err)
	}
	require.ElementsMatch(t, []int{3, 11, 17, 19}, failed)
	page, err := a.Search(ctx, storage.AuditQuery{Limit: 100})
	require.NoError(t, err)
	require.Len(t, page.Records, 16, "the others are stored")
}

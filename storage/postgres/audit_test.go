package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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

func TestAuditWriteAloneOrCancelled(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	a := postgres.NewAudit(pool)
	bad := auditRec(1, "", storage.AuditReceived, time.Now())
	bad.Data = json.RawMessage(`[`)
	err := a.Write(ctx, []storage.AuditRecord{bad})
	var bulk *storage.BulkError
	require.True(t, errors.As(err, &bulk), "got %v", err)
	require.Len(t, bulk.Failed, 1)
	require.Equal(t, 0, bulk.Failed[0].Index)
	require.ErrorIs(t, bulk.Failed[0].Err, storage.ErrRejected)

	// A cancelled context stores nothing and is no rejection: retry it all.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = a.Write(cctx, []storage.AuditRecord{auditRec(2, "", storage.AuditReceived, time.Now())})
	require.Error(t, err)
	require.False(t, errors.As(err, &bulk), "got %v", err)
	require.False(t, errors.Is(err, storage.ErrRejected), "got %v", err)
	page, err := a.Search(ctx, storage.AuditQuery{})
	require.NoError(t, err)
	require.Empty(t, page.Records)
}

// Postgres refuses a lexeme of 2 KB and a tsvector of 1 MB: such words
// are left out of the index, and the record is stored.
func TestAuditWriteHugeText(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	a := postgres.NewAudit(pool)
	words := make([]string, 0, 150_000)
	words = append(words, strings.Repeat("x", 3000))
	for i := range 150_000 {
		words = append(words, fmt.Sprintf("w%07d", i))
	}
	data, err := json.Marshal(map[string]any{"text": strings.Join(words, " ")})
	require.NoError(t, err)
	r := auditRec(1, "", storage.AuditReceived, time.Now())
	r.Data = data
	require.NoError(t, a.Write(ctx, []storage.AuditRecord{r}))
	page, err := a.Search(ctx, storage.AuditQuery{Text: "w0000001"})
	require.NoError(t, err)
	require.Len(t, page.Records, 1, "the first words are indexed")
	page, err = a.Search(ctx, storage.AuditQuery{Text: "w0149999"})
	require.NoError(t, err)
	require.Empty(t, page.Records, "words beyond the budget are not")
	page, err = a.Search(ctx, storage.AuditQuery{Text: strings.Repeat("x", 3000)})
	require.NoError(t, err)
	require.Empty(t, page.Records)
}

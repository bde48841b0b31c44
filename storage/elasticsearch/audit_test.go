package elasticsearch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch/estest"
)

// record is an event record of id at t.
func record(id string, t time.Time) storage.AuditRecord {
	return storage.AuditRecord{
		ID: id, EventID: "ev-" + id, EventSeq: 1, EntityType: "Order", EntityID: "A-1", EventKind: "INSERT",
		Timestamp: t, Status: storage.AuditReceived, Data: json.RawMessage(`{"note": "hello"}`),
	}
}

func searchIDs(t *testing.T, a storage.Audit, q storage.AuditQuery) []string {
	t.Helper()
	page, err := a.Search(context.Background(), q)
	require.NoError(t, err)
	var ids []string
	for _, r := range page.Records {
		ids = append(ids, r.ID)
	}
	return ids
}

func bulkRequests(srv *estest.Server) int {
	n := 0
	for _, r := range srv.Requests() {
		if strings.HasPrefix(r, "POST /_bulk") {
			n++
		}
	}
	return n
}

func TestAuditDailyIndicesTakeTheTemplate(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	ctx := context.Background()
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	// 00:30 in Paris on the 2nd is 23:30 UTC on the 1st.
	late := time.Date(2026, 3, 2, 0, 30, 0, 0, paris)
	require.NoError(t, c.Audit().Write(ctx, []storage.AuditRecord{
		record("1:received", late), record("2:received", time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)),
	}))
	require.Equal(t, 1, bulkRequests(srv), "one write, one _bulk request")
	require.Equal(t, []string{"fraiseql_events-2026.03.01", "fraiseql_events-2026.03.02"}, srv.Indices())

	src, ok := srv.Source("fraiseql_events-2026.03.01", "1:received")
	require.True(t, ok)
	var stored map[string]any
	require.NoError(t, json.Unmarshal(src, &stored))
	require.Equal(t, "2026-03-01T23:30:00Z", stored["timestamp"], "UTC, to the millisecond")
	require.Equal(t, "hello", stored["search_text"])

	mapping, settings, ok := srv.Mapping("fraiseql_events-2026.03.02")
	require.True(t, ok)
	props := mapping["properties"].(map[string]any)
	require.Equal(t, map[string]any{"type": "keyword"}, props["entity_type"])
	require.Equal(t, map[string]any{"type": "date"}, props["timestamp"])
	require.Equal(t, map[string]any{"type": "object", "enabled": false}, props["data"])
	require.Equal(t, map[string]any{"type": "text", "analyzer": "fraiseql_words"}, props["search_text"])
	require.Equal(t, "fraiseql_events_policy", settings["index.lifecycle.name"])
	require.EqualValues(t, 0, settings["index.number_of_replicas"])

	// The record comes back as written, without search_text.
	page, err := c.Audit().Search(ctx, storage.AuditQuery{Text: "HELLO"})
	require.NoError(t, err)
	require.Len(t, page.Records, 2)
	require.True(t, page.Records[1].Timestamp.Equal(late))
}

func TestAuditPartialFailure(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	ctx := context.Background()
	now := time.Now()
	srv.FailItems(func(_, id string) int {
		return map[string]int{"2:received": http.StatusBadRequest, "3:received": http.StatusTooManyRequests, "4:received": http.StatusServiceUnavailable}[id]
	})
	bad := record("5:received", now)
	bad.Data = json.RawMessage(`{"not": json`)
	recs := []storage.AuditRecord{record("1:received", now), record("2:received", now), record("3:received", now), record("4:received", now), bad, record("", now)}
	err := c.Audit().Write(ctx, recs)
	var bulk *storage.BulkError
	require.True(t, errors.As(err, &bulk), "a partial failure is a BulkError: %v", err)
	var failed []int
	for _, f := range bulk.Failed {
		failed = append(failed, f.Index)
	}
	require.Equal(t, []int{1, 2, 3, 4, 5}, failed)
	rejected := map[int]bool{1: true, 4: true, 5: true} // a mapper error, data that is not JSON, no id
	for _, f := range bulk.Failed {
		require.Equal(t, rejected[f.Index], errors.Is(f.Err, storage.ErrRejected), "item %d: %v", f.Index, f.Err)
		require.Equal(t, !rejected[f.Index], errors.Is(f.Err, storage.ErrUnavailable), "item %d: %v", f.Index, f.Err)
	}
	require.ErrorContains(t, bulk.Failed[1].Err, "es_rejected_execution_exception")
	require.Equal(t, []string{"1:received"}, searchIDs(t, c.Audit(), storage.AuditQuery{}))

	// Retried once the cluster takes them: the stored one stays one.
	srv.FailItems(nil)
	require.NoError(t, c.Audit().Write(ctx, recs[:4]))
	require.ElementsMatch(t, []string{"1:received", "2:received", "3:received", "4:received"}, searchIDs(t, c.Audit(), storage.AuditQuery{}))
}

func TestAuditWholeRequestFailure(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	ctx := context.Background()
	recs := []storage.AuditRecord{record("1:received", time.Now()), record("2:received", time.Now())}
	for _, mode := range []estest.Mode{estest.Unavailable, estest.Refuse} {
		srv.SetMode(mode)
		err := c.Audit().Write(ctx, recs)
		require.Error(t, err, "mode %d", mode)
		var bulk *storage.BulkError
		require.False(t, errors.As(err, &bulk), "mode %d: the whole request failed: %v", mode, err)
		require.ErrorIs(t, err, storage.ErrUnavailable, "mode %d", mode)
		require.NotErrorIs(t, err, storage.ErrRejected)
		_, err = c.Audit().Search(ctx, storage.AuditQuery{})
		require.ErrorIs(t, err, storage.ErrUnavailable, "mode %d", mode)
	}
	srv.SetMode(estest.Up)
	require.NoError(t, c.Audit().Write(ctx, recs))
	require.Len(t, searchIDs(t, c.Audit(), storage.AuditQuery{}), 2)
}

func TestAuditWriteIsBoundedByTheTimeout(t *testing.T) {
	t.Parallel()
	srv := estest.New(t)
	c, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL, Timeout: 100 * time.Millisecond})
	require.NoError(t, err)
	srv.SetDelay(time.Minute)
	err = c.Audit().Write(context.Background(), []storage.AuditRecord{record("1:received", time.Now())})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var bulk *storage.BulkError
	require.False(t, errors.As(err, &bulk))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.Audit().Write(ctx, []storage.AuditRecord{record("2:received", time.Now())}), context.Canceled)
}

func TestAuditLargeWriteIsSeveralRequests(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	big := fmt.Sprintf(`{"blob": %q}`, strings.Repeat("x", 1<<20))
	var recs []storage.AuditRecord
	for i := range 7 {
		r := record(fmt.Sprintf("%d:received", i), time.Now())
		r.Data = json.RawMessage(big)
		recs = append(recs, r)
	}
	require.NoError(t, c.Audit().Write(context.Background(), recs))
	require.Greater(t, bulkRequests(srv), 1, "7 MB goes in requests of at most 5 MB")
	require.Len(t, searchIDs(t, c.Audit(), storage.AuditQuery{Limit: 10}), 7)
}

func TestAuditCustomPrefix(t *testing.T) {
	t.Parallel()
	srv := estest.New(t)
	c, err := elasticsearch.New(elasticsearch.Config{URL: srv.URL, AuditIndexPrefix: "acme_audit"})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, c.EnsureTemplates(ctx))
	_, ok := srv.Template("acme_audit")
	require.True(t, ok)
	_, ok = srv.Policy("acme_audit_policy")
	require.True(t, ok)
	require.NoError(t, c.Audit().Write(ctx, []storage.AuditRecord{record("1:received", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}))
	require.Equal(t, []string{"acme_audit-2026.01.02"}, srv.Indices())
	require.Len(t, searchIDs(t, c.Audit(), storage.AuditQuery{}), 1)
}

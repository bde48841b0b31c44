package storagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// SearchHarness makes the Search stores under test.
type SearchHarness struct {
	// New returns an empty store: documents of different calls must not
	// be visible to each other (a database or an index prefix per call).
	New func(t *testing.T) storage.Search
}

// AuditHarness makes the Audit stores under test.
type AuditHarness struct {
	// New returns an empty audit trail, as SearchHarness.New.
	New func(t *testing.T) storage.Audit
}

// RunSearch runs the Search suite: every backend gives the same answers.
func RunSearch(t *testing.T, h SearchHarness) {
	ctx := context.Background()
	order1 := storage.DocKey{Index: "shared", EntityType: "Order", EntityID: "1"}
	user1 := storage.DocKey{Index: "shared", EntityType: "User", EntityID: "1"}
	v := func(txid uint64, seq int64) storage.Version { return storage.Version{TxID: txid, Seq: seq} }

	t.Run("IndexGetDelete", func(t *testing.T) {
		t.Parallel()
		s := h.New(t)
		_, err := s.Get(ctx, order1)
		require.ErrorIs(t, err, storage.ErrNotFound)
		require.NoError(t, s.Index(ctx, order1, v(10, 1), []byte(`{"total": 12.5, "note": "a \"quoted\" \u00e9", "n": 12345678901234567890}`)))
		requireDoc(t, s, order1, `{"total": 12.5, "note": "a \"quoted\" é", "n": 12345678901234567890}`)
		require.NoError(t, s.Delete(ctx, order1, v(11, 2)))
		_, err = s.Get(ctx, order1)
		require.ErrorIs(t, err, storage.ErrNotFound)
		require.NoError(t, s.Delete(ctx, storage.DocKey{Index: "shared", EntityType: "Order", EntityID: "absent"}, v(12, 3)),
			"deleting an absent document is not an error")
	})

	t.Run("SameIDOfTwoEntityTypesIsTwoDocuments", func(t *testing.T) {
		t.Parallel()
		s := h.New(t)
		require.NoError(t, s.Index(ctx, order1, v(10, 1), []byte(`{"kind": "order"}`)))
		require.NoError(t, s.Index(ctx, user1, v(10, 2), []byte(`{"kind": "user"}`)))
		requireDoc(t, s, order1, `{"kind": "order"}`)
		requireDoc(t, s, user1, `{"kind": "user"}`)
		other := storage.DocKey{Index: "other", EntityType: "Order", EntityID: "1"}
		_, err := s.Get(ctx, other)
		require.ErrorIs(t, err, storage.ErrNotFound, "indices are separate")
		require.NoError(t, s.Delete(ctx, user1, v(11, 3)))
		requireDoc(t, s, order1, `{"kind": "order"}`)
		page, err := s.Query(ctx, storage.DocQuery{Index: "shared"})
		require.NoError(t, err)
		require.Equal(t, []storage.DocKey{order1}, docKeys(page))
	})

	t.Run("VersionGuard", func(t *testing.T) {
		t.Parallel()
		s := h.New(t)
		require.NoError(t, s.Index(ctx, order1, v(20, 5), []byte(`{"v": 2}`)))
		require.NoError(t, s.Index(ctx, order1, v(19, 9), []byte(`{"v": 1}`)), "an older change is not an error")
		requireDoc(t, s, order1, `{"v": 2}`)
		require.NoError(t, s.Index(ctx, order1, v(20, 4), []byte(`{"v": 1}`)), "same transaction, earlier change")
		requireDoc(t, s, order1, `{"v": 2}`)
		require.NoError(t, s.Index(ctx, order1, v(20, 5), []byte(`{"v": "same"}`)), "the same change again")
		requireDoc(t, s, order1, `{"v": 2}`)
		require.NoError(t, s.Index(ctx, order1, v(20, 6), []byte(`{"v": 3}`)), "same transaction, later change")
		requireDoc(t, s, order1, `{"v": 3}`)

		// A delete is versioned too: an older change delivered after it does
		// not bring the document back; a newer one does.
		require.NoError(t, s.Delete(ctx, order1, v(30, 1)))
		require.NoError(t, s.Index(ctx, order1, v(25, 1), []byte(`{"v": "stale"}`)))
		_, err := s.Get(ctx, order1)
		require.ErrorIs(t, err, storage.ErrNotFound, "a retried older change revived a deleted document")
		page, err := s.Query(ctx, storage.DocQuery{Index: "shared"})
		require.NoError(t, err)
		require.Empty(t, page.Hits, "a deletion is never a hit")
		require.NoError(t, s.Delete(ctx, order1, v(29, 1)), "an older delete after a newer one")
		require.NoError(t, s.Index(ctx, order1, v(31, 1), []byte(`{"v": 4}`)))
		requireDoc(t, s, order1, `{"v": 4}`)
		require.NoError(t, s.Delete(ctx, order1, v(30, 9)), "a delete older than the document")
		requireDoc(t, s, order1, `{"v": 4}`)

		// Rows older than the txid column have only their pk.
		legacy := storage.DocKey{Index: "shared", EntityType: "Legacy", EntityID: "7"}
		require.NoError(t, s.Index(ctx, legacy, v(0, 100), []byte(`{"v": 1}`)))
		require.NoError(t, s.Index(ctx, legacy, v(0, 99), []byte(`{"v": 0}`)))
		requireDoc(t, s, legacy, `{"v": 1}`)
		require.NoError(t, s.Index(ctx, legacy, v(5, 1), []byte(`{"v": 2}`)), "a change with a txid follows every one without")
		requireDoc(t, s, legacy, `{"v": 2}`)

		page, err = s.Query(ctx, storage.DocQuery{Index: "shared", EntityType: "Order"})
		require.NoError(t, err)
		require.Len(t, page.Hits, 1)
		require.Equal(t, v(31, 1), page.Hits[0].Version)
		require.JSONEq(t, `{"v": 4}`, string(page.Hits[0].Doc))
	})

	t.Run("Query", func(t *testing.T) {
		t.Parallel()
		s := h.New(t)
		docs := []struct {
			key storage.DocKey
			doc string
		}{
			{storage.DocKey{Index: "crm", EntityType: "User", EntityID: "u-2"}, `{"name": "Ada Lovelace", "tier": "gold"}`},
			{storage.DocKey{Index: "crm", EntityType: "Order", EntityID: "A-1002"}, `{"customer": {"name": "Ada"}, "status": "Shipped", "lines": [{"sku": "PEN-9"}]}`},
			{storage.DocKey{Index: "crm", EntityType: "Order", EntityID: "A-1001"}, `{"customer": {"name": "Grace Hopper"}, "status": "pending", "total": 99.5}`},
			{storage.DocKey{Index: "crm", EntityType: "User", EntityID: "u-1"}, `{"name": "Grace Hopper", "tier": "silver", "status": "shipped"}`},
			{storage.DocKey{Index: "crm", EntityType: "Order", EntityID: "A-1003"}, `{"customer": {"name": "Linus"}, "status": "cancelled", "paid": true}`},
			{storage.DocKey{Index: "elsewhere", EntityType: "Order", EntityID: "A-1004"}, `{"customer": {"name": "Ada"}, "status": "shipped"}`},
		}
		for i, d := range docs {
			require.NoError(t, s.Index(ctx, d.key, v(100, int64(i)), []byte(d.doc)))
		}
		k := func(typ, id string) storage.DocKey {
			return storage.DocKey{Index: "crm", EntityType: typ, EntityID: id}
		}
		for _, tc := range []struct {
			name string
			q    storage.DocQuery
			want []storage.DocKey
		}{
			{"all, by type then id", storage.DocQuery{Index: "crm"},
				[]storage.DocKey{k("Order", "A-1001"), k("Order", "A-1002"), k("Order", "A-1003"), k("User", "u-1"), k("User", "u-2")}},
			{"entity type", storage.DocQuery{Index: "crm", EntityType: "User"}, []storage.DocKey{k("User", "u-1"), k("User", "u-2")}},
			{"entity id", storage.DocQuery{Index: "crm", EntityID: "A-1002"}, []storage.DocKey{k("Order", "A-1002")}},
			{"text in a nested value", storage.DocQuery{Index: "crm", Text: "ada"}, []storage.DocKey{k("Order", "A-1002"), k("User", "u-2")}},
			{"text in an array, any case", storage.DocQuery{Index: "crm", Text: "pen-9"}, []storage.DocKey{k("Order", "A-1002")}},
			{"every word must occur", storage.DocQuery{Index: "crm", Text: "grace shipped"}, []storage.DocKey{k("User", "u-1")}},
			{"numbers and booleans are text", storage.DocQuery{Index: "crm", Text: "99.5"}, []storage.DocKey{k("Order", "A-1001")}},
			{"booleans", storage.DocQuery{Index: "crm", Text: "true"}, []storage.DocKey{k("Order", "A-1003")}},
			{"keys are not text", storage.DocQuery{Index: "crm", Text: "customer"}, nil},
			{"text and type", storage.DocQuery{Index: "crm", EntityType: "Order", Text: "shipped"}, []storage.DocKey{k("Order", "A-1002")}},
			{"no such word", storage.DocQuery{Index: "crm", Text: "zeppelin"}, nil},
		} {
			page, err := s.Query(ctx, tc.q)
			require.NoError(t, err, tc.name)
			require.Equal(t, tc.want, docKeys(page), tc.name)
			require.Empty(t, page.Next, "%s: one page", tc.name)
		}

		// Pages of two: every document once, in order.
		var got []storage.DocKey
		q := storage.DocQuery{Index: "crm", Limit: 2}
		for pages := 0; ; pages++ {
			require.Less(t, pages, 5, "pagination does not end")
			page, err := s.Query(ctx, q)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page.Hits), 2)
			got = append(got, docKeys(page)...)
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
		require.Equal(t, []storage.DocKey{k("Order", "A-1001"), k("Order", "A-1002"), k("Order", "A-1003"), k("User", "u-1"), k("User", "u-2")}, got)
	})

	t.Run("NotJSONIsRejected", func(t *testing.T) {
		t.Parallel()
		s := h.New(t)
		err := s.Index(ctx, order1, v(1, 1), []byte(`{"a": `))
		require.ErrorIs(t, err, storage.ErrRejected)
		_, err = s.Get(ctx, order1)
		require.ErrorIs(t, err, storage.ErrNotFound)
	})
}

func requireDoc(t *testing.T, s storage.Search, key storage.DocKey, want string) {
	t.Helper()
	doc, err := s.Get(context.Background(), key)
	require.NoError(t, err, "get %s", key)
	require.JSONEq(t, want, string(doc), "document of %s", key)
}

func docKeys(p storage.DocPage) []storage.DocKey {
	var keys []storage.DocKey
	for _, h := range p.Hits {
		keys = append(keys, h.Key)
	}
	return keys
}

// auditFixture is the suite's audit trail: three events (two Orders, a
// User) read in the last hours and their deliveries' outcomes, and an
// Order event of three days ago.
func auditFixture(now time.Time) []storage.AuditRecord {
	at := func(ago time.Duration) time.Time { return now.Add(-ago).Truncate(time.Millisecond) }
	event := func(seq int64, typ, id, kind string, ago time.Duration, data string) storage.AuditRecord {
		return storage.AuditRecord{
			ID: storage.AuditID(seq, "", 0, 0, storage.AuditReceived), EventID: fmt.Sprintf("0000000%d-0000-4000-8000-000000000000", seq),
			EventSeq: seq, EntityType: typ, EntityID: id, EventKind: kind, Timestamp: at(ago), Status: storage.AuditReceived, Data: json.RawMessage(data),
		}
	}
	outcome := func(ev storage.AuditRecord, observer, typ string, action, attempt int, status storage.AuditStatus, ago time.Duration, errText string, ms int64) storage.AuditRecord {
		return storage.AuditRecord{
			ID: storage.AuditID(ev.EventSeq, observer, action, attempt, status), EventID: ev.EventID, EventSeq: ev.EventSeq,
			EntityType: ev.EntityType, EntityID: ev.EntityID, EventKind: ev.EventKind, Timestamp: at(ago),
			ObserverID: observer, ActionType: typ, ActionIndex: action, Status: status, Error: errText, Attempt: attempt, DurationMS: ms,
		}
	}
	e1 := event(1, "Order", "A-1001", "INSERT", 3*time.Hour, `{"customer": {"name": "Ada Lovelace"}, "total": 120, "paid": true}`)
	e2 := event(2, "Order", "A-1002", "UPDATE", 2*time.Hour, `{"customer": {"name": "Grace Hopper"}, "status": "shipped"}`)
	e3 := event(3, "User", "u-1", "INSERT", time.Hour, `{"name": "Linus", "email": "linus@example.com"}`)
	old := event(4, "Order", "A-0999", "DELETE", 72*time.Hour, `{"customer": {"name": "Ada Lovelace"}}`)
	return []storage.AuditRecord{
		e1, e2, e3, old,
		outcome(e1, "order_webhook", "webhook", 0, 1, storage.AuditSucceeded, 3*time.Hour-time.Second, "", 12),
		outcome(e1, "order_email", "email", 1, 1, storage.AuditSucceeded, 3*time.Hour-time.Second, "", 40),
		outcome(e2, "order_webhook", "webhook", 0, 1, storage.AuditFailed, 2*time.Hour-time.Second, "webhook POST https://hooks.example.com/orders responded 503 Service Unavailable", 30),
		outcome(e2, "order_webhook", "webhook", 0, 2, storage.AuditDead, 2*time.Hour-2*time.Second, "webhook POST https://hooks.example.com/orders: context deadline exceeded (timed out)", 5000),
		outcome(e2, "order_email", "email", 1, 1, storage.AuditDeduplicated, 2*time.Hour, "", 0),
		outcome(e3, "user_sync", "webhook", 0, 1, storage.AuditCached, time.Hour-time.Second, "", 0),
		outcome(e3, "user_audit", "database", 0, 1, storage.AuditFailed, time.Hour-time.Second, `database: function audit_user does not exist (SQLSTATE 42883)`, 3),
		outcome(old, "order_webhook", "webhook", 0, 1, storage.AuditFailed, 72*time.Hour-time.Second, "webhook POST https://hooks.example.com/orders responded 500", 8),
	}
}

// RunAudit runs the Audit suite: every backend gives the same answers.
func RunAudit(t *testing.T, h AuditHarness) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	all := auditFixture(now)
	byID := map[string]storage.AuditRecord{}
	for _, r := range all {
		byID[r.ID] = r
	}
	written := func(t *testing.T) storage.Audit {
		a := h.New(t)
		// Two writes, the second repeating two records: still one each.
		require.NoError(t, a.Write(ctx, all[:6]))
		require.NoError(t, a.Write(ctx, all[4:]))
		return a
	}
	// newestFirst is the ids of the records pick selects, in the order a
	// search returns them.
	newestFirst := func(pick func(r storage.AuditRecord) bool) []string {
		var recs []storage.AuditRecord
		for _, r := range all {
			if pick(r) {
				recs = append(recs, r)
			}
		}
		slices.SortFunc(recs, func(a, b storage.AuditRecord) int {
			if c := b.Timestamp.Compare(a.Timestamp); c != 0 {
				return c
			}
			switch {
			case a.ID > b.ID:
				return -1
			case a.ID < b.ID:
				return 1
			}
			return 0
		})
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		return ids
	}

	t.Run("WriteIsIdempotentAndKeepsEveryField", func(t *testing.T) {
		t.Parallel()
		a := written(t)
		page, err := a.Search(ctx, storage.AuditQuery{Limit: 100})
		require.NoError(t, err)
		require.Empty(t, page.Next)
		require.Equal(t, newestFirst(func(storage.AuditRecord) bool { return true }), recordIDs(page), "each record once, newest first")
		for _, got := range page.Records {
			want := byID[got.ID]
			require.True(t, want.Timestamp.Equal(got.Timestamp), "%s: timestamp %s, want %s", got.ID, got.Timestamp, want.Timestamp)
			if len(want.Data) == 0 {
				require.Empty(t, got.Data, got.ID)
			} else {
				require.JSONEq(t, string(want.Data), string(got.Data), got.ID)
			}
			got.Timestamp, want.Timestamp, got.Data, want.Data = time.Time{}, time.Time{}, nil, nil
			require.Equal(t, want, got)
		}
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		a := written(t)
		dayAgo := now.Add(-24 * time.Hour)
		for _, tc := range []struct {
			name string
			q    storage.AuditQuery
			pick func(r storage.AuditRecord) bool
		}{
			// The guide's two queries.
			{"Order events of the last 24 h", storage.AuditQuery{EntityType: "Order", Since: dayAgo},
				func(r storage.AuditRecord) bool { return r.EntityType == "Order" && !r.Timestamp.Before(dayAgo) }},
			{"failed webhook actions", storage.AuditQuery{ActionType: "webhook", Status: storage.AuditFailed},
				func(r storage.AuditRecord) bool { return r.ActionType == "webhook" && r.Status == storage.AuditFailed }},
			{"event id", storage.AuditQuery{EventID: all[1].EventID}, func(r storage.AuditRecord) bool { return r.EventSeq == 2 }},
			{"event seq", storage.AuditQuery{EventSeq: 3}, func(r storage.AuditRecord) bool { return r.EventSeq == 3 }},
			{"entity id", storage.AuditQuery{EntityID: "A-1001"}, func(r storage.AuditRecord) bool { return r.EntityID == "A-1001" }},
			{"observer", storage.AuditQuery{ObserverID: "order_email"}, func(r storage.AuditRecord) bool { return r.ObserverID == "order_email" }},
			{"action type", storage.AuditQuery{ActionType: "database"}, func(r storage.AuditRecord) bool { return r.ActionType == "database" }},
			{"status dead", storage.AuditQuery{Status: storage.AuditDead}, func(r storage.AuditRecord) bool { return r.Status == storage.AuditDead }},
			{"status received", storage.AuditQuery{Status: storage.AuditReceived}, func(r storage.AuditRecord) bool { return r.Status == storage.AuditReceived }},
			{"status deduplicated", storage.AuditQuery{Status: storage.AuditDeduplicated}, func(r storage.AuditRecord) bool { return r.Status == storage.AuditDeduplicated }},
			{"status cached", storage.AuditQuery{Status: storage.AuditCached}, func(r storage.AuditRecord) bool { return r.Status == storage.AuditCached }},
			{"entity type is exact, not text", storage.AuditQuery{EntityType: "order"}, func(storage.AuditRecord) bool { return false }},
			{"since is inclusive", storage.AuditQuery{Since: all[2].Timestamp}, func(r storage.AuditRecord) bool { return !r.Timestamp.Before(all[2].Timestamp) }},
			{"until is exclusive", storage.AuditQuery{Until: all[1].Timestamp}, func(r storage.AuditRecord) bool { return r.Timestamp.Before(all[1].Timestamp) }},
			{"a window", storage.AuditQuery{Since: all[0].Timestamp, Until: all[2].Timestamp},
				func(r storage.AuditRecord) bool {
					return !r.Timestamp.Before(all[0].Timestamp) && r.Timestamp.Before(all[2].Timestamp)
				}},
			{"filters combine", storage.AuditQuery{EntityType: "Order", ObserverID: "order_webhook", Status: storage.AuditFailed, Since: dayAgo},
				func(r storage.AuditRecord) bool { return r.ID == all[6].ID }},
			// Free text: the error and the data's values.
			{"a word of an error", storage.AuditQuery{Text: "deadline"}, func(r storage.AuditRecord) bool { return r.ID == all[7].ID }},
			{"words of an error, any case and order", storage.AuditQuery{Text: "TIMED Exceeded"}, func(r storage.AuditRecord) bool { return r.ID == all[7].ID }},
			{"a value of the data", storage.AuditQuery{Text: "lovelace"},
				func(r storage.AuditRecord) bool {
					return (r.EventSeq == 1 || r.EventSeq == 4) && r.Status == storage.AuditReceived
				}},
			{"part of an e-mail address", storage.AuditQuery{Text: "example"},
				func(r storage.AuditRecord) bool {
					return r.EventSeq == 3 && r.Status == storage.AuditReceived || r.Error != "" && r.ActionType == "webhook"
				}},
			{"numbers and booleans are text", storage.AuditQuery{Text: "120 true"}, func(r storage.AuditRecord) bool { return r.EventSeq == 1 && r.Status == storage.AuditReceived }},
			{"every word must occur", storage.AuditQuery{Text: "503 deadline"}, func(storage.AuditRecord) bool { return false }},
			{"keys are not text", storage.AuditQuery{Text: "customer"}, func(storage.AuditRecord) bool { return false }},
			{"text with a filter", storage.AuditQuery{Text: "ada", EntityID: "A-0999"}, func(r storage.AuditRecord) bool { return r.EventSeq == 4 && r.Status == storage.AuditReceived }},
			{"an SQLSTATE", storage.AuditQuery{Text: "42883"}, func(r storage.AuditRecord) bool { return r.ActionType == "database" }},
		} {
			page, err := a.Search(ctx, tc.q)
			require.NoError(t, err, tc.name)
			require.Equal(t, newestFirst(tc.pick), recordIDs(page), tc.name)
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		a := h.New(t)
		// 23 records, several sharing a millisecond: ties go by id.
		base := now.Add(-time.Minute)
		var recs []storage.AuditRecord
		for i := range 23 {
			recs = append(recs, storage.AuditRecord{
				ID: storage.AuditID(int64(100+i), "", 0, 0, storage.AuditReceived), EventID: fmt.Sprint("ev-", i), EventSeq: int64(100 + i),
				EntityType: "Order", EntityID: fmt.Sprint(i), EventKind: "INSERT", Status: storage.AuditReceived,
				Timestamp: base.Add(time.Duration(i/3) * time.Millisecond), Data: json.RawMessage(`{"note": "page me"}`),
			})
		}
		require.NoError(t, a.Write(ctx, recs))
		want := make([]string, 0, len(recs))
		for i := len(recs) - 1; i >= 0; i-- {
			want = append(want, recs[i].ID)
		}
		// IDs 100:received … 122:received: within a millisecond, the higher
		// id is also the later one, so the order is simply reversed.
		var got []string
		q := storage.AuditQuery{Limit: 5, Text: "page"}
		for pages := 0; ; pages++ {
			require.Less(t, pages, 10, "pagination does not end")
			page, err := a.Search(ctx, q)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page.Records), 5)
			got = append(got, recordIDs(page)...)
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
		require.Equal(t, want, got, "every record once, in order, across pages")

		page, err := a.Search(ctx, storage.AuditQuery{Limit: 23})
		require.NoError(t, err)
		require.Len(t, page.Records, 23)
		if page.Next != "" { // a backend may not know that nothing follows
			page, err = a.Search(ctx, storage.AuditQuery{Limit: 23, After: page.Next})
			require.NoError(t, err)
			require.Empty(t, page.Records)
		}
		page, err = a.Search(ctx, storage.AuditQuery{})
		require.NoError(t, err)
		require.Len(t, page.Records, 23, "the default limit is larger than 23")

		_, err = a.Search(ctx, storage.AuditQuery{After: "not a cursor"})
		require.Error(t, err, "a cursor that is not one is an error")
	})

	t.Run("EmptyWriteAndEmptyTrail", func(t *testing.T) {
		t.Parallel()
		a := h.New(t)
		require.NoError(t, a.Write(ctx, nil))
		page, err := a.Search(ctx, storage.AuditQuery{EntityType: "Order"})
		require.NoError(t, err)
		require.Empty(t, page.Records)
		require.Empty(t, page.Next)
		require.NotEmpty(t, a.Backend())
	})
}

func recordIDs(p storage.AuditPage) []string {
	var ids []string
	for _, r := range p.Records {
		ids = append(ids, r.ID)
	}
	return ids
}

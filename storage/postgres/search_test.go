package postgres_test

import (
	"context"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

func TestSearchIndexGetDelete(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	s := postgres.NewSearch(pool)
	order := storage.DocKey{Index: "order", EntityType: "Order", EntityID: "42"}
	v := func(tx uint64, seq int64) storage.Version { return storage.Version{TxID: tx, Seq: seq} }

	_, err := s.Get(ctx, order)
	require.ErrorIs(t, err, storage.ErrNotFound)

	require.NoError(t, s.Index(ctx, order, v(10, 1), []byte(`{"total": 12.5, "note": "a \"quoted\" \u00e9"}`)))
	doc, err := s.Get(ctx, order)
	require.NoError(t, err)
	require.JSONEq(t, `{"total": 12.5, "note": "a \"quoted\" é"}`, string(doc))

	// A higher version replaces the document; a lower or equal one does not.
	require.NoError(t, s.Index(ctx, order, v(10, 2), []byte(`{"total": 13}`)))
	require.NoError(t, s.Index(ctx, order, v(9, 99), []byte(`{"total": 1}`)))
	require.NoError(t, s.Index(ctx, order, v(10, 2), []byte(`{"total": 2}`)))
	doc, err = s.Get(ctx, order)
	require.NoError(t, err)
	require.JSONEq(t, `{"total": 13}`, string(doc))

	// Another entity type with the same id, another index: their own documents.
	line := storage.DocKey{Index: "order", EntityType: "OrderLine", EntityID: "42"}
	invoice := storage.DocKey{Index: "invoice", EntityType: "Order", EntityID: "42"}
	require.NoError(t, s.Index(ctx, line, v(1, 1), []byte(`{"n": 1}`)))
	require.NoError(t, s.Index(ctx, invoice, v(1, 1), []byte(`{"n": 2}`)))

	// An older DELETE does nothing; a newer one removes the document, and an
	// older Index after it does not bring it back.
	require.NoError(t, s.Delete(ctx, order, v(10, 1)))
	_, err = s.Get(ctx, order)
	require.NoError(t, err)
	require.NoError(t, s.Delete(ctx, order, v(11, 1)))
	require.NoError(t, s.Delete(ctx, order, v(11, 1)), "deleting an absent document is not an error")
	require.NoError(t, s.Index(ctx, order, v(10, 3), []byte(`{"total": 14}`)))
	_, err = s.Get(ctx, order)
	require.ErrorIs(t, err, storage.ErrNotFound)
	page, err := s.Query(ctx, storage.DocQuery{Index: "order"})
	require.NoError(t, err)
	require.Len(t, page.Hits, 1, "a tombstone is never returned")
	require.Equal(t, line, page.Hits[0].Key)

	// A newer Index after the DELETE brings it back.
	require.NoError(t, s.Index(ctx, order, v(12, 1), []byte(`{"total": 15}`)))
	doc, err = s.Get(ctx, order)
	require.NoError(t, err)
	require.JSONEq(t, `{"total": 15}`, string(doc))

	// A DELETE of a document never indexed keeps its version too.
	ghost := storage.DocKey{Index: "order", EntityType: "Order", EntityID: "7"}
	require.NoError(t, s.Delete(ctx, ghost, v(5, 5)))
	require.NoError(t, s.Index(ctx, ghost, v(5, 4), []byte(`{}`)))
	_, err = s.Get(ctx, ghost)
	require.ErrorIs(t, err, storage.ErrNotFound)
	_, err = s.Get(ctx, invoice)
	require.NoError(t, err)
}

func TestSearchQuery(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	s := postgres.NewSearch(pool)
	put := func(typ, id, doc string) {
		t.Helper()
		require.NoError(t, s.Index(ctx, storage.DocKey{Index: "i", EntityType: typ, EntityID: id}, storage.Version{TxID: 1}, []byte(doc)))
	}
	put("b", "2", `{"note": "Déjà vu, A-1002"}`)
	put("b", "10", `{"note": "timed_out", "n": 12.5, "ok": true}`)
	put("a", "Z", `{"keys": {"timed": "x"}}`)
	put("a", "a", `{"list": ["Timed", {"deep": "out"}]}`)
	require.NoError(t, s.Index(ctx, storage.DocKey{Index: "j", EntityType: "a", EntityID: "1"}, storage.Version{}, []byte(`{"x": "timed out"}`)))

	keys := func(q storage.DocQuery) []string {
		t.Helper()
		q.Index = "i"
		page, err := s.Query(ctx, q)
		require.NoError(t, err)
		var out []string
		for _, h := range page.Hits {
			out = append(out, h.Key.EntityType+"/"+h.Key.EntityID)
			require.Equal(t, storage.Version{TxID: 1}, h.Version)
			require.False(t, h.UpdatedAt.IsZero())
		}
		return out
	}
	require.Equal(t, []string{"a/Z", "a/a", "b/10", "b/2"}, keys(storage.DocQuery{}), "byte order")
	require.Equal(t, []string{"b/10", "b/2"}, keys(storage.DocQuery{EntityType: "b"}))
	require.Equal(t, []string{"b/2"}, keys(storage.DocQuery{EntityType: "b", EntityID: "2"}))
	require.Equal(t, []string{"a/a", "b/10"}, keys(storage.DocQuery{Text: "TIMED out"}), "values, not keys; every word")
	require.Equal(t, []string{"b/2"}, keys(storage.DocQuery{Text: "déjà 1002"}))
	require.Equal(t, []string{"b/10"}, keys(storage.DocQuery{Text: "12 true"}))
	require.Empty(t, keys(storage.DocQuery{Text: "timed nothing"}))
	require.Len(t, keys(storage.DocQuery{Text: "--"}), 4, "no word matches all")

	// Pages.
	var all []string
	q := storage.DocQuery{Index: "i", Limit: 3}
	for {
		page, err := s.Query(ctx, q)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Hits), 3)
		for _, h := range page.Hits {
			all = append(all, h.Key.EntityType+"/"+h.Key.EntityID)
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	require.Equal(t, []string{"a/Z", "a/a", "b/10", "b/2"}, all)

	_, err := s.Query(ctx, storage.DocQuery{Index: "i", After: "%%%"})
	require.True(t, errors.Is(err, storage.ErrRejected), "got %v", err)
	_, err = s.Query(ctx, storage.DocQuery{})
	require.True(t, errors.Is(err, storage.ErrRejected), "got %v", err)
}

func TestSearchErrorClassification(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	s := postgres.NewSearch(pool)
	key := storage.DocKey{Index: "order", EntityType: "Order", EntityID: "1"}
	v := storage.Version{TxID: 1, Seq: 1}

	// Invalid JSON is SQL state 22P02: a retry cannot help. No document is
	// invalid too (NULL would be a tombstone).
	err := s.Index(ctx, key, v, []byte(`{not json`))
	require.True(t, errors.Is(err, storage.ErrRejected), "got %v", err)
	err = s.Index(ctx, key, v, nil)
	require.True(t, errors.Is(err, storage.ErrRejected), "got %v", err)
	_, err = s.Get(ctx, key)
	require.ErrorIs(t, err, storage.ErrNotFound)

	// A txid beyond a bigint is rejected before Postgres.
	err = s.Index(ctx, key, storage.Version{TxID: 1 << 63}, []byte(`{}`))
	require.True(t, errors.Is(err, storage.ErrRejected), "got %v", err)

	// A missing table (42P01) is rejected too.
	_, err = pool.Exec(ctx, `DROP TABLE observer_search_documents`)
	require.NoError(t, err)
	err = s.Index(ctx, key, v, []byte(`{}`))
	require.True(t, errors.Is(err, storage.ErrRejected), "got %v", err)

	// A cancelled context is not a rejection: it is retried.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = s.Index(cctx, key, v, []byte(`{}`))
	require.Error(t, err)
	require.False(t, errors.Is(err, storage.ErrRejected))
}

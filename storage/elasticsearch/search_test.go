package elasticsearch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch/estest"
)

func requestsWith(srv *estest.Server, prefix string) []string {
	var out []string
	for _, r := range srv.Requests() {
		if strings.HasPrefix(r, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// The version guard is Elasticsearch's: every write is a PUT _doc with
// the change's external version, and the server's 409 keeps the newer.
func TestSearchVersionGuardOverDoc(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	s, ctx := c.Search(), context.Background()
	key := storage.DocKey{Index: "orders", EntityType: "Order", EntityID: "1"}
	v := storage.Version{TxID: 7, Seq: 3}
	require.NoError(t, s.Index(ctx, key, v, []byte(`{"v": 1}`)))
	require.Equal(t, []string{fmt.Sprintf("PUT /orders/_doc/Order:1?version=%d&version_type=external", v.External())},
		requestsWith(srv, "PUT /orders/_doc/"))
	src, ok := srv.Source("orders", "Order:1")
	require.True(t, ok)
	require.JSONEq(t, `{"entity_type": "Order", "entity_id": "1", "txid": 7, "seq": 3, "deleted": false,
		"search_text": "1", "doc": {"v": 1}, "updated_at": "`+mustField(t, src, "updated_at")+`"}`, string(src))

	require.NoError(t, s.Index(ctx, key, storage.Version{TxID: 6, Seq: 9}, []byte(`{"v": 0}`)), "a 409 is no error")
	src, _ = srv.Source("orders", "Order:1")
	require.Contains(t, string(src), `"doc":{"v":1}`)

	// A deletion is a document of its version: an older change after it
	// is refused by the same rule, for as long as the index lives.
	require.NoError(t, s.Delete(ctx, key, storage.Version{TxID: 8, Seq: 1}))
	src, _ = srv.Source("orders", "Order:1")
	require.Contains(t, string(src), `"deleted":true`)
	require.NotContains(t, string(src), `"doc"`)
	require.NoError(t, s.Index(ctx, key, storage.Version{TxID: 7, Seq: 4}, []byte(`{"v": "stale"}`)))
	_, err := s.Get(ctx, key)
	require.ErrorIs(t, err, storage.ErrNotFound)
	require.Empty(t, requestsWith(srv, "DELETE "), "no DELETE: its tombstone would last index.gc_deletes only")
}

func mustField(t *testing.T, src json.RawMessage, name string) string {
	var m map[string]any
	require.NoError(t, json.Unmarshal(src, &m))
	return fmt.Sprint(m[name])
}

func TestSearchDocumentIDs(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	s, ctx := c.Search(), context.Background()
	keys := []storage.DocKey{
		{Index: "odd", EntityType: "Order", EntityID: "a/b c?d#e%f&g"},
		{Index: "odd", EntityType: "Order", EntityID: "商品-7"},
		{Index: "odd", EntityType: "Order", EntityID: strings.Repeat("x", 600)},
		{Index: "odd", EntityType: "Order:Line", EntityID: "1"},
		{Index: "odd", EntityType: "Order", EntityID: "Line:1"},
		{Index: "odd", EntityType: "Order", EntityID: ".."},
	}
	for i, k := range keys {
		require.NoError(t, s.Index(ctx, k, storage.Version{TxID: 1, Seq: int64(i + 1)}, fmt.Appendf(nil, `{"n": %d}`, i)))
	}
	for i, k := range keys {
		doc, err := s.Get(ctx, k)
		require.NoError(t, err, k.EntityID)
		require.JSONEq(t, fmt.Sprintf(`{"n": %d}`, i), string(doc), "each key is its own document")
	}
	page, err := s.Query(ctx, storage.DocQuery{Index: "odd"})
	require.NoError(t, err)
	require.Len(t, page.Hits, len(keys))
	got := map[storage.DocKey]bool{}
	for _, h := range page.Hits {
		got[h.Key] = true
	}
	for _, k := range keys {
		require.True(t, got[k], "hit keys are the keys indexed: %s", k.EntityID[:min(len(k.EntityID), 20)])
	}
}

func TestSearchIndexNames(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	s, ctx := c.Search(), context.Background()
	require.NoError(t, s.Index(ctx, storage.DocKey{Index: "Orders", EntityType: "Order", EntityID: "1"}, storage.Version{Seq: 1}, []byte(`{}`)))
	require.Contains(t, srv.Indices(), "orders", "lower-cased")
	_, err := s.Get(ctx, storage.DocKey{Index: "ORDERS", EntityType: "Order", EntityID: "1"})
	require.NoError(t, err)
	for _, name := range []string{"_orders", "a b", "a*", "fraiseql_events-2026.01.01", ""} {
		err := s.Index(ctx, storage.DocKey{Index: name, EntityType: "Order", EntityID: "1"}, storage.Version{Seq: 1}, []byte(`{}`))
		require.ErrorIs(t, err, storage.ErrRejected, "%q", name)
	}
	_, err = s.Query(ctx, storage.DocQuery{})
	require.ErrorIs(t, err, storage.ErrRejected, "a query without an index")
	page, err := s.Query(ctx, storage.DocQuery{Index: "never-written"})
	require.NoError(t, err, "an index not created yet has no documents")
	require.Empty(t, page.Hits)
	_, err = s.Get(ctx, storage.DocKey{Index: "never-written", EntityType: "Order", EntityID: "1"})
	require.ErrorIs(t, err, storage.ErrNotFound)
}

func TestSearchIndexIsCreatedOnceWithItsMapping(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	s, ctx := c.Search(), context.Background()
	// An index created beforehand (another instance) is taken as it is.
	require.Equal(t, http.StatusOK, put(t, srv, "/taken", `{}`))
	require.NoError(t, s.Index(ctx, storage.DocKey{Index: "taken", EntityType: "T", EntityID: "1"}, storage.Version{Seq: 1}, []byte(`{}`)))

	for i := range 3 {
		require.NoError(t, s.Index(ctx, storage.DocKey{Index: "orders", EntityType: "Order", EntityID: fmt.Sprint(i)}, storage.Version{Seq: 1}, []byte(`{}`)))
	}
	creates := 0
	for _, r := range srv.Requests() {
		if r == "PUT /orders" {
			creates++
		}
	}
	require.Equal(t, 1, creates)
	mapping, _, ok := srv.Mapping("orders")
	require.True(t, ok)
	props := mapping["properties"].(map[string]any)
	require.Equal(t, map[string]any{"type": "keyword"}, props["entity_type"])
	require.Equal(t, map[string]any{"type": "text", "analyzer": "fraiseql_words"}, props["search_text"])
	require.Equal(t, map[string]any{"type": "object", "enabled": false}, props["doc"])
}

// Documents are stored, not mapped field by field: a field whose type
// changes between two documents (a column altered) is no mapping
// conflict, and a document's own entity_type does not meet the key's.
func TestSearchDocumentsAreStoredAsGiven(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	s, ctx := c.Search(), context.Background()
	a := storage.DocKey{Index: "orders", EntityType: "Order", EntityID: "1"}
	b := storage.DocKey{Index: "orders", EntityType: "Order", EntityID: "2"}
	docA := `{"total":12,"entity_type":"Invoice","html":"<b>&amp;</b>","big":12345678901234567890}`
	require.NoError(t, s.Index(ctx, a, storage.Version{Seq: 1}, []byte(docA)))
	require.NoError(t, s.Index(ctx, b, storage.Version{Seq: 2}, []byte(`{"total":{"amount":"12.00"}}`)))
	got, err := s.Get(ctx, a)
	require.NoError(t, err)
	require.Equal(t, docA, string(got), "byte for byte")
	page, err := s.Query(ctx, storage.DocQuery{Index: "orders", EntityType: "Order"})
	require.NoError(t, err)
	require.Len(t, page.Hits, 2)
	require.Equal(t, storage.Version{Seq: 1}, page.Hits[0].Version)
	require.False(t, page.Hits[0].UpdatedAt.IsZero())

	_, err = s.Query(ctx, storage.DocQuery{Index: "orders", After: "a" + page.Next})
	require.ErrorIs(t, err, storage.ErrRejected, "a cursor of another kind")
}

func TestSearchWhenTheServerIsDown(t *testing.T) {
	t.Parallel()
	c, srv := newClient(t)
	s, ctx := c.Search(), context.Background()
	key := storage.DocKey{Index: "orders", EntityType: "Order", EntityID: "1"}
	srv.SetMode(estest.Unavailable)
	err := s.Index(ctx, key, storage.Version{Seq: 1}, []byte(`{}`))
	require.ErrorIs(t, err, storage.ErrUnavailable)
	require.NotErrorIs(t, err, storage.ErrRejected, "the search action retries it")
	srv.SetMode(estest.Refuse)
	_, err = s.Query(ctx, storage.DocQuery{Index: "orders"})
	require.ErrorIs(t, err, storage.ErrUnavailable)
	srv.SetMode(estest.Up)
	require.NoError(t, s.Index(ctx, key, storage.Version{Seq: 1}, []byte(`{}`)))
}

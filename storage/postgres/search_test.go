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

	_, err := s.Get(ctx, "order", "42")
	require.ErrorIs(t, err, storage.ErrNotFound)

	require.NoError(t, s.Index(ctx, "order", "42", []byte(`{"total": 12.5, "note": "a \"quoted\" \u00e9"}`)))
	doc, err := s.Get(ctx, "order", "42")
	require.NoError(t, err)
	require.JSONEq(t, `{"total": 12.5, "note": "a \"quoted\" é"}`, string(doc))

	// An upsert replaces the document; another index keeps its own.
	require.NoError(t, s.Index(ctx, "order", "42", []byte(`{"total": 13}`)))
	require.NoError(t, s.Index(ctx, "invoice", "42", []byte(`{"n": 1}`)))
	doc, err = s.Get(ctx, "order", "42")
	require.NoError(t, err)
	require.JSONEq(t, `{"total": 13}`, string(doc))

	require.NoError(t, s.Delete(ctx, "order", "42"))
	require.NoError(t, s.Delete(ctx, "order", "42"), "deleting an absent document is not an error")
	_, err = s.Get(ctx, "order", "42")
	require.ErrorIs(t, err, storage.ErrNotFound)
	_, err = s.Get(ctx, "invoice", "42")
	require.NoError(t, err)
}

func TestSearchErrorClassification(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	s := postgres.NewSearch(pool)

	// Invalid JSON is SQL state 22P02: a retry cannot help.
	err := s.Index(ctx, "order", "1", []byte(`{not json`))
	require.True(t, errors.Is(err, storage.ErrRejected), "got %v", err)

	// A missing table (42P01) is rejected too.
	_, err = pool.Exec(ctx, `DROP TABLE observer_search_documents`)
	require.NoError(t, err)
	err = s.Index(ctx, "order", "1", []byte(`{}`))
	require.True(t, errors.Is(err, storage.ErrRejected), "got %v", err)

	// A cancelled context is not a rejection: it is retried.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = s.Index(cctx, "order", "1", []byte(`{}`))
	require.Error(t, err)
	require.False(t, errors.Is(err, storage.ErrRejected))
}

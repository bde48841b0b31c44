package postgres

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// SearchOpTimeoutDefault bounds each Search call unless the caller's
// context ends sooner.
const SearchOpTimeoutDefault = 10 * time.Second

// Search keeps documents in observer_search_documents, the default search
// backend. It implements storage.Search and is safe for concurrent use.
type Search struct {
	pool *pgxpool.Pool
}

var _ storage.Search = (*Search)(nil)

// NewSearch returns a Search on pool.
func NewSearch(pool *pgxpool.Pool) *Search { return &Search{pool: pool} }

// Backend returns "postgres".
func (s *Search) Backend() string { return "postgres" }

// Index upserts doc (a JSON document) under (index, id).
func (s *Search) Index(ctx context.Context, index, id string, doc []byte) error {
	ctx, cancel := context.WithTimeout(ctx, SearchOpTimeoutDefault)
	defer cancel()
	_, err := s.pool.Exec(ctx, `INSERT INTO observer_search_documents ("index", id, doc, updated_at)
		VALUES ($1, $2, $3::jsonb, now())
		ON CONFLICT ("index", id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at`,
		index, id, string(doc))
	return errors.Wrapf(interpretError(err), "search: index %s/%s", index, id)
}

// Delete removes the document under (index, id), if any.
func (s *Search) Delete(ctx context.Context, index, id string) error {
	ctx, cancel := context.WithTimeout(ctx, SearchOpTimeoutDefault)
	defer cancel()
	_, err := s.pool.Exec(ctx, `DELETE FROM observer_search_documents WHERE "index" = $1 AND id = $2`, index, id)
	return errors.Wrapf(interpretError(err), "search: delete %s/%s", index, id)
}

// Get returns the document under (index, id), or storage.ErrNotFound.
func (s *Search) Get(ctx context.Context, index, id string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, SearchOpTimeoutDefault)
	defer cancel()
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT doc::text FROM observer_search_documents WHERE "index" = $1 AND id = $2`,
		index, id).Scan(&doc)
	if err != nil {
		return nil, errors.Wrapf(interpretError(err), "search: get %s/%s", index, id)
	}
	return doc, nil
}

package postgres

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	return interpretSearchError(err, "search: index %s/%s", index, id)
}

// Delete removes the document under (index, id), if any.
func (s *Search) Delete(ctx context.Context, index, id string) error {
	ctx, cancel := context.WithTimeout(ctx, SearchOpTimeoutDefault)
	defer cancel()
	_, err := s.pool.Exec(ctx, `DELETE FROM observer_search_documents WHERE "index" = $1 AND id = $2`, index, id)
	return interpretSearchError(err, "search: delete %s/%s", index, id)
}

// Get returns the document under (index, id), or storage.ErrNotFound.
func (s *Search) Get(ctx context.Context, index, id string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, SearchOpTimeoutDefault)
	defer cancel()
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT doc::text FROM observer_search_documents WHERE "index" = $1 AND id = $2`,
		index, id).Scan(&doc)
	if err != nil {
		return nil, interpretSearchError(err, "search: get %s/%s", index, id)
	}
	return doc, nil
}

// interpretSearchError translates a driver error once: no rows is
// storage.ErrNotFound; SQL states of class 22 (data exception, e.g. invalid
// JSON), 23 (constraint) and 42 (syntax, missing table, permission) are
// marked storage.ErrRejected; anything else (connection, timeout) is left
// as is, for the caller to retry.
func interpretSearchError(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return errors.Wrapf(storage.ErrNotFound, format, args...)
	}
	err = errors.Wrapf(err, format, args...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) >= 2 {
		switch pgErr.Code[:2] {
		case "22", "23", "42":
			return errors.Mark(err, storage.ErrRejected)
		}
	}
	return err
}

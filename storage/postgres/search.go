package postgres

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// nameExcerptMax bounds an index name or a document id quoted in a message:
// an id is the application's data and may be of any size.
const nameExcerptMax = 64

// excerpt is s for messages, cut to nameExcerptMax bytes (on a rune
// boundary) with its length when longer.
func excerpt(s string) string {
	if len(s) <= nameExcerptMax {
		return s
	}
	cut := nameExcerptMax
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}

// SearchOpTimeoutDefault bounds each Search call unless the caller's
// context ends sooner.
const SearchOpTimeoutDefault = 10 * time.Second

// Search keeps documents in observer_search_documents, the default search
// backend. It implements storage.Search and is safe for concurrent use.
type Search struct {
	q *dbsqlc.Queries
}

var _ storage.Search = (*Search)(nil)

// NewSearch returns a Search on pool.
func NewSearch(pool *pgxpool.Pool) *Search { return &Search{q: dbsqlc.New(pool)} }

// Backend returns "postgres".
func (s *Search) Backend() string { return "postgres" }

// Index upserts doc (a JSON document) under (index, id). A document that is
// not JSON is storage.ErrRejected.
func (s *Search) Index(ctx context.Context, index, id string, doc []byte) error {
	ctx, cancel := context.WithTimeout(ctx, SearchOpTimeoutDefault)
	defer cancel()
	if err := s.q.SearchIndex(ctx, dbsqlc.SearchIndexParams{Index: index, ID: id, Doc: doc}); err != nil {
		return errors.Wrapf(interpretError(err), "search: index %s/%s", excerpt(index), excerpt(id))
	}
	return nil
}

// Delete removes the document under (index, id), if any.
func (s *Search) Delete(ctx context.Context, index, id string) error {
	ctx, cancel := context.WithTimeout(ctx, SearchOpTimeoutDefault)
	defer cancel()
	if err := s.q.SearchDelete(ctx, dbsqlc.SearchDeleteParams{Index: index, ID: id}); err != nil {
		return errors.Wrapf(interpretError(err), "search: delete %s/%s", excerpt(index), excerpt(id))
	}
	return nil
}

// Get returns the document under (index, id), or storage.ErrNotFound.
func (s *Search) Get(ctx context.Context, index, id string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, SearchOpTimeoutDefault)
	defer cancel()
	doc, err := s.q.SearchGet(ctx, dbsqlc.SearchGetParams{Index: index, ID: id})
	if err != nil {
		return nil, errors.Wrapf(interpretError(err), "search: get %s/%s", excerpt(index), excerpt(id))
	}
	return doc, nil
}

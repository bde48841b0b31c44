package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
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

func keyExcerpt(k storage.DocKey) string {
	return excerpt(k.Index) + "/" + excerpt(k.EntityType) + "/" + excerpt(k.EntityID)
}

// SearchOpTimeoutDefault bounds each Search call unless the caller's
// context ends sooner.
const SearchOpTimeoutDefault = 10 * time.Second

// Search keeps documents in observer_search_documents, the default search
// backend: one row per (index, entity type, entity id) with the version of
// the change that wrote it; a DELETE leaves a tombstone (doc NULL) holding
// its version, never returned, pruned by retention. It implements
// storage.Search and is safe for concurrent use.
type Search struct {
	pool *pgxpool.Pool
	q    *dbsqlc.Queries
}

var _ storage.Search = (*Search)(nil)

// NewSearch returns a Search on pool.
func NewSearch(pool *pgxpool.Pool) *Search { return &Search{pool: pool, q: dbsqlc.New(pool)} }

// Backend returns "postgres".
func (s *Search) Backend() string { return "postgres" }

// Index stores doc (a JSON document) as key's document at version v, unless
// the stored document or tombstone has a version at or above v. A document
// that is not JSON is storage.ErrRejected.
func (s *Search) Index(ctx context.Context, key storage.DocKey, v storage.Version, doc []byte) error {
	if doc == nil {
		doc = []byte{} // not NULL, which would be a tombstone: invalid JSON
	}
	return errors.Wrapf(s.write(ctx, key, v, doc), "search: index %s", keyExcerpt(key))
}

// Delete removes key's document at version v under the same rule, leaving
// a tombstone with v. An absent document is not an error.
func (s *Search) Delete(ctx context.Context, key storage.DocKey, v storage.Version) error {
	return errors.Wrapf(s.write(ctx, key, v, nil), "search: delete %s", keyExcerpt(key))
}

func (s *Search) write(ctx context.Context, key storage.DocKey, v storage.Version, doc []byte) error {
	if v.TxID > math.MaxInt64 {
		return markRejected(errors.WithHint(errors.Newf("version txid %d does not fit a bigint", v.TxID),
			"a txid is a Postgres xid8; this one is not"))
	}
	var tsv *string
	if doc != nil {
		tsv = tsvectorText(storage.DocText(doc))
	}
	ctx, cancel := context.WithTimeout(ctx, SearchOpTimeoutDefault)
	defer cancel()
	return interpretError(s.q.SearchIndex(ctx, dbsqlc.SearchIndexParams{
		Index: key.Index, EntityType: key.EntityType, EntityID: key.EntityID, Doc: doc,
		VersionTxid: int64(v.TxID), VersionSeq: v.Seq, Tsv: tsv,
	}))
}

// Get returns key's document, or storage.ErrNotFound.
func (s *Search) Get(ctx context.Context, key storage.DocKey) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, SearchOpTimeoutDefault)
	defer cancel()
	doc, err := s.q.SearchGet(ctx, dbsqlc.SearchGetParams{Index: key.Index, EntityType: key.EntityType, EntityID: key.EntityID})
	if err != nil {
		return nil, errors.Wrapf(interpretError(err), "search: get %s", keyExcerpt(key))
	}
	return doc, nil
}

// Query returns the live documents q selects, by entity type then entity
// id (byte order), at most q.Limit (≤ storage.MaxLimit) of them.
func (s *Search) Query(ctx context.Context, q storage.DocQuery) (storage.DocPage, error) {
	if q.Index == "" {
		return storage.DocPage{}, markRejected(errors.WithHint(errors.New("search: query: no index"), "name the index to search"))
	}
	var f filter
	f.add(`"index" = $%d AND doc IS NOT NULL`, q.Index)
	if q.EntityType != "" {
		f.add("entity_type = $%d", q.EntityType)
	}
	if q.EntityID != "" {
		f.add("entity_id = $%d", q.EntityID)
	}
	if tsq, ok := tsqueryText(q.Text); !ok {
		return storage.DocPage{}, nil
	} else if tsq != "" {
		f.add("tsv @@ $%d::tsquery", tsq)
	}
	if q.After != "" {
		key, err := decodeCursor("search: query", q.After)
		if err != nil {
			return storage.DocPage{}, err
		}
		var after [2]string
		if json.Unmarshal([]byte(key), &after) != nil {
			return storage.DocPage{}, badCursor("search: query", q.After)
		}
		f.add("(entity_type, entity_id) > ($%d, $%d)", after[0], after[1])
	}
	limit := pageLimit(q.Limit)
	sql := `SELECT entity_type, entity_id, version_txid, version_seq, doc, updated_at
FROM observer_search_documents` + f.where() +
		fmt.Sprintf(" ORDER BY entity_type, entity_id LIMIT %d", limit+1)
	ctx, cancel := context.WithTimeout(ctx, SearchOpTimeoutDefault)
	defer cancel()
	rows, err := s.pool.Query(ctx, sql, f.args...)
	if err != nil {
		return storage.DocPage{}, errors.Wrapf(interpretError(err), "search: query %s", excerpt(q.Index))
	}
	defer rows.Close()
	var page storage.DocPage
	for rows.Next() {
		h := storage.DocHit{Key: storage.DocKey{Index: q.Index}}
		var txid int64
		var doc []byte
		if err := rows.Scan(&h.Key.EntityType, &h.Key.EntityID, &txid, &h.Version.Seq, &doc, &h.UpdatedAt); err != nil {
			return storage.DocPage{}, errors.Wrapf(interpretError(err), "search: query %s", excerpt(q.Index))
		}
		h.Version.TxID, h.Doc, h.UpdatedAt = uint64(txid), doc, h.UpdatedAt.UTC()
		page.Hits = append(page.Hits, h)
	}
	if err := rows.Err(); err != nil {
		return storage.DocPage{}, errors.Wrapf(interpretError(err), "search: query %s", excerpt(q.Index))
	}
	if len(page.Hits) > limit {
		page.Hits = page.Hits[:limit]
		last := page.Hits[limit-1].Key
		b, _ := json.Marshal([2]string{last.EntityType, last.EntityID})
		page.Next = encodeCursor(string(b))
	}
	return page, nil
}

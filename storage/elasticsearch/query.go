package elasticsearch

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// boolQuery is the query of a search being built: filters (no score) and
// the free-text clause.
type boolQuery struct {
	filter []any
	must   []any
}

// term filters on field = value (a keyword, number or boolean field).
func (q *boolQuery) term(field string, value any) {
	q.filter = append(q.filter, map[string]any{"term": map[string]any{field: value}})
}

// between filters on gte ≤ field < lt; a nil bound is open.
func (q *boolQuery) between(field string, gte, lt any) {
	r := map[string]any{}
	if gte != nil {
		r["gte"] = gte
	}
	if lt != nil {
		r["lt"] = lt
	}
	if len(r) > 0 {
		q.filter = append(q.filter, map[string]any{"range": map[string]any{field: r}})
	}
}

// text requires every word of text (storage.Words) in one of fields. The
// query is the words alone, so none of simple_query_string's operators
// (+ | - " * ( ) ~) can appear in it; text without a word matches all.
func (q *boolQuery) text(text string, fields ...string) {
	w := storage.Words(text)
	if len(w) == 0 {
		return
	}
	q.must = append(q.must, map[string]any{"simple_query_string": map[string]any{
		"query": strings.Join(w, " "), "fields": fields, "default_operator": "and",
	}})
}

// searchBody is a search request's body: q, sorted by sort, at most size
// hits after the sort values after (nil: from the start).
func (q *boolQuery) searchBody(sort []any, size int, after json.RawMessage) []byte {
	query := map[string]any{"match_all": map[string]any{}}
	if len(q.filter)+len(q.must) > 0 {
		clauses := map[string]any{}
		if len(q.filter) > 0 {
			clauses["filter"] = q.filter
		}
		if len(q.must) > 0 {
			clauses["must"] = q.must
		}
		query = map[string]any{"bool": clauses}
	}
	b := map[string]any{
		"query":            query,
		"sort":             sort,
		"size":             size,
		"track_total_hits": false,
	}
	if after != nil {
		b["search_after"] = after
	}
	return mustJSON(b)
}

// pageSizes returns a query's page size (storage's default and bound
// applied) and how many hits to ask for: one more, to know whether a next
// page exists (except at the maximum, which is also Elasticsearch's
// default result window).
func pageSizes(limit int) (page, fetch int) {
	switch {
	case limit <= 0:
		limit = storage.DefaultLimit
	case limit > storage.MaxLimit:
		limit = storage.MaxLimit
	}
	if limit == storage.MaxLimit {
		return limit, limit
	}
	return limit, limit + 1
}

// hit is a search hit: its source and its sort values.
type hit struct {
	ID     string          `json:"_id"`
	Source json.RawMessage `json:"_source"`
	Sort   json.RawMessage `json:"sort"`
}

// mappingHint explains a search that failed on some indices.
const mappingHint = "an index without the expected mapping (created before the index template was installed?) cannot be sorted or searched: fix or delete it"

// runSearch runs body over indices (names or patterns). A missing index
// named without a wildcard is no hit. Shards that failed make it an
// error, not a partial page.
func (c *Client) runSearch(ctx context.Context, what string, indices []string, body []byte) ([]hit, error) {
	res, err := c.do(ctx, what, esapi.SearchRequest{Index: indices, Body: bytes.NewReader(body)})
	if err != nil {
		return nil, err
	}
	if res.status == http.StatusNotFound && parseError(res.status, res.body).Type == "index_not_found_exception" {
		return nil, nil
	}
	if res.status != http.StatusOK {
		err := res.err(what)
		if parseError(res.status, res.body).Type == "search_phase_execution_exception" {
			err = errors.WithHint(err, mappingHint)
		}
		return nil, err
	}
	var out struct {
		Shards struct {
			Total    int `json:"total"`
			Failed   int `json:"failed"`
			Failures []struct {
				Index  string     `json:"index"`
				Reason errorCause `json:"reason"`
			} `json:"failures"`
		} `json:"_shards"`
		Hits struct {
			Hits []hit `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(res.body, &out); err != nil {
		return nil, errors.Wrapf(err, "elasticsearch: %s: decode the answer", what)
	}
	if out.Shards.Failed > 0 {
		err := errors.Newf("elasticsearch: %s: %d of %d shards failed", what, out.Shards.Failed, out.Shards.Total)
		if len(out.Shards.Failures) > 0 {
			f := out.Shards.Failures[0]
			err = errors.Wrapf(f.Reason.asError(http.StatusInternalServerError), "%s: index %s", err, f.Index)
		}
		return nil, errors.WithHint(err, mappingHint)
	}
	return out.Hits.Hits, nil
}

// Cursors are the sort values of a page's last hit, as JSON, in base64url
// after a letter naming what they page (a for audit records, d for
// documents).
func encodeCursor(kind byte, sort json.RawMessage) string {
	return string(kind) + base64.RawURLEncoding.EncodeToString(sort)
}

// decodeCursor returns the sort values of cursor s of kind, which must be
// an array of n values.
func decodeCursor(kind byte, n int, s string) (json.RawMessage, error) {
	bad := mark(errors.WithHint(errors.New("elasticsearch: the page cursor is not one"), "pass the Next of the previous page as it was"), storage.ErrRejected)
	if len(s) < 2 || s[0] != kind {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s[1:])
	if err != nil {
		return nil, bad
	}
	var vals []json.RawMessage
	if json.Unmarshal(b, &vals) != nil || len(vals) != n {
		return nil, bad
	}
	return b, nil
}

// page cuts hits to size and returns the cursor of the next page: "" when
// no hit was left out (a page of MaxLimit hits, asked for without one
// more, always has a cursor).
func page(kind byte, hits []hit, size int) ([]hit, string) {
	switch {
	case len(hits) > size:
		hits = hits[:size]
	case len(hits) < storage.MaxLimit || len(hits) == 0:
		return hits, ""
	}
	return hits, encodeCursor(kind, hits[size-1].Sort)
}

package elasticsearch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// Search keeps entity documents: one index per search index name,
// lower-cased, created on first use with entityMapping. It implements
// storage.Search and is safe for concurrent use.
type Search struct {
	c       *Client
	created sync.Map // index name → struct{}: created, or found, by this process
}

var _ storage.Search = (*Search)(nil)

// Backend returns "elasticsearch".
func (*Search) Backend() string { return "elasticsearch" }

// docSource is an entity document as indexed: the fields queries use, the
// change's version, and the document itself under "doc", stored as given
// and not indexed. A deletion is a docSource with Deleted and no Doc: its
// external version keeps older changes out after it.
type docSource struct {
	EntityType string          `json:"entity_type"`
	EntityID   string          `json:"entity_id"`
	TxID       uint64          `json:"txid"`
	Seq        int64           `json:"seq"`
	Deleted    bool            `json:"deleted"`
	UpdatedAt  time.Time       `json:"updated_at"`
	SearchText string          `json:"search_text,omitempty"`
	Doc        json.RawMessage `json:"doc,omitempty"`
}

// entityIndexBody creates an entity index: the analyzer, and a mapping of
// every docSource field. "doc" is not indexed, so documents whose fields
// change type (a column altered) are never refused for a mapping conflict.
func entityIndexBody() []byte {
	return mustJSON(map[string]any{
		"settings": map[string]any{"analysis": analysisSettings()},
		"mappings": map[string]any{"properties": map[string]any{
			"entity_type": keyword(),
			"entity_id":   keyword(),
			"txid":        typed("long"),
			"seq":         typed("long"),
			"deleted":     typed("boolean"),
			"updated_at":  typed("date"),
			"search_text": words(),
			"doc":         notIndexed(),
		}},
	})
}

var indexNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,254}$`)

// indexName is the Elasticsearch index of a search index name.
func (s *Search) indexName(name string) (string, error) {
	n := strings.ToLower(name)
	switch {
	case !indexNameRE.MatchString(n):
		return "", mark(errors.WithHint(errors.Newf("elasticsearch: search index %q is not an index name", cut(name, 64)),
			"use letters, digits, _, - and ., starting with a letter or digit"), storage.ErrRejected)
	case strings.HasPrefix(n, s.c.cfg.AuditIndexPrefix+"-"):
		return "", mark(errors.WithHint(errors.Newf("elasticsearch: search index %q is named like the audit trail's indices", n),
			"choose another index name"), storage.ErrRejected)
	}
	return n, nil
}

// maxIDBytes is the longest _id Elasticsearch takes.
const maxIDBytes = 512

var (
	plainTypeRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	plainIDRE   = regexp.MustCompile(`^[A-Za-z0-9_.~:-]+$`)
)

// docID is the _id of key's document: "<entity type>:<entity id>" when
// both are plain (the type without ':' or '~', so the first ':' splits
// them; nothing to escape in a URL path), else "~" and the SHA-256 of
// both. The client puts an _id in the URL path as it is.
func docID(key storage.DocKey) string {
	if plainTypeRE.MatchString(key.EntityType) && plainIDRE.MatchString(key.EntityID) &&
		len(key.EntityType)+1+len(key.EntityID) <= maxIDBytes {
		return key.EntityType + ":" + key.EntityID
	}
	h := sha256.New()
	h.Write([]byte(key.EntityType))
	h.Write([]byte{0})
	h.Write([]byte(key.EntityID))
	return "~" + hex.EncodeToString(h.Sum(nil))
}

// docIDOf is id as an _id: itself, or "~" and its SHA-256 when too long.
func docIDOf(id string) string {
	if len(id) <= maxIDBytes {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "~" + hex.EncodeToString(sum[:])
}

// wordsText is the words of s (storage.Words) separated by spaces: what
// the free-text fields hold, so the analyzer finds exactly those words.
func wordsText(s string) string { return strings.Join(storage.Words(s), " ") }

// Index stores doc as key's document at version v: Elasticsearch's
// external version v.External() refuses it (409, nothing changes) when the
// stored document or deletion is of that version or a later one.
func (s *Search) Index(ctx context.Context, key storage.DocKey, v storage.Version, doc []byte) error {
	trimmed := bytes.TrimSpace(doc)
	if !json.Valid(trimmed) || trimmed[0] != '{' {
		return mark(errors.Newf("elasticsearch: search: the document of %s is not a JSON object", keyExcerpt(key)), storage.ErrRejected)
	}
	return s.put(ctx, key, v, docSource{Doc: trimmed, SearchText: wordsText(storage.DocText(trimmed))})
}

// Delete stores a deletion of key's document at version v, under the same
// rule as Index.
func (s *Search) Delete(ctx context.Context, key storage.DocKey, v storage.Version) error {
	return s.put(ctx, key, v, docSource{Deleted: true})
}

func (s *Search) put(ctx context.Context, key storage.DocKey, v storage.Version, src docSource) error {
	what := "search: write " + keyExcerpt(key)
	index, err := s.indexName(key.Index)
	if err != nil {
		return err
	}
	if err := s.ensureIndex(ctx, index); err != nil {
		return err
	}
	src.EntityType, src.EntityID, src.TxID, src.Seq = key.EntityType, key.EntityID, v.TxID, v.Seq
	src.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	body, err := marshalPlain(src)
	if err != nil {
		return mark(errors.Wrapf(err, "elasticsearch: %s", what), storage.ErrRejected)
	}
	version := int(v.External())
	res, err := s.c.do(ctx, what, esapi.IndexRequest{
		Index: index, DocumentID: docID(key), Body: bytes.NewReader(body),
		Version: &version, VersionType: "external",
	})
	if err != nil {
		return err
	}
	switch {
	case res.status == http.StatusOK || res.status == http.StatusCreated:
		return nil
	case res.status == http.StatusConflict && parseError(res.status, res.body).Type == "version_conflict_engine_exception":
		return nil // a change of this version or a later one is there
	}
	return res.err(what)
}

// ensureIndex creates index with entityIndexBody unless this process did
// (or found it) already.
func (s *Search) ensureIndex(ctx context.Context, index string) error {
	if _, ok := s.created.Load(index); ok {
		return nil
	}
	what := "search: create index " + index
	res, err := s.c.do(ctx, what, esapi.IndicesCreateRequest{Index: index, Body: bytes.NewReader(entityIndexBody())})
	if err != nil {
		return err
	}
	if res.status != http.StatusOK && parseError(res.status, res.body).Type != "resource_already_exists_exception" {
		return res.err(what)
	}
	s.created.Store(index, struct{}{})
	return nil
}

// Get returns key's document as it was indexed.
func (s *Search) Get(ctx context.Context, key storage.DocKey) ([]byte, error) {
	what := "search: get " + keyExcerpt(key)
	index, err := s.indexName(key.Index)
	if err != nil {
		return nil, err
	}
	res, err := s.c.do(ctx, what, esapi.GetRequest{Index: index, DocumentID: docID(key)})
	if err != nil {
		return nil, err
	}
	notFound := errors.Wrapf(storage.ErrNotFound, "elasticsearch: %s", what)
	switch res.status {
	case http.StatusNotFound: // no such document, or no such index
		return nil, notFound
	case http.StatusOK:
	default:
		return nil, res.err(what)
	}
	var got struct {
		Found  bool      `json:"found"`
		Source docSource `json:"_source"`
	}
	if err := json.Unmarshal(res.body, &got); err != nil {
		return nil, errors.Wrapf(err, "elasticsearch: %s: decode the answer", what)
	}
	if !got.Found || got.Source.Deleted {
		return nil, notFound
	}
	return got.Source.Doc, nil
}

// Query returns q's documents, ordered by entity type then entity id
// (keyword order: bytes), deletions left out.
func (s *Search) Query(ctx context.Context, q storage.DocQuery) (storage.DocPage, error) {
	index, err := s.indexName(q.Index) // "" is rejected there
	if err != nil {
		return storage.DocPage{}, err
	}
	size, fetch := pageSizes(q.Limit)
	var after json.RawMessage
	if q.After != "" {
		if after, err = decodeCursor('d', 2, q.After); err != nil {
			return storage.DocPage{}, err
		}
	}
	var b boolQuery
	b.term("deleted", false)
	if q.EntityType != "" {
		b.term("entity_type", q.EntityType)
	}
	if q.EntityID != "" {
		b.term("entity_id", q.EntityID)
	}
	b.text(q.Text, "search_text")
	sort := []any{
		map[string]any{"entity_type": map[string]any{"order": "asc"}},
		map[string]any{"entity_id": map[string]any{"order": "asc"}},
	}
	hits, err := s.c.runSearch(ctx, "search: query "+index, []string{index}, b.searchBody(sort, fetch, after))
	if err != nil {
		return storage.DocPage{}, err
	}
	hits, next := page('d', hits, size)
	out := storage.DocPage{Hits: make([]storage.DocHit, 0, len(hits)), Next: next}
	for _, h := range hits {
		var src docSource
		if err := json.Unmarshal(h.Source, &src); err != nil {
			return storage.DocPage{}, errors.Wrapf(err, "elasticsearch: search: decode document %s", cut(h.ID, 64))
		}
		out.Hits = append(out.Hits, storage.DocHit{
			Key:     storage.DocKey{Index: q.Index, EntityType: src.EntityType, EntityID: src.EntityID},
			Version: storage.Version{TxID: src.TxID, Seq: src.Seq}, Doc: src.Doc, UpdatedAt: src.UpdatedAt,
		})
	}
	return out, nil
}

// keyExcerpt is key for messages, its parts cut (an id is the
// application's data, of any size).
func keyExcerpt(key storage.DocKey) string {
	return cut(key.Index, 64) + "/" + cut(key.EntityType, 64) + "/" + cut(key.EntityID, 64)
}

// marshalPlain is json.Marshal without HTML escaping, so a document comes
// back byte for byte (json.Marshal would write < as \u003c).
func marshalPlain(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

package elasticsearch

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// Audit keeps the audit trail in daily indices <prefix>-YYYY.MM.DD. It
// implements storage.Audit and is safe for concurrent use.
type Audit struct {
	c *Client

	mu        sync.Mutex
	templated bool // EnsureTemplates succeeded (or may not be checked) in this process
}

var _ storage.Audit = (*Audit)(nil)

// Backend returns "elasticsearch".
func (*Audit) Backend() string { return "elasticsearch" }

// auditSource is a record as indexed: the record and the words of its
// free text.
type auditSource struct {
	storage.AuditRecord
	SearchText string `json:"search_text,omitempty"`
}

// timeLayout writes timestamps to the millisecond, as a date field keeps
// them.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// dailyIndex is the index of a record of timestamp t.
func (a *Audit) dailyIndex(t time.Time) string {
	return a.c.cfg.AuditIndexPrefix + "-" + t.UTC().Format("2006.01.02")
}

// encode returns r's index, _id and source. A record that cannot be
// indexed is storage.ErrRejected.
func (a *Audit) encode(r storage.AuditRecord) (index, id string, src []byte, err error) {
	if r.ID == "" {
		return "", "", nil, mark(errors.New("elasticsearch: audit record without an id"), storage.ErrRejected)
	}
	r.Timestamp = r.Timestamp.UTC().Truncate(time.Millisecond)
	src, err = marshalPlain(auditSource{AuditRecord: r, SearchText: wordsText(storage.AuditText(&r))})
	if err != nil {
		return "", "", nil, mark(errors.Wrapf(err, "elasticsearch: encode audit record %s", cut(r.ID, 64)), storage.ErrRejected)
	}
	return a.dailyIndex(r.Timestamp), docIDOf(r.ID), src, nil
}

// Write stores recs through esutil.BulkIndexer (bulk.go): each into the
// daily index of its timestamp, created only if its _id (the record id)
// is not there yet.
//
// The first Write of a process (and each one after, until it succeeds)
// runs EnsureTemplates first: a daily index Elasticsearch creates before
// the template exists gets dynamic mappings (id as text, which does not
// sort), and would break every audit search over the prefix. So records
// wait (the caller retries them) while the cluster cannot say whether
// the template is there. Credentials that may not read templates (401,
// 403) leave them to the operator.
func (a *Audit) Write(ctx context.Context, recs []storage.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if err := a.ensureTemplates(ctx); err != nil {
		return err
	}
	items := make([]bulkItem, len(recs))
	for i, r := range recs {
		index, id, src, err := a.encode(r)
		items[i] = bulkItem{index: index, id: id, src: src, err: err}
	}
	return a.c.bulkCreate(ctx, items)
}

// ensureTemplates runs EnsureTemplates until it succeeds once.
func (a *Audit) ensureTemplates(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.templated {
		return nil
	}
	err := a.c.EnsureTemplates(ctx)
	var e *Error
	if err != nil && !(errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)) {
		return errors.Wrap(err, "audit: write")
	}
	a.templated = true
	return nil
}

// Search returns the records q selects, newest first (timestamp, then id,
// descending), over every daily index.
func (a *Audit) Search(ctx context.Context, q storage.AuditQuery) (storage.AuditPage, error) {
	size, fetch := pageSizes(q.Limit)
	var after json.RawMessage
	if q.After != "" {
		var err error
		if after, err = decodeCursor('a', 2, q.After); err != nil {
			return storage.AuditPage{}, err
		}
	}
	var b boolQuery
	for _, f := range []struct{ field, value string }{
		{"event_id", q.EventID}, {"entity_type", q.EntityType}, {"entity_id", q.EntityID},
		{"observer_id", q.ObserverID}, {"action_type", q.ActionType}, {"status", string(q.Status)},
	} {
		if f.value != "" {
			b.term(f.field, f.value)
		}
	}
	if q.EventSeq != 0 {
		b.term("event_seq", q.EventSeq)
	}
	b.between("timestamp", timeBound(q.Since), timeBound(q.Until))
	b.text(q.Text, "search_text") // storage.Words(AuditText), the error included: the words Postgres matches
	sort := []any{
		map[string]any{"timestamp": map[string]any{"order": "desc"}},
		map[string]any{"id": map[string]any{"order": "desc"}},
	}
	hits, err := a.c.runSearch(ctx, "audit: search", []string{a.c.cfg.AuditIndexPrefix + "-*"}, b.searchBody(sort, fetch, after))
	if err != nil {
		return storage.AuditPage{}, err
	}
	hits, next := page('a', hits, size)
	out := storage.AuditPage{Records: make([]storage.AuditRecord, 0, len(hits)), Next: next}
	for _, h := range hits {
		var r storage.AuditRecord // search_text is not one of its fields: dropped
		if err := json.Unmarshal(h.Source, &r); err != nil {
			return storage.AuditPage{}, errors.Wrapf(err, "elasticsearch: audit: decode record %s", cut(h.ID, 64))
		}
		out.Records = append(out.Records, r)
	}
	return out, nil
}

// timeBound is t for a range on a date field, rounded up to the
// millisecond the field keeps (so gte and lt select exactly the records
// whose full timestamps would); nil for the zero time.
func timeBound(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	ms := t.Truncate(time.Millisecond)
	if ms.Before(t) {
		ms = ms.Add(time.Millisecond)
	}
	return ms.UTC().Format(timeLayout)
}

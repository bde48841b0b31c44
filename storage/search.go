package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// DocKey names an entity's document: its index, entity type and entity id.
// Two entities of different types with the same id are two documents, in
// one index or not.
type DocKey struct {
	Index      string
	EntityType string
	EntityID   string
}

func (k DocKey) String() string { return k.Index + "/" + k.EntityType + "/" + k.EntityID }

// Version orders the changes of one entity: the writing transaction's id
// (xid8; 0 for change-log rows older than the txid column) and then the
// change's position in the log (its pk). A document is replaced or deleted
// only by a change of a higher version, so an older change delivered late
// (a retry) never undoes a newer one.
type Version struct {
	TxID uint64
	Seq  int64
}

// Less reports whether v orders before w.
func (v Version) Less(w Version) bool {
	if v.TxID != w.TxID {
		return v.TxID < w.TxID
	}
	return v.Seq < w.Seq
}

// versionSeqBits is how many low bits of External hold the change's pk.
const versionSeqBits = 19

// External packs v into one positive int64, for a backend whose versions
// are one number (Elasticsearch's external versions). A version with a txid
// is bit 62, the txid shifted left by 19 bits and the pk's low 19 bits; one
// without (a row older than the txid column) is its pk alone, so below
// every version with a txid. It orders as Less does for txids below 2^43
// (Postgres would need 2,048 wraparound epochs to reach one), except for
// two changes of one entity in one transaction whose pks straddle a
// multiple of 2^19.
func (v Version) External() int64 {
	if v.TxID == 0 {
		return v.Seq
	}
	return 1<<62 | int64(v.TxID<<versionSeqBits) | v.Seq&(1<<versionSeqBits-1)
}

// Search keeps entities' documents, for the search action, and answers
// queries over them. Documents are JSON objects. Implementations are safe
// for concurrent use.
type Search interface {
	// Index stores doc as key's document at version v, unless the stored
	// document (or the deletion that removed it) has a version at or above
	// v: then nothing changes and Index returns nil.
	Index(ctx context.Context, key DocKey, v Version, doc []byte) error
	// Delete removes key's document at version v under the same rule: a
	// later Index of a lower version does not bring it back. An absent
	// document is not an error.
	Delete(ctx context.Context, key DocKey, v Version) error
	// Get returns key's document, or ErrNotFound (possibly wrapped).
	Get(ctx context.Context, key DocKey) ([]byte, error)
	// Query returns the documents q selects, ordered by entity type then
	// entity id, at most q.Limit of them, and the cursor of the next page.
	Query(ctx context.Context, q DocQuery) (DocPage, error)
	// Backend names the implementation ("postgres", "elasticsearch").
	Backend() string
}

// DocQuery selects entity documents of one index.
type DocQuery struct {
	Index      string // required
	EntityType string // "": any
	EntityID   string // "": any
	// Text is free text over the document's string, number and boolean
	// values: every word must occur (case-insensitive), "" matches all.
	Text  string
	Limit int    // ≤ 0: DefaultLimit
	After string // a DocPage.Next: the page after it
}

// DocHit is one document found.
type DocHit struct {
	Key       DocKey
	Version   Version
	Doc       json.RawMessage
	UpdatedAt time.Time
}

// DocPage is a page of documents; Next is "" on the last page.
type DocPage struct {
	Hits []DocHit
	Next string
}

// DefaultLimit is a query's page size when it names none; MaxLimit is the
// largest page a backend returns.
const (
	DefaultLimit = 50
	MaxLimit     = 10_000
)

// AuditStatus is what an audit record says happened.
type AuditStatus string

// The audit statuses. An event record (no observer) is received, or
// skipped when the listener could not deliver it (too large); a delivery
// record (an observer's action) is one of the others.
const (
	AuditReceived     AuditStatus = "received"     // the listener read the event and enqueued its deliveries
	AuditSkipped      AuditStatus = "skipped"      // the listener skipped the event (observer_skipped_events says why)
	AuditSucceeded    AuditStatus = "succeeded"    // the action succeeded
	AuditFailed       AuditStatus = "failed"       // the attempt failed and will be retried
	AuditDead         AuditStatus = "dead"         // the delivery failed for good: the dead-letter queue
	AuditDeduplicated AuditStatus = "deduplicated" // not enqueued: its dedup key was claimed by an earlier change
	AuditCached       AuditStatus = "cached"       // an identical request succeeded within the result cache's TTL: nothing sent
)

// AuditStatuses lists every status, in the order above.
var AuditStatuses = []AuditStatus{AuditReceived, AuditSkipped, AuditSucceeded, AuditFailed, AuditDead, AuditDeduplicated, AuditCached}

// AuditRecord is one entry of the audit trail: one per event the listener
// read, and one per outcome of each delivery attempt. The JSON names are
// the guide's index template's fields.
type AuditRecord struct {
	// ID is unique and deterministic (AuditID), so recording the same
	// outcome twice (a batch job retried whole) keeps one record.
	ID          string          `json:"id"`
	EventID     string          `json:"event_id"`
	EventSeq    int64           `json:"event_seq"`
	EntityType  string          `json:"entity_type"`
	EntityID    string          `json:"entity_id"`
	EventKind   string          `json:"event_kind"`
	Timestamp   time.Time       `json:"timestamp"` // the event's created_at; the outcome's time for delivery records; kept to the millisecond
	ObserverID  string          `json:"observer_id,omitempty"`
	ActionType  string          `json:"action_type,omitempty"`
	ActionIndex int             `json:"action_index"`
	Status      AuditStatus     `json:"status"`
	Error       string          `json:"error,omitempty"`
	Attempt     int             `json:"attempt"`
	DurationMS  int64           `json:"duration_ms"`
	Data        json.RawMessage `json:"data,omitempty"` // the event's data on event records; stored, not indexed
}

// AuditID is the record id of an event record (observer "") or of a
// delivery attempt's outcome.
func AuditID(eventSeq int64, observer string, action, attempt int, status AuditStatus) string {
	if observer == "" {
		return fmt.Sprintf("%d:%s", eventSeq, status)
	}
	return fmt.Sprintf("%d:%s:%d:%d:%s", eventSeq, observer, action, attempt, status)
}

// AuditText is the text free-text queries search in r: its error and the
// string, number and boolean values of its data (not the keys), separated
// by spaces. Both backends index exactly this.
func AuditText(r *AuditRecord) string {
	var b strings.Builder
	b.WriteString(r.Error)
	if len(r.Data) > 0 {
		b.WriteByte(' ')
		b.WriteString(DocText(r.Data))
	}
	return strings.TrimSpace(b.String())
}

func appendLeaves(b *strings.Builder, v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			appendLeaves(b, e)
		}
	case []any:
		for _, e := range x {
			appendLeaves(b, e)
		}
	case string:
		b.WriteByte(' ')
		b.WriteString(x)
	case json.Number:
		b.WriteByte(' ')
		b.WriteString(x.String())
	case bool:
		b.WriteByte(' ')
		fmt.Fprint(b, x)
	}
}

// AuditQuery selects audit records. Empty fields select all.
type AuditQuery struct {
	Text       string // free text over AuditText: every word must occur, case-insensitive
	EventID    string
	EventSeq   int64 // 0: any
	EntityType string
	EntityID   string
	ObserverID string
	ActionType string
	Status     AuditStatus
	Since      time.Time // records with Timestamp ≥ Since; zero: no bound
	Until      time.Time // records with Timestamp < Until; zero: no bound
	Limit      int       // ≤ 0: DefaultLimit
	After      string    // an AuditPage.Next: the page after it
}

// AuditPage is a page of records, newest first (Timestamp, then ID,
// descending); Next is "" on the last page.
type AuditPage struct {
	Records []AuditRecord
	Next    string
}

// Audit keeps the audit trail. Implementations are safe for concurrent use.
type Audit interface {
	// Write stores records; a record whose ID is stored already is left as
	// it is. When some records fail and others are stored, the error is a
	// *BulkError naming the failed ones; any other error means none may
	// have been stored.
	Write(ctx context.Context, recs []AuditRecord) error
	// Search returns the records q selects.
	Search(ctx context.Context, q AuditQuery) (AuditPage, error)
	// Backend names the implementation ("postgres", "elasticsearch").
	Backend() string
}

// BulkError reports the items of a bulk write that failed while the others
// were stored.
type BulkError struct {
	Failed []BulkItemError
}

// BulkItemError is one failed item: its position in the request and why.
// An Err that wraps ErrRejected will fail again; the others may succeed if
// retried.
type BulkItemError struct {
	Index int
	Err   error
}

func (e *BulkError) Error() string {
	if len(e.Failed) == 0 {
		return "storage: bulk write: no item failed"
	}
	return fmt.Sprintf("storage: bulk write: %d item(s) failed, the first (#%d): %v", len(e.Failed), e.Failed[0].Index, e.Failed[0].Err)
}

// Words splits s into the words free-text queries match: maximal runs of
// letters and digits, lower-cased ("A-1002 timed_out" is a, 1002, timed,
// out). Both backends index and query exactly these words (Elasticsearch
// through the index template's analyzer of the same rule), so a query
// finds the same records on either.
func Words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// DocText is the text free-text queries search in an entity document: its
// string, number and boolean values (not its keys), separated by spaces.
func DocText(doc []byte) string {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return ""
	}
	var b strings.Builder
	appendLeaves(&b, v)
	return strings.TrimSpace(b.String())
}

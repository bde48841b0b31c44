package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// AuditOpTimeoutDefault bounds each statement of an Audit call unless the
// caller's context ends sooner.
const AuditOpTimeoutDefault = 30 * time.Second

// Audit keeps the audit trail in observer_audit, the default audit
// backend. It implements storage.Audit and is safe for concurrent use.
type Audit struct {
	pool *pgxpool.Pool
}

var _ storage.Audit = (*Audit)(nil)

// NewAudit returns an Audit on pool.
func NewAudit(pool *pgxpool.Pool) *Audit { return &Audit{pool: pool} }

// Backend returns "postgres".
func (a *Audit) Backend() string { return "postgres" }

// auditInsert writes a batch in one statement: one array per column, a
// record whose id is stored already (or repeated in the batch) is skipped.
// tsv is the text form of the record's words (tsvectorText).
const auditInsert = `INSERT INTO observer_audit (id, event_id, event_seq, entity_type, entity_id, event_kind, ts,
    observer_id, action_type, action_index, status, error, attempt, duration_ms, data, tsv)
SELECT id, event_id, event_seq, entity_type, entity_id, event_kind, ts,
    observer_id, action_type, action_index, status, error, attempt, duration_ms, data::jsonb, tsv::tsvector
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
    $8::text[], $9::text[], $10::int[], $11::text[], $12::text[], $13::int[], $14::bigint[], $15::text[], $16::text[])
    AS r(id, event_id, event_seq, entity_type, entity_id, event_kind, ts,
    observer_id, action_type, action_index, status, error, attempt, duration_ms, data, tsv)
ON CONFLICT (event_seq, id) DO NOTHING`

// auditColumns holds a batch as the statement's arrays.
type auditColumns struct {
	id, eventID, entityType, entityID, kind, observer, actionType, status, errText []string
	seq, duration                                                                  []int64
	action, attempt                                                                []int32
	ts                                                                             []time.Time
	data, tsv                                                                      []*string
}

func (c *auditColumns) add(r *storage.AuditRecord) {
	c.id = append(c.id, r.ID)
	c.eventID = append(c.eventID, r.EventID)
	c.seq = append(c.seq, r.EventSeq)
	c.entityType = append(c.entityType, r.EntityType)
	c.entityID = append(c.entityID, r.EntityID)
	c.kind = append(c.kind, r.EventKind)
	c.ts = append(c.ts, auditTime(r.Timestamp))
	c.observer = append(c.observer, r.ObserverID)
	c.actionType = append(c.actionType, r.ActionType)
	c.action = append(c.action, int32(r.ActionIndex))
	c.status = append(c.status, string(r.Status))
	c.errText = append(c.errText, r.Error)
	c.attempt = append(c.attempt, int32(r.Attempt))
	c.duration = append(c.duration, r.DurationMS)
	var data *string
	if len(r.Data) > 0 {
		s := string(r.Data)
		data = &s
	}
	c.data = append(c.data, data)
	c.tsv = append(c.tsv, tsvectorText(storage.AuditText(r)))
}

func (c *auditColumns) args() []any {
	return []any{c.id, c.eventID, c.seq, c.entityType, c.entityID, c.kind, c.ts,
		c.observer, c.actionType, c.action, c.status, c.errText, c.attempt, c.duration, c.data, c.tsv}
}

// auditTime is t as stored: UTC, to the millisecond.
func auditTime(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

// Write stores recs in one statement. When Postgres rejects it for a
// record's data (SQLSTATE class 22, 23 or 54: invalid JSON, a NUL byte, a
// value too large), the batch is written again in halves, recursively,
// down to the records at fault: those come back in a *storage.BulkError,
// each marked storage.ErrRejected, and the others are stored (a batch of n
// with one bad record costs about 2·log2(n) statements). A record without
// an id is rejected without being sent.
func (a *Audit) Write(ctx context.Context, recs []storage.AuditRecord) error {
	var bulk storage.BulkError
	idx := make([]int, 0, len(recs))
	for i := range recs {
		if recs[i].ID == "" {
			bulk.Failed = append(bulk.Failed, storage.BulkItemError{Index: i, Err: markRejected(errors.WithHint(
				errors.New("audit: write: a record without an id"), "storage.AuditID names a record"))})
			continue
		}
		idx = append(idx, i)
	}
	if len(idx) > 0 {
		if err := a.insert(ctx, recs, idx); err != nil {
			if !retryHalves(err) {
				return errors.Wrapf(err, "audit: write %d record(s)", len(idx))
			}
			a.isolate(ctx, recs, idx, err, &bulk)
		}
	}
	if len(bulk.Failed) == 0 {
		return nil
	}
	slices.SortFunc(bulk.Failed, func(x, y storage.BulkItemError) int { return x.Index - y.Index })
	return &bulk
}

// auditCopyColumns are the columns COPY fills, in auditCopyRow's order.
var auditCopyColumns = []string{"id", "event_id", "event_seq", "entity_type", "entity_id", "event_kind", "ts",
	"observer_id", "action_type", "action_index", "status", "error", "attempt", "duration_ms", "data", "tsv"}

func auditCopyRow(r *storage.AuditRecord) []any {
	var data any
	if len(r.Data) > 0 {
		data = string(r.Data)
	}
	return []any{r.ID, r.EventID, r.EventSeq, r.EntityType, r.EntityID, r.EventKind, auditTime(r.Timestamp),
		r.ObserverID, r.ActionType, int32(r.ActionIndex), string(r.Status), r.Error, int32(r.Attempt), r.DurationMS,
		data, tsvector(storage.AuditText(r))}
}

// insert writes recs[idx]: by COPY, the cheapest way into the table and
// its indexes, and when that fails on a record (23505: one stored already,
// by a batch written twice, or repeated in the batch) by the statement
// that skips stored records. Data Postgres refuses fails either way, and
// Write isolates it by halves.
func (a *Audit) insert(ctx context.Context, recs []storage.AuditRecord, idx []int) error {
	ctx, cancel := context.WithTimeout(ctx, AuditOpTimeoutDefault)
	defer cancel()
	rows := make([][]any, 0, len(idx))
	seen := make(map[string]struct{}, len(idx))
	dup := false
	for _, i := range idx {
		if _, ok := seen[recs[i].ID]; ok {
			dup = true
			break
		}
		seen[recs[i].ID] = struct{}{}
		rows = append(rows, auditCopyRow(&recs[i]))
	}
	if !dup {
		_, err := a.pool.CopyFrom(ctx, pgx.Identifier{"observer_audit"}, auditCopyColumns, pgx.CopyFromRows(rows))
		if sqlState(err) != "23505" {
			return interpretError(err) // stored, or refused data that Write isolates by halves
		}
	}
	var cols auditColumns
	for _, i := range idx {
		cols.add(&recs[i])
	}
	_, err := a.pool.Exec(ctx, auditInsert, cols.args()...)
	return interpretError(err)
}

// retryHalves reports whether err is Postgres refusing a record's data
// (class 22, 23 or 54), which writing the batch in parts can isolate.
func retryHalves(err error) bool {
	code := sqlState(err)
	return len(code) >= 2 && (code[:2] == "22" || code[:2] == "23" || code[:2] == "54")
}

// isolate handles recs[idx], whose statement failed with err: a rejection
// of several records is written again in halves; a rejected record, or
// records that failed otherwise (the connection, the context: they may be
// written by a retry), are failed items.
func (a *Audit) isolate(ctx context.Context, recs []storage.AuditRecord, idx []int, err error, bulk *storage.BulkError) {
	switch {
	case !retryHalves(err):
		for _, i := range idx {
			bulk.Failed = append(bulk.Failed, storage.BulkItemError{Index: i, Err: errors.Wrap(err, "audit: write")})
		}
	case len(idx) == 1:
		bulk.Failed = append(bulk.Failed, storage.BulkItemError{Index: idx[0],
			Err: errors.Wrapf(err, "audit: write record %s", excerpt(recs[idx[0]].ID))})
	default:
		for _, half := range [][]int{idx[:len(idx)/2], idx[len(idx)/2:]} {
			if err := a.insert(ctx, recs, half); err != nil {
				a.isolate(ctx, recs, half, err, bulk)
			}
		}
	}
}

// auditSelect reads records, filtered and paged by Search.
const auditSelect = `SELECT id, event_id, event_seq, entity_type, entity_id, event_kind, ts,
    observer_id, action_type, action_index, status, error, attempt, duration_ms, data
FROM observer_audit`

// Search returns the records q selects, newest first (ts, then id, both
// descending), at most q.Limit (≤ storage.MaxLimit) of them. Every value
// is a bound parameter; the WHERE clause names only the filters given.
func (a *Audit) Search(ctx context.Context, q storage.AuditQuery) (storage.AuditPage, error) {
	var f filter
	for _, c := range []struct{ col, val string }{
		{"event_id", q.EventID}, {"entity_type", q.EntityType}, {"entity_id", q.EntityID},
		{"observer_id", q.ObserverID}, {"action_type", q.ActionType},
	} {
		if c.val != "" {
			f.add(c.col+" = $%d", c.val)
		}
	}
	if q.Status != "" {
		// A literal, not a parameter: a cached statement's generic plan
		// could not prove that the failures index (status IN ('failed',
		// 'dead')) applies. Only a known status is written into the SQL.
		if !slices.Contains(storage.AuditStatuses, q.Status) {
			return storage.AuditPage{}, nil
		}
		f.conds = append(f.conds, "status = '"+string(q.Status)+"'")
	}
	if q.EventSeq != 0 {
		f.add("event_seq = $%d", q.EventSeq)
	}
	if !q.Since.IsZero() {
		f.add("ts >= $%d", auditTime(q.Since))
	}
	if !q.Until.IsZero() {
		f.add("ts < $%d", auditTime(q.Until))
	}
	if tsq, ok := tsqueryText(q.Text); !ok {
		return storage.AuditPage{}, nil
	} else if tsq != "" {
		f.add("tsv @@ $%d::tsquery", tsq)
	}
	if q.After != "" {
		ts, id, err := decodeAuditCursor(q.After)
		if err != nil {
			return storage.AuditPage{}, err
		}
		f.add("(ts, id) < ($%d, $%d)", ts, id)
	}
	limit := pageLimit(q.Limit)
	sql := auditSelect + f.where() + fmt.Sprintf(" ORDER BY ts DESC, id DESC LIMIT %d", limit+1)
	page, err := a.query(ctx, sql, f.args, limit)
	if err != nil {
		return storage.AuditPage{}, errors.Wrap(err, "audit: search")
	}
	return page, nil
}

func (a *Audit) query(ctx context.Context, sql string, args []any, limit int) (storage.AuditPage, error) {
	ctx, cancel := context.WithTimeout(ctx, AuditOpTimeoutDefault)
	defer cancel()
	rows, err := a.pool.Query(ctx, sql, args...)
	if err != nil {
		return storage.AuditPage{}, interpretError(err)
	}
	defer rows.Close()
	var page storage.AuditPage
	for rows.Next() {
		var r storage.AuditRecord
		var status string
		var action, attempt int32
		var data []byte
		if err := rows.Scan(&r.ID, &r.EventID, &r.EventSeq, &r.EntityType, &r.EntityID, &r.EventKind, &r.Timestamp,
			&r.ObserverID, &r.ActionType, &action, &status, &r.Error, &attempt, &r.DurationMS, &data); err != nil {
			return storage.AuditPage{}, interpretError(err)
		}
		r.Timestamp, r.Status, r.ActionIndex, r.Attempt = r.Timestamp.UTC(), storage.AuditStatus(status), int(action), int(attempt)
		if data != nil {
			r.Data = json.RawMessage(data)
		}
		page.Records = append(page.Records, r)
	}
	if err := rows.Err(); err != nil {
		return storage.AuditPage{}, interpretError(err)
	}
	if len(page.Records) > limit {
		page.Records = page.Records[:limit]
		last := page.Records[limit-1]
		page.Next = encodeCursor(strconv.FormatInt(last.Timestamp.UnixMilli(), 10) + ":" + last.ID)
	}
	return page, nil
}

// decodeAuditCursor reads a Next: "unixmillis:id", base64.
func decodeAuditCursor(cursor string) (time.Time, string, error) {
	key, err := decodeCursor("audit: search", cursor)
	if err != nil {
		return time.Time{}, "", err
	}
	ms, id, ok := strings.Cut(key, ":")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil {
		return time.Time{}, "", badCursor("audit: search", cursor)
	}
	return time.UnixMilli(n).UTC(), id, nil
}

package changelog

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Range selects the rows a replay reads again: those at or before Bound in
// (txid, pk) order (the listener's checkpoint: rows it has passed), with a
// pk in [FromPK, ToPK), a created_at in [From, To) and one of EntityTypes
// (object_type). A nil bound or an empty list does not restrict.
type Range struct {
	Bound       Position
	FromPK      *int64
	ToPK        *int64
	From        *time.Time
	To          *time.Time
	EntityTypes []string
}

// rangeFilters is the condition on a row's pk, created_at and object_type,
// with its five parameters numbered from first.
func rangeFilters(first int) string {
	return fmt.Sprintf(`($%[1]d::bigint IS NULL OR c.pk_entity_change_log >= $%[1]d::bigint)
    AND ($%[2]d::bigint IS NULL OR c.pk_entity_change_log < $%[2]d::bigint)
    AND ($%[3]d::timestamptz IS NULL OR c.created_at >= $%[3]d::timestamptz)
    AND ($%[4]d::timestamptz IS NULL OR c.created_at < $%[4]d::timestamptz)
    AND (cardinality($%[5]d::text[]) = 0 OR c.object_type::text = ANY($%[5]d::text[]))`,
		first, first+1, first+2, first+3, first+4)
}

// rangeWhere is ReadRange's condition in batchSQL: at or before the bound
// ($6 txid, $7 pk), then the filters.
var rangeWhere = `(COALESCE(c.txid, '0'::xid8), c.pk_entity_change_log) <= ($6::text::xid8, $7::bigint)
    AND ` + rangeFilters(8)

// countRangeSQL counts the rows the filters select, at or before the bound
// ($1 txid, $2 pk) and after it, and finds the first one before it.
func countRangeSQL(table string) string {
	return `SELECT count(*) FILTER (WHERE s.passed),
  count(*) FILTER (WHERE NOT s.passed),
  min(ARRAY[s.tx, s.pk]) FILTER (WHERE s.passed)
FROM (
  SELECT COALESCE(c.txid, '0'::xid8)::text::bigint AS tx, c.pk_entity_change_log AS pk,
    (COALESCE(c.txid, '0'::xid8), c.pk_entity_change_log) <= ($1::text::xid8, $2::bigint) AS passed
  FROM ` + table + ` c
  WHERE ` + rangeFilters(3) + `
) s`
}

func (r Range) filterArgs() []any {
	types := r.EntityTypes
	if types == nil {
		types = []string{}
	}
	return []any{r.FromPK, r.ToPK, r.From, r.To, types}
}

// ReadRange reads the rows of r after pos, in (txid, pk) order, within lim,
// as ReadBatch does (rows that cannot be decoded or are too large come back
// as Skipped). More reports that rows of r may follow Last.
func (c *ChangeLog) ReadRange(ctx context.Context, q observers.Querier, pos Position, r Range, lim Limits) (Batch, error) {
	more := append([]any{fmt.Sprint(r.Bound.TxID), r.Bound.Seq}, r.filterArgs()...)
	return c.readBatch(ctx, q, c.rangeSQL, pos, lim, more...)
}

// RangeCount is what CountRange found.
type RangeCount struct {
	// Rows are the rows r selects at or before its bound.
	Rows int64
	// Beyond are the rows the filters select after the bound: the listener
	// has not passed them yet.
	Beyond int64
	// Start is the position just before the first of Rows, where ReadRange
	// starts; nil when Rows is 0.
	Start *Position
}

// CountRange counts the rows of r, and those its filters select after its
// bound, in one scan of the rows the filters select.
func (c *ChangeLog) CountRange(ctx context.Context, q observers.Querier, r Range) (RangeCount, error) {
	var out RangeCount
	var first []int64
	args := append([]any{fmt.Sprint(r.Bound.TxID), r.Bound.Seq}, r.filterArgs()...)
	if err := q.QueryRow(ctx, c.countSQL, args...).Scan(&out.Rows, &out.Beyond, &first); err != nil {
		return RangeCount{}, errors.Wrapf(err, "count changes in %s", c.table)
	}
	if len(first) == 2 {
		// Just before the first row: no position lies between.
		out.Start = &Position{TxID: uint64(first[0]), Seq: first[1] - 1}
	}
	return out, nil
}

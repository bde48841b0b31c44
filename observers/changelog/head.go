package changelog

import (
	"context"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Head is what names a change, without its data: enough to list it.
type Head struct {
	Seq        int64  `json:"seq"`
	ID         string `json:"id"`          // the change's uuid
	EntityType string `json:"entity_type"` // object_type
	EntityID   string `json:"entity_id"`   // object_id, as text
}

// Heads reads the heads of changes seqs; a missing pk has no entry.
func (c *ChangeLog) Heads(ctx context.Context, q observers.Querier, seqs []int64) (map[int64]Head, error) {
	rows, err := q.Query(ctx, `SELECT pk_entity_change_log, COALESCE(id::text, ''), COALESCE(object_type::text, ''),
		COALESCE(object_id::text, '') FROM `+c.quoted+` WHERE pk_entity_change_log = ANY($1::bigint[])`, seqs)
	if err != nil {
		return nil, errors.Wrapf(err, "read changes from %s", c.table)
	}
	defer rows.Close()
	out := make(map[int64]Head, len(seqs))
	for rows.Next() {
		var h Head
		if err := rows.Scan(&h.Seq, &h.ID, &h.EntityType, &h.EntityID); err != nil {
			return nil, errors.Wrapf(err, "read changes from %s", c.table)
		}
		out[h.Seq] = h
	}
	return out, errors.Wrapf(rows.Err(), "read changes from %s", c.table)
}

// EntityTypeSQL is a scalar SQL expression: the object_type of the change
// whose pk is the SQL expression seq, NULL when there is none.
func (c *ChangeLog) EntityTypeSQL(seq string) string {
	return `(SELECT object_type::text FROM ` + c.quoted + ` WHERE pk_entity_change_log = ` + seq + `)`
}

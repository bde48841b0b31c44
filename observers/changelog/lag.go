package changelog

import (
	"context"
	"fmt"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Lag measures the changes of the log table ident after pos, in the order
// the listener reads them: how many (at most limit, so that a large
// backlog costs at most limit index entries) and the age in seconds of the
// oldest (0 when none). `status` and the leader's
// observer_listener_lag_seconds both read it. Hand-written, not sqlc: the
// table's name comes from the configuration.
func Lag(ctx context.Context, q observers.Querier, ident pgx.Identifier, pos Position, limit int) (pending int64, ageSeconds float64, err error) {
	sql := `WITH pending AS (
	SELECT created_at FROM ` + ident.Sanitize() + `
	WHERE (COALESCE(txid, '0'::xid8), pk_entity_change_log) > ($1::text::xid8, $2::bigint)
	ORDER BY COALESCE(txid, '0'::xid8), pk_entity_change_log
	LIMIT $3)
SELECT count(*), COALESCE(EXTRACT(epoch FROM now() - min(created_at)), 0)::float8 FROM pending`
	if err := q.QueryRow(ctx, sql, fmt.Sprint(pos.TxID), pos.Seq, limit).Scan(&pending, &ageSeconds); err != nil {
		return 0, 0, errors.Wrapf(err, "measure lag on %s", ident.Sanitize())
	}
	return pending, max(ageSeconds, 0), nil
}

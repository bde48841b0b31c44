package river

import (
	"context"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
)

// CountJobs counts the River jobs of observer deliveries (both Kinds) by
// state in tx: state name → jobs. The `status` command reads the queue
// depth and the dead-letter queue through it. Hand-written, not sqlc:
// river_job is River's table, outside sqlc's schema.
func CountJobs(ctx context.Context, tx pgx.Tx) (map[string]int64, error) {
	rows, err := tx.Query(ctx, `SELECT state::text, count(*) FROM river_job WHERE kind = ANY($1) GROUP BY state`, Kinds)
	if err != nil {
		return nil, errors.Wrap(err, "count river jobs")
	}
	defer rows.Close()
	counts := map[string]int64{}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, errors.Wrap(err, "count river jobs")
		}
		counts[state] = n
	}
	return counts, errors.Wrap(rows.Err(), "count river jobs")
}

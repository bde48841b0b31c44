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

// Migrated reports whether River's tables exist in the database (River's
// migrations have run).
func Migrated(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT to_regclass('river_job') IS NOT NULL`).Scan(&ok)
	return ok, errors.Wrap(err, "look up river_job")
}

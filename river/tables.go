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
	return countStates(ctx, tx, "count river jobs",
		`SELECT state::text, count(*) FROM river_job WHERE kind = ANY($1) GROUP BY state`, Kinds)
}

// countStates runs sql, which returns (state, count) rows, into a map.
func countStates(ctx context.Context, tx pgx.Tx, what, sql string, args ...any) (map[string]int64, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, errors.Wrap(err, what)
	}
	defer rows.Close()
	counts := map[string]int64{}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, errors.Wrap(err, what)
		}
		counts[state] = n
	}
	return counts, errors.Wrap(rows.Err(), what)
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

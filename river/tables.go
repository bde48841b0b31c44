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

// countStates runs sql, which returns (name, count) rows, into a map.
func countStates(ctx context.Context, q Querier, what, sql string, args ...any) (map[string]int64, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, errors.Wrap(err, what)
	}
	defer rows.Close()
	counts := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, errors.Wrap(err, what)
		}
		counts[name] = n
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

// Querier runs a query: *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// RunningByQueue counts the running jobs of each of the observer's River
// queues (QueueName and QueueName_<type>, every kind, the periodic cleanup
// included, as River's MaxWorkers counts them): queue → jobs. `status`
// reads the Workers line's "running" through it.
func RunningByQueue(ctx context.Context, q Querier) (map[string]int64, error) {
	return countByQueue(ctx, q, []string{"running"})
}

// DepthStates are the states observer_job_queue_depth reports: waiting
// for a worker (available now, scheduled for a retry's delay or snoozed
// by a breaker or a rate limit, retryable after a failure) and running.
var DepthStates = []string{"available", "scheduled", "retryable", "running"}

// DepthByQueue counts the jobs of each of the observer's River queues in
// each of DepthStates: queue → state → jobs (states with none absent).
func DepthByQueue(ctx context.Context, q Querier) (map[string]map[string]int64, error) {
	const what = "count river jobs by queue and state"
	rows, err := q.Query(ctx, `SELECT queue, state::text, count(*) FROM river_job
		WHERE state = ANY($1::text[]::river_job_state[]) AND (queue = $2 OR starts_with(queue, $2 || '_'))
		GROUP BY queue, state`, DepthStates, QueueName)
	if err != nil {
		return nil, errors.Wrap(err, what)
	}
	defer rows.Close()
	out := map[string]map[string]int64{}
	for rows.Next() {
		var queue, state string
		var n int64
		if err := rows.Scan(&queue, &state, &n); err != nil {
			return nil, errors.Wrap(err, what)
		}
		if out[queue] == nil {
			out[queue] = map[string]int64{}
		}
		out[queue][state] = n
	}
	return out, errors.Wrap(rows.Err(), what)
}

func countByQueue(ctx context.Context, q Querier, states []string) (map[string]int64, error) {
	return countStates(ctx, q, "count river jobs by queue", `SELECT queue, count(*) FROM river_job
		WHERE state = ANY($1::text[]::river_job_state[]) AND (queue = $2 OR starts_with(queue, $2 || '_'))
		GROUP BY queue`, states, QueueName)
}

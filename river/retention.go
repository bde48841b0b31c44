package river

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Retention's side of River: the periodic job that runs it, and the SQL on
// River's table it needs (which jobs still need their change-log rows,
// deleting finished jobs). What it deletes and when is the retention
// package's.

// RetentionKind is the River job kind of the periodic retention run.
const RetentionKind = "fraiseql_observer_retention"

// RetentionIntervalDefault is how often retention runs. A run that has
// more to delete than fits in RetentionRunTimeout stops and the next one
// goes on.
const RetentionIntervalDefault = time.Minute

// RetentionRunTimeout is River's timeout of one retention run: below
// rescueFloor, so River never takes a long run for a stuck one. The run
// itself stops earlier (retention.RunBudget).
const RetentionRunTimeout = time.Minute

// Retention is one retention run (retention.Runner.Run).
type Retention func(context.Context) error

// retentionArgs is the periodic retention job; like the cleanup, at most
// one is pending and a failed one is not retried (the next interval is).
type retentionArgs struct{}

func (retentionArgs) Kind() string { return RetentionKind }

func (retentionArgs) InsertOpts() river.InsertOpts { return cleanupArgs{}.InsertOpts() }

type retentionWorker struct {
	river.WorkerDefaults[retentionArgs]
	run    Retention
	logger *slog.Logger
}

func (w *retentionWorker) Timeout(*river.Job[retentionArgs]) time.Duration {
	return RetentionRunTimeout
}

func (w *retentionWorker) Work(ctx context.Context, _ *river.Job[retentionArgs]) error {
	err := w.run(ctx)
	if err != nil && ctx.Err() == nil {
		w.logger.WarnContext(ctx, "retention: run failed; retried at the next interval", slog.String("error", err.Error()))
	}
	return err
}

// retentionJob registers the worker and returns the periodic job, or nil
// without a run.
func retentionJob(workers *river.Workers, run Retention, every time.Duration, logger *slog.Logger) *river.PeriodicJob {
	if run == nil {
		return nil
	}
	river.AddWorker(workers, &retentionWorker{run: run, logger: logger})
	return river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return retentionArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

// riverJobsKeptByRiver is the River client's own retention of finished
// jobs: -1, never. Retention deletes them instead (retention.completed_jobs
// and dead_letters), in bounded batches, and counts them in
// observer_retention_deleted_total, which River's JobCleaner cannot.
const riverJobsKeptByRiver = -1

// unfinishedStates are River's job states other than completed, listed
// from River itself so that a state a later River adds counts as
// unfinished: its jobs keep their change-log rows.
var unfinishedStates = func() []string {
	var out []string
	for _, s := range rivertype.JobStates() {
		if s != rivertype.JobStateCompleted {
			out = append(out, string(s))
		}
	}
	return out
}()

// sqlList renders constants as a SQL list: ('a', 'b').
func sqlList(values []string) string {
	return "('" + strings.Join(values, "', '") + "')"
}

// JobPinsSQL lists the change-log pks (column seq) that observer
// deliveries not yet completed refer to: an action job's args.seq, a batch
// job's args.deliveries[].seqs, in every state but completed, so pending,
// retrying, snoozed and dead ones (`dlq retry` must find its event) all
// keep their rows. Retention reads it in the statement that deletes, so
// it sees the same jobs as the checkpoint it reads there.
var JobPinsSQL = `SELECT (j.args->>'seq')::bigint AS seq FROM river_job j
  WHERE j.state IN ` + sqlList(unfinishedStates) + ` AND j.kind = '` + ActionKind + `'
UNION ALL
SELECT s.seq::bigint FROM river_job j
  CROSS JOIN LATERAL jsonb_array_elements(j.args->'deliveries') d
  CROSS JOIN LATERAL jsonb_array_elements_text(d->'seqs') s(seq)
  WHERE j.state IN ` + sqlList(unfinishedStates) + ` AND j.kind = '` + BatchKind + `'`

// FinishedJobs is a class of finished River jobs that retention deletes,
// of every kind: River's own cleaner is off (riverJobsKeptByRiver).
type FinishedJobs int

// The classes.
const (
	CompletedJobs  FinishedJobs = iota // completed
	DeadLetterJobs                     // cancelled and discarded: the dead-letter queue
)

func (c FinishedJobs) states() string {
	if c == CompletedJobs {
		return sqlList([]string{string(rivertype.JobStateCompleted)})
	}
	return sqlList([]string{string(rivertype.JobStateCancelled), string(rivertype.JobStateDiscarded)})
}

// Execer runs a statement: a pool, a connection or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// DeleteFinishedJobs deletes at most limit jobs of class c that finished
// before before, and returns how many it deleted. The outer WHERE repeats
// the state: a dead letter that `dlq retry` puts back while the statement
// waits for its row lock is checked again in its new state, and stays.
func DeleteFinishedJobs(ctx context.Context, db Execer, c FinishedJobs, before time.Time, limit int) (int64, error) {
	tag, err := db.Exec(ctx, `DELETE FROM river_job WHERE id IN (
  SELECT id FROM river_job WHERE state IN `+c.states()+` AND finalized_at < $1 LIMIT $2)
AND state IN `+c.states()+` AND finalized_at < $1`, before, limit)
	if err != nil {
		return 0, errors.Wrap(err, "delete finished river jobs")
	}
	return tag.RowsAffected(), nil
}

// CountFinishedJobs counts the jobs of class c that finished before before.
func CountFinishedJobs(ctx context.Context, db observers.Querier, c FinishedJobs, before time.Time) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state IN `+c.states()+` AND finalized_at < $1`, before).Scan(&n)
	return n, errors.Wrap(err, "count finished river jobs")
}

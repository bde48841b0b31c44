package river

import (
	"context"
	"log/slog"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// CleanupKind is the River job kind of the periodic storage cleanup.
const CleanupKind = "fraiseql_observer_cleanup"

// CleanupIntervalDefault is how often expired dedup keys, cache rows and
// Redis claim tokens are deleted.
const CleanupIntervalDefault = time.Minute

// cleanupArgs is the periodic cleanup job. River's leader enqueues it, so
// one instance of the group runs it per interval.
type cleanupArgs struct{}

func (cleanupArgs) Kind() string { return CleanupKind }

// InsertOpts keeps at most one cleanup pending and never retries one: the
// next interval brings another.
func (cleanupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueName,
		MaxAttempts: 1,
		UniqueOpts:  river.UniqueOpts{ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled}},
	}
}

// Cleanup is one storage cleanup (e.g. storage.Dedup.Cleanup).
type Cleanup func(context.Context) error

type cleanupWorker struct {
	river.WorkerDefaults[cleanupArgs]
	cleanups []Cleanup
	logger   *slog.Logger
}

// Work runs every cleanup, each with its own timeout; a failure does not stop
// the others and is reported on the job (the next interval retries).
func (w *cleanupWorker) Work(ctx context.Context, _ *river.Job[cleanupArgs]) error {
	var errs error
	for _, fn := range w.cleanups {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		if err := fn(cctx); err != nil {
			w.logger.WarnContext(ctx, "maintenance: cleanup failed; retried at the next interval", slog.String("error", err.Error()))
			errs = errors.CombineErrors(errs, err)
		}
		cancel()
	}
	return errs
}

// cleanupJob registers the worker and returns the periodic job, or nil when
// there is nothing to clean.
func cleanupJob(workers *river.Workers, cleanups []Cleanup, every time.Duration, logger *slog.Logger) *river.PeriodicJob {
	if len(cleanups) == 0 {
		return nil
	}
	river.AddWorker(workers, &cleanupWorker{cleanups: cleanups, logger: logger})
	return river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return cleanupArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

package river

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Batch job limits.
const (
	// BatchHandoffAfter is how long a batch job waits for slots of its
	// action type (max_parallelism) before the deliveries it has not started
	// continue as their own jobs, with no attempt spent. It bounds a batch
	// job's run to this plus its slowest action's timeout, well inside the
	// time after which River rescues a job it believes stuck.
	BatchHandoffAfter = slotWait
	// batchActionTimeout bounds an action without a timeout of its own in a
	// batch, as River's default job timeout does for a job of its own.
	batchActionTimeout = time.Minute
	// batchRecordTimeout bounds the transaction that records a batch's
	// outcomes, which runs even when the job's context has ended.
	batchRecordTimeout = 10 * time.Second
)

// BatchWorker runs the first attempt of a batch job's deliveries
// concurrently, each in a slot of its action type's max_parallelism. Every
// delivery that does not succeed continues as its own ActionArgs job, as
// though that job had made the attempt: a transient failure is retryable
// with attempt 1 and its error recorded, a permanent one is cancelled (the
// dead-letter queue), one refused by an open circuit breaker is snoozed with
// no attempt spent, one never started is available. Those jobs are inserted
// in the transaction that completes the batch job, so an outcome is
// recorded exactly once; if that transaction fails, the batch is retried
// whole and its receivers see the same webhook-id again.
type BatchWorker struct {
	river.WorkerDefaults[BatchArgs]
	w       *ActionWorker
	handoff time.Duration
}

// NewBatchWorker runs batches with w's actions, limits and metrics.
func NewBatchWorker(w *ActionWorker) *BatchWorker {
	return &BatchWorker{w: w, handoff: BatchHandoffAfter}
}

// Timeout bounds the batch: the wait for slots (handoff) plus its slowest
// delivery's own timeout, plus a margin so the deliveries report their
// timeouts themselves. River's rescuer also waits this long before it works
// again a batch left running by a process that died.
func (b *BatchWorker) Timeout(job *river.Job[BatchArgs]) time.Duration {
	slowest := batchActionTimeout
	if v := b.w.configs.lookup(job.Args.ConfigVersion); v != nil {
		slowest = 0
		for _, d := range job.Args.Deliveries {
			if o, err := v.action(d.Observer, d.Action); err == nil {
				slowest = max(slowest, actionTimeout(&o.Actions[d.Action]))
			}
		}
	}
	return b.handoff + slowest + timeoutMargin
}

// outcome is what became of one delivery of a batch.
type outcome struct {
	seq      int64
	observer string
	o        *observers.Observer // nil: the configuration has no such action
	idx      int
	ev       *observers.Event // nil: not loaded
	err      error            // nil: delivered
	started  bool             // false: handed off before it began
}

// Work runs the batch and records every delivery that did not succeed.
func (b *BatchWorker) Work(ctx context.Context, job *river.Job[BatchArgs]) error {
	// The hand-off clock starts now, so reading the configuration and the
	// events counts against it: the batch stays inside its Timeout.
	handoff, cancel := context.WithTimeout(ctx, b.handoff)
	defer cancel()
	w, a := b.w, job.Args
	v, err := w.configs.Get(ctx, a.ConfigVersion)
	if err != nil {
		return err
	}
	var seqs []int64
	for _, d := range a.Deliveries {
		seqs = append(seqs, d.Seqs...)
	}
	loaded, err := w.events.GetMany(ctx, v.Log, seqs)
	if err != nil {
		return err
	}

	outs := make([]outcome, 0, len(seqs))
	for _, d := range a.Deliveries {
		o, cfgErr := v.action(d.Observer, d.Action)
		for _, seq := range d.Seqs {
			out := outcome{seq: seq, observer: d.Observer, o: o, idx: d.Action, ev: loaded[seq].Event}
			// A delivery that cannot run fails at once; one whose change
			// cannot be read is handed off (never started), and its own job
			// reports why.
			switch l := loaded[seq]; {
			case cfgErr != nil:
				out.started, out.err = true, permanent(cfgErr)
			case errors.Is(l.Err, observers.ErrNotFound):
				out.started, out.err = true, permanent(errDeleted(l.Err))
			case l.Err != nil:
				out.ev = nil
			}
			outs = append(outs, out)
		}
	}

	var wg sync.WaitGroup
	for i := range outs {
		out := &outs[i]
		if out.started || out.ev == nil {
			continue
		}
		if ctx.Err() != nil {
			break // shutting down: what has not started is handed off
		}
		typ := out.o.Actions[out.idx].Type
		release, err := w.limits.acquire(handoff, typ)
		if err != nil {
			continue // no slot in time: handed off
		}
		if ctx.Err() != nil {
			release() // the slot and the shutdown came together: hand it off
			break
		}
		out.started = true
		wg.Go(func() {
			defer release()
			defer func() {
				// River recovers a panicking job; a delivery's goroutine must
				// do so itself, or it would take the process down. Like
				// River, count it as a failed attempt.
				if p := recover(); p != nil {
					out.err = errors.Newf("panic: %v", p)
					w.logger.ErrorContext(ctx, "worker: action panicked", slog.String("observer", out.o.Name),
						slog.Int64("event_seq", out.seq), slog.String("panic", fmt.Sprint(p)))
				}
			}()
			actx, cancel := context.WithTimeout(ctx, actionTimeout(&out.o.Actions[out.idx]))
			defer cancel()
			out.err = w.run(actx, v, out.o, out.idx, out.ev, 1, out.o.Retry.MaxAttempts)
		})
	}
	wg.Wait()
	return b.record(ctx, job, v, outs)
}

// actionTimeout bounds one delivery of action a in a batch.
func actionTimeout(a *observers.Action) time.Duration {
	if a.Webhook != nil && a.Webhook.Timeout > 0 {
		return a.Webhook.Timeout + timeoutMargin
	}
	return batchActionTimeout
}

// followUp is a delivery that continues as its own job, and the state that
// job starts in.
type followUp struct {
	params  river.InsertManyParams
	state   string // "" keeps River's (available, or scheduled when ScheduledAt is set)
	attempt int
	err     string
	snoozed bool
}

// record inserts a job for every delivery that did not succeed and
// completes the batch job, in one transaction.
func (b *BatchWorker) record(ctx context.Context, job *river.Job[BatchArgs], v *Version, outs []outcome) error {
	now := time.Now()
	var ups []followUp
	for i := range outs {
		out := &outs[i]
		if out.started && out.err == nil {
			continue
		}
		up := followUp{params: river.InsertManyParams{
			Args: ActionArgs{
				Seq: out.seq, Observer: out.observer, Action: out.idx,
				ActionType: job.Args.ActionType, ConfigVersion: job.Args.ConfigVersion, Batch: job.ID,
			},
			InsertOpts: &river.InsertOpts{MaxAttempts: observers.RetryMaxAttemptsDefault, Queue: QueueFor(job.Args.ActionType)},
		}}
		args := up.params.Args.(ActionArgs)
		if out.ev != nil {
			args.EventID, args.Entity = out.ev.ID, out.ev.EntityType
		}
		if out.o != nil {
			up.params.InsertOpts.MaxAttempts = out.o.Retry.MaxAttempts
		}
		var snooze *rivertype.JobSnoozeError
		var de *observers.DeliveryError
		switch {
		case !out.started:
			// handed off: its own job runs it from the start
		case errors.As(out.err, &snooze):
			up.params.InsertOpts.ScheduledAt = now.Add(snooze.Duration)
			up.snoozed = true
		case errors.As(out.err, &de) && de.Permanent:
			up.state, up.attempt, up.err = "cancelled", 1, out.err.Error()
		case up.params.InsertOpts.MaxAttempts <= 1:
			up.state, up.attempt, up.err = "discarded", 1, out.err.Error()
		default:
			next := now.Add(out.o.Retry.Delay(1))
			if de != nil && de.RetryAfter > 0 {
				next = later(next, now.Add(min(de.RetryAfter, maxRetryAfter)))
			}
			up.params.InsertOpts.ScheduledAt = next
			up.state, up.attempt, up.err = "retryable", 1, out.err.Error()
		}
		up.params.Args = args
		ups = append(ups, up)
	}
	if len(ups) == 0 {
		return nil // River completes the job
	}
	// The outcomes are recorded even when the job's context has ended (a
	// shutdown): the deliveries already happened.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchRecordTimeout)
	defer cancel()
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return errors.Wrap(err, "record batch outcomes")
	}
	err = pgx.BeginFunc(rctx, b.w.pool, func(tx pgx.Tx) error {
		return recordTx(rctx, tx, client, job, ups)
	})
	if err != nil {
		return errors.Wrap(err, "record batch outcomes")
	}
	for _, u := range ups {
		state := u.state
		switch {
		case u.snoozed:
			state = "scheduled"
		case state == "":
			state = "available"
		}
		b.w.metrics.BatchFollowUps.WithLabelValues(job.Args.ActionType, state).Inc()
	}
	b.w.logger.DebugContext(ctx, "worker: batch deliveries continue as their own jobs",
		slog.Int64("batch_job", job.ID), slog.Int("deliveries", len(outs)), slog.Int("follow_ups", len(ups)))
	return nil
}

func recordTx(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], job *river.Job[BatchArgs], ups []followUp) error {
	params := make([]river.InsertManyParams, len(ups))
	for i, u := range ups {
		params[i] = u.params
	}
	res, err := client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return err
	}
	var (
		ids      []int64
		states   []*string
		attempts []int32
		errs     []*string
		snoozed  []bool
	)
	for i, u := range ups {
		if u.state == "" && !u.snoozed {
			continue
		}
		var st, e *string
		if u.state != "" {
			b, err := json.Marshal(rivertype.AttemptError{At: time.Now().UTC(), Attempt: u.attempt, Error: u.err})
			if err != nil {
				return err
			}
			st, e = &u.state, new(string(b))
		}
		ids, states, attempts, errs, snoozed = append(ids, res[i].Job.ID), append(states, st),
			append(attempts, int32(u.attempt)), append(errs, e), append(snoozed, u.snoozed)
	}
	if len(ids) > 0 {
		// river_job is River's table, outside sqlc's schema. The row is made
		// to look as River leaves a job after the attempt the batch made.
		if _, err := tx.Exec(ctx, `UPDATE river_job AS j SET
				state = COALESCE(u.state::river_job_state, j.state),
				attempt = u.attempt,
				attempted_at = CASE WHEN u.attempt > 0 THEN now() END,
				errors = CASE WHEN u.err IS NOT NULL THEN ARRAY[u.err::jsonb] END,
				finalized_at = CASE WHEN u.state IN ('cancelled', 'discarded') THEN now() END,
				metadata = CASE WHEN u.snoozed THEN j.metadata || '{"snoozes": 1}' ELSE j.metadata END
			FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::bool[]) AS u(id, state, attempt, err, snoozed)
			WHERE j.id = u.id`, ids, states, attempts, errs, snoozed); err != nil {
			return errors.Wrap(err, "set the state of follow-up jobs")
		}
	}
	done, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
	if err != nil {
		return err
	}
	if done.State != rivertype.JobStateCompleted {
		// No longer ours (River's rescuer took it back after its timeout):
		// the batch will run again and record its outcomes then.
		return errors.Newf("batch job %d is %s, not running: its outcomes are not recorded", job.ID, done.State)
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

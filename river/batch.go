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
	"github.com/fraiseql/fraiseql-observers/storage"
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
	batchActionTimeout = observers.ActionTimeoutDefault
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
				slowest = max(slowest, actionTimeout(o.Actions[d.Action]))
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
				out.started, out.err = true, observers.Permanent(cfgErr)
			case errors.Is(l.Err, storage.ErrNotFound):
				out.started, out.err = true, observers.Permanent(errDeleted(l.Err))
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
		typ := out.o.Actions[out.idx].Type()
		release, err := w.limits.acquire(handoff, typ)
		if err != nil {
			continue // no slot in time: handed off
		}
		if ctx.Err() != nil {
			release() // the slot and the shutdown came together: hand it off
			break
		}
		out.started = true
		d := w.delivery(v, out.o, out.idx, out.ev, attempt{n: 1, replay: a.Replay, job: job.ID})
		wg.Go(func() {
			defer release()
			defer func() {
				// River recovers a panicking job; a delivery's goroutine must
				// do so itself, or it would take the process down. Like
				// River, count it as a failed attempt.
				if p := recover(); p != nil {
					out.err = errors.Newf("panic: %v", p)
					w.logger.LogAttrs(ctx, slog.LevelError, "worker: action panicked", append(d.LogAttrs(), slog.String("panic", fmt.Sprint(p)))...)
				}
			}()
			actx, cancel := context.WithTimeout(ctx, actionTimeout(out.o.Actions[out.idx]))
			defer cancel()
			out.err = w.run(actx, d, out.o.Retry.MaxAttempts)
		})
	}
	wg.Wait()
	return b.record(ctx, job, outs)
}

// actionTimeout bounds one delivery of action a in a batch.
func actionTimeout(a observers.Action) time.Duration {
	if t := a.AttemptTimeout(); t > 0 {
		return t + timeoutMargin
	}
	return batchActionTimeout
}

// followUp is a delivery that continues as its own job, and the state that
// job starts in: available (never started), scheduled (refused by an open
// circuit breaker; no attempt spent), or, after the batch's attempt,
// retryable, cancelled or discarded.
type followUp struct {
	args  ActionArgs
	opts  river.InsertOpts
	state string
	err   string // the batch attempt's error; "" when no attempt was made
}

// record inserts a job for every delivery that did not succeed and
// completes the batch job, in one transaction.
func (b *BatchWorker) record(ctx context.Context, job *river.Job[BatchArgs], outs []outcome) error {
	now := time.Now()
	var ups []followUp
	for i := range outs {
		out := &outs[i]
		if out.started && out.err == nil {
			continue
		}
		up := followUp{
			args: ActionArgs{
				Seq: out.seq, Observer: out.observer, Action: out.idx,
				ActionType: job.Args.ActionType, ConfigVersion: job.Args.ConfigVersion, Batch: job.ID,
				Replay: job.Args.Replay,
			},
			opts:  river.InsertOpts{MaxAttempts: observers.RetryMaxAttemptsDefault, Queue: QueueFor(job.Args.ActionType)},
			state: "available",
		}
		if out.ev != nil {
			up.args.EventID, up.args.Entity = out.ev.ID, out.ev.EntityType
		}
		if out.o != nil {
			up.opts.MaxAttempts = out.o.Retry.MaxAttempts
		}
		var snooze *rivertype.JobSnoozeError
		var de *observers.DeliveryError
		switch {
		case !out.started:
			// handed off: its own job runs it from the start
		case errors.As(out.err, &snooze):
			up.opts.ScheduledAt, up.state = now.Add(snooze.Duration), "scheduled"
		case errors.As(out.err, &de) && de.Permanent:
			up.state, up.err = "cancelled", out.err.Error()
		case up.opts.MaxAttempts <= 1:
			up.state, up.err = "discarded", out.err.Error()
		default:
			next := now.Add(out.o.Retry.Delay(1))
			if de != nil && de.RetryAfter > 0 {
				next = later(next, now.Add(min(de.RetryAfter, maxRetryAfter)))
			}
			up.opts.ScheduledAt, up.state, up.err = next, "retryable", out.err.Error()
		}
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
		b.w.metrics.BatchFollowUps.WithLabelValues(job.Args.ActionType, u.state).Inc()
	}
	b.w.logger.DebugContext(ctx, "worker: batch deliveries continue as their own jobs",
		slog.Int64("batch_job", job.ID), slog.Int("deliveries", len(outs)), slog.Int("follow_ups", len(ups)))
	return nil
}

func recordTx(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], job *river.Job[BatchArgs], ups []followUp) error {
	params := make([]river.InsertManyParams, len(ups))
	for i := range ups {
		params[i] = river.InsertManyParams{Args: ups[i].args, InsertOpts: &ups[i].opts}
	}
	res, err := client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return err
	}
	// Rows River inserted as available (or scheduled) are made to look as
	// River leaves a job after the batch's attempt or snooze.
	var ids []int64
	var states []string
	var errs []*string // an AttemptError, nil when no attempt was made
	for i, u := range ups {
		if u.state == "available" {
			continue
		}
		var e *string
		if u.err != "" {
			b, err := json.Marshal(rivertype.AttemptError{At: time.Now().UTC(), Attempt: 1, Error: u.err})
			if err != nil {
				return err
			}
			e = new(string(b))
		}
		ids, states, errs = append(ids, res[i].Job.ID), append(states, u.state), append(errs, e)
	}
	if len(ids) > 0 {
		// river_job is River's table, outside sqlc's schema.
		if _, err := tx.Exec(ctx, `UPDATE river_job AS j SET
				state = u.state::river_job_state,
				attempt = CASE WHEN u.err IS NULL THEN 0 ELSE 1 END,
				attempted_at = CASE WHEN u.err IS NOT NULL THEN now() END,
				errors = CASE WHEN u.err IS NOT NULL THEN ARRAY[u.err::jsonb] END,
				finalized_at = CASE WHEN u.state IN ('cancelled', 'discarded') THEN now() END,
				metadata = CASE WHEN u.state = 'scheduled' THEN j.metadata || '{"snoozes": 1}' ELSE j.metadata END
			FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, state, err)
			WHERE j.id = u.id`, ids, states, errs); err != nil {
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

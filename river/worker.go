package river

import (
	"cmp"
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// timeoutMargin is added to an action's own timeout for River's job timeout,
// so the action reports its timeout itself.
const timeoutMargin = 5 * time.Second

// slotWait is how long a delivery waits for a slot of its action type's
// max_parallelism before its job is snoozed (no attempt spent), and how long
// a batch waits before it hands off the deliveries it has not started.
const slotWait = 5 * time.Second

// slotSnooze is how long a job that found no slot is put back for.
const slotSnooze = time.Second

// maxRetryAfter caps how far a receiver's Retry-After can push a retry.
const maxRetryAfter = time.Hour

// ActionWorker runs one delivery: an action of an observer for one event.
// It knows no action type: each Action runs itself (observers.Action.Run)
// with the process's services (observers.Env).
type ActionWorker struct {
	river.WorkerDefaults[ActionArgs]

	pool    *pgxpool.Pool
	configs *ConfigStore
	env     *observers.Env
	metrics *Metrics
	logger  *slog.Logger
	events  *EventLoader
	limits  *typeLimits // max_parallelism per action type, shared with BatchWorker; nil: none
	jobs    *jobLog     // failed jobs' delivery attributes, for River's lines about them

	// retryAt carries a receiver's Retry-After from Work to NextRetry, which
	// River calls right after Work returns, in the same process.
	retryAt sync.Map // job id → time.Time
}

// WorkerParams configures an ActionWorker.
type WorkerParams struct {
	Pool    *pgxpool.Pool
	Configs *ConfigStore
	// Env holds the services deliveries use (HTTP client, breakers, result
	// cache, stores); nil: none, and actions that need one fail with a hint.
	Env     *observers.Env
	Metrics *Metrics // default: unregistered
	Logger  *slog.Logger
	// Events reads the jobs' events; share it with the Enqueuer so events
	// the listener just read are not read again. nil: a loader of its own.
	Events *EventLoader
	// Concurrency bounds the actions of each type that run at once, in
	// their own jobs and in batch jobs together; nil: River's queue sizes
	// alone.
	Concurrency *observers.ConcurrencyConfig
}

// NewActionWorker builds the worker.
func NewActionWorker(p WorkerParams) *ActionWorker {
	return &ActionWorker{
		pool: p.Pool, configs: p.Configs, env: cmp.Or(p.Env, &observers.Env{}),
		metrics: cmp.Or(p.Metrics, NewMetrics(nil)), logger: cmp.Or(p.Logger, slog.New(slog.DiscardHandler)),
		events: cmp.Or(p.Events, NewEventLoader(p.Pool)), limits: newTypeLimits(p.Concurrency), jobs: newJobLog(),
	}
}

// Timeout gives River the action's own timeout plus a margin.
func (w *ActionWorker) Timeout(job *river.Job[ActionArgs]) time.Duration {
	if a := w.action(job); a != nil && a.AttemptTimeout() > 0 {
		return a.AttemptTimeout() + timeoutMargin + slotWait
	}
	return 0 // River's default (a minute), which also covers slotWait
}

// NextRetry applies the observer's retry policy, or the receiver's
// Retry-After when that is later.
func (w *ActionWorker) NextRetry(job *river.Job[ActionArgs]) time.Time {
	var delay time.Duration
	if v := w.configs.cached(job.Args.ConfigVersion); v != nil {
		if o := v.Config.Observer(job.Args.Observer); o != nil {
			delay = o.Retry.Delay(job.Attempt)
		}
	}
	next := time.Now().Add(delay)
	if t, ok := w.retryAt.LoadAndDelete(job.ID); ok && t.(time.Time).After(next) {
		next = t.(time.Time)
	}
	if delay == 0 && next.Before(time.Now().Add(time.Millisecond)) {
		return time.Time{} // unknown policy: River's default
	}
	return next
}

func (w *ActionWorker) action(job *river.Job[ActionArgs]) observers.Action {
	v := w.configs.lookup(job.Args.ConfigVersion)
	if v == nil {
		return nil
	}
	o, err := v.action(job.Args.Observer, job.Args.Action)
	if err != nil {
		return nil
	}
	return o.Actions[job.Args.Action]
}

// action returns the observer named observer when it has action idx.
func (v *Version) action(observer string, idx int) (*observers.Observer, error) {
	o := v.Config.Observer(observer)
	if o == nil || idx < 0 || idx >= len(o.Actions) {
		return nil, errors.Newf("config version %d has no action %d on observer %q", v.ID, idx, observer)
	}
	return o, nil
}

// errDeleted explains a job whose change is no longer in the log.
func errDeleted(err error) error {
	return errors.Wrap(err, "the change was deleted from the log before delivery")
}

// Work runs the action. Permanent failures cancel the job at once (it lands
// in the dead-letter queue without spending retries); transient ones return
// the error so River retries per the observer's policy.
func (w *ActionWorker) Work(ctx context.Context, job *river.Job[ActionArgs]) error {
	err := w.work(ctx, job)
	if err != nil {
		w.jobs.put(job) // River logs the outcome next, with job_id alone
	}
	return err
}

func (w *ActionWorker) work(ctx context.Context, job *river.Job[ActionArgs]) error {
	a := job.Args
	v, err := w.configs.Get(ctx, a.ConfigVersion)
	if err != nil {
		return err
	}
	o, err := v.action(a.Observer, a.Action)
	if err != nil {
		return river.JobCancel(err)
	}
	ev, err := w.events.Get(ctx, v.Log, a.Seq)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return river.JobCancel(errDeleted(err))
		}
		return err
	}

	// Batch jobs can hold every slot of the type; waiting longer would eat
	// into this attempt's own timeout, so the job goes back instead.
	sctx, cancel := context.WithTimeout(ctx, slotWait)
	release, err := w.limits.acquire(sctx, o.Actions[a.Action].Type())
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return river.JobSnooze(slotSnooze)
	}
	at := attempt{n: job.Attempt, max: job.MaxAttempts, replay: a.Replay, job: job.ID}
	err = w.run(ctx, w.delivery(v, o, a.Action, ev, at), at.max)
	release()
	var snooze *rivertype.JobSnoozeError
	if err == nil || errors.As(err, &snooze) {
		return err // done, or an open circuit breaker: nothing was attempted
	}
	var de *observers.DeliveryError
	if errors.As(err, &de) && de.Permanent {
		return river.JobCancel(err)
	}
	if de != nil && de.RetryAfter > 0 {
		w.retryAt.Store(job.ID, time.Now().Add(min(de.RetryAfter, maxRetryAfter)))
	}
	return err
}

// attempt is which attempt of a delivery run makes: n of max, of a
// delivery that replay enqueued again (0: the listener's), in River job job.
type attempt struct {
	n, max int
	replay int64
	job    int64
}

// delivery is action idx of o for ev, at attempt at.
func (w *ActionWorker) delivery(v *Version, o *observers.Observer, idx int, ev *observers.Event, at attempt) *observers.Delivery {
	return &observers.Delivery{Event: ev, Observer: o, Index: idx, Config: v.Config, Attempt: at.n, Env: w.env, Replay: at.replay, JobID: at.job}
}

// run executes d and counts and logs the outcome. It returns nil on success
// (or when the result cache served it), a River snooze error when the
// action was not attempted (an open circuit breaker), and otherwise the
// failure, an *observers.DeliveryError when the action classified it.
//
// ctx names d (observers.WithDelivery), so every line
// logged while d runs (here, by the action, the breaker, the rate limit,
// the result cache) names the event, observer, action type and attempt.
func (w *ActionWorker) run(ctx context.Context, d *observers.Delivery, maxAttempts int) error {
	ctx = observers.WithDelivery(ctx, d)
	typ := d.Action().Type()
	start := time.Now()
	err := d.Action().Run(ctx, d)
	took := time.Since(start)
	var snooze *observers.SnoozeError
	switch {
	case errors.As(err, &snooze):
		if w.logger.Enabled(ctx, slog.LevelDebug) { // an open breaker snoozes many: no attributes built for nothing
			w.logger.LogAttrs(ctx, slog.LevelDebug, "worker: delivery snoozed; no attempt spent", append(d.LogAttrs(),
				slog.Time("until", snooze.Until), slog.String("reason", snooze.Error()))...)
		}
		return river.JobSnooze(snoozeFor(snooze.Until)) // nothing was attempted
	case errors.Is(err, observers.ErrCached):
		w.audit(d, storage.AuditCached, nil, took, maxAttempts)
		return nil // an identical request succeeded within the cache TTL: nothing was sent
	}
	w.metrics.ActionsExecuted.WithLabelValues(typ, d.Observer.Name).Inc()
	w.metrics.ActionDuration.WithLabelValues(typ).Observe(took.Seconds())
	w.audit(d, storage.AuditSucceeded, err, took, maxAttempts)
	if err == nil {
		if !d.Event.CreatedAt.IsZero() {
			w.metrics.DeliveryLatency.WithLabelValues(typ).Observe(max(time.Since(d.Event.CreatedAt).Seconds(), 0))
		}
		if w.logger.Enabled(ctx, slog.LevelDebug) { // the hot path: no attributes built for nothing
			w.logger.LogAttrs(ctx, slog.LevelDebug, "worker: action delivered", append(d.LogAttrs(), slog.Duration("took", took))...)
		}
		return nil
	}
	class := "transient"
	if observers.IsPermanent(err) {
		class = "permanent"
	}
	w.metrics.ActionsFailed.WithLabelValues(typ, d.Observer.Name).Inc()
	w.metrics.FailedByClass.WithLabelValues(typ, d.Observer.Name, class).Inc()
	attrs := append(d.LogAttrs(), slog.Int("max_attempts", maxAttempts), slog.String("class", class), slog.String("error", err.Error()))
	w.logger.LogAttrs(ctx, slog.LevelWarn, "worker: action failed", attrs...)
	return err
}

// audit records d's outcome when the audit trail is on: status for a
// success (or a cached result); for a failure, failed while River will try
// again, dead when it will not (a permanent failure, or the last attempt).
func (w *ActionWorker) audit(d *observers.Delivery, status storage.AuditStatus, err error, took time.Duration, maxAttempts int) {
	a := d.Env.Audit
	if a == nil {
		return
	}
	if err != nil {
		status = storage.AuditFailed
		if observers.IsPermanent(err) || d.Attempt >= maxAttempts {
			status = storage.AuditDead
		}
	}
	a.Record(d.DeliveryRecord(status, err, took))
}

// breakerSnoozeJitterMax bounds the jitter added to a snooze, so the jobs
// held by an open breaker do not all wake at the instant it may half-open.
const breakerSnoozeJitterMax = time.Second

// snoozeFor is how long a job not attempted is put back for: until it may
// go through, with a jitter. River undoes the attempt's increment on a
// snooze, so no attempt is spent.
func snoozeFor(until time.Time) time.Duration {
	d := max(time.Until(until), 0)
	if j := min(d/10, breakerSnoozeJitterMax); j > 0 {
		d += rand.N(j)
	}
	return d
}

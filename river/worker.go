package river

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
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

// ActionWorker executes one observer action for one event.
type ActionWorker struct {
	river.WorkerDefaults[ActionArgs]

	pool     *pgxpool.Pool
	configs  *ConfigStore
	webhooks *observers.WebhookClient
	mailer   *observers.Mailer
	breakers *observers.BreakerRegistry
	metrics  *observers.Metrics
	logger   *slog.Logger
	getenv   func(string) (string, bool)
	events   *EventLoader
	results  *resultCache // cache.go; nil: no result cache
	limits   *typeLimits  // max_parallelism per action type, shared with BatchWorker; nil: none

	// For cache and search actions (actions_more.go); nil: none.
	redis       goredis.Cmdable
	searchStore storage.Search

	// retryAt carries a receiver's Retry-After from Work to NextRetry, which
	// River calls right after Work returns, in the same process.
	retryAt sync.Map // job id → time.Time
}

// WorkerParams configures an ActionWorker.
type WorkerParams struct {
	Pool     *pgxpool.Pool
	Configs  *ConfigStore
	Webhooks *observers.WebhookClient
	Mailer   *observers.Mailer          // sends email actions; nil: one reading Getenv
	Breakers *observers.BreakerRegistry // circuit breakers per endpoint; nil: none
	Metrics  *observers.Metrics
	Logger   *slog.Logger
	Getenv   func(string) (string, bool) // default os.LookupEnv
	// Cache stores action results when a config version has a cache:
	// block (instrumented: observers.InstrumentCache); nil: never cached.
	Cache storage.Cache
	// Redis is the client of the redis: block, for cache actions; nil: a
	// cache action fails permanently.
	Redis goredis.Cmdable
	// Search stores the documents of search actions; nil: a search action
	// fails permanently.
	Search storage.Search
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
	if p.Mailer == nil {
		p.Mailer = observers.NewMailer(observers.MailerConfig{Getenv: p.Getenv})
	}
	return &ActionWorker{
		pool: p.Pool, configs: p.Configs, webhooks: p.Webhooks, mailer: p.Mailer,
		metrics: p.Metrics, logger: p.Logger, getenv: p.Getenv, breakers: p.Breakers,
		events: cmp.Or(p.Events, NewEventLoader(p.Pool)), results: newResultCache(p.Cache, p.Logger),
		redis: p.Redis, searchStore: p.Search, limits: newTypeLimits(p.Concurrency),
	}
}

// Timeout gives River the action's own timeout plus a margin.
func (w *ActionWorker) Timeout(job *river.Job[ActionArgs]) time.Duration {
	if a := w.action(job); a != nil && a.Webhook != nil && a.Webhook.Timeout > 0 {
		return a.Webhook.Timeout + timeoutMargin + slotWait
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

func (w *ActionWorker) action(job *river.Job[ActionArgs]) *observers.Action {
	v := w.configs.lookup(job.Args.ConfigVersion)
	if v == nil {
		return nil
	}
	o, err := v.action(job.Args.Observer, job.Args.Action)
	if err != nil {
		return nil
	}
	return &o.Actions[job.Args.Action]
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
		if errors.Is(err, observers.ErrNotFound) {
			return river.JobCancel(errDeleted(err))
		}
		return err
	}

	// Batch jobs can hold every slot of the type; waiting longer would eat
	// into this attempt's own timeout, so the job goes back instead.
	sctx, cancel := context.WithTimeout(ctx, slotWait)
	release, err := w.limits.acquire(sctx, o.Actions[a.Action].Type)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return river.JobSnooze(slotSnooze)
	}
	err = w.run(ctx, v, o, a.Action, ev, job.Attempt, job.MaxAttempts)
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

// run executes action idx of o for ev and counts and logs the outcome. It returns nil on
// success (or when the result cache served it), a River snooze error when
// the endpoint's circuit breaker is open, and otherwise the failure, an
// *observers.DeliveryError when the action classified it.
func (w *ActionWorker) run(ctx context.Context, v *Version, o *observers.Observer, idx int, ev *observers.Event, attempt, maxAttempts int) error {
	action := &o.Actions[idx]
	var err error
	start := time.Now()
	switch action.Type {
	case "webhook":
		err = w.webhook(ctx, v, o, idx, ev)
	case observers.ActionTypeSlack: // actions.go
		err = w.slack(ctx, v, o, idx, ev)
	case observers.ActionTypeEmail:
		err = w.email(ctx, v, o, idx, ev)
	case observers.ActionTypeDatabase:
		err = w.database(ctx, o, idx, ev)
	case observers.ActionTypeLog:
		err = w.logAction(ctx, o, idx, ev)
	case observers.ActionTypeCache: // actions_more.go
		err = w.cache(ctx, o, idx, ev)
	case observers.ActionTypeSearch:
		err = w.search(ctx, o, idx, ev)
	default:
		err = permanent(errors.Newf("action type %q is not supported by this version", action.Type))
	}
	var snooze *rivertype.JobSnoozeError
	if errors.As(err, &snooze) {
		return err // an open circuit breaker: nothing was attempted
	}
	if err == errServedFromCache {
		return nil // an identical request succeeded within the cache TTL: nothing was sent
	}
	w.metrics.ActionsExecuted.WithLabelValues(action.Type, o.Name).Inc()
	w.metrics.ActionDuration.WithLabelValues(action.Type).Observe(time.Since(start).Seconds())
	if err == nil {
		return nil
	}
	var de *observers.DeliveryError
	class := "transient"
	if errors.As(err, &de) && de.Permanent {
		class = "permanent"
	}
	w.metrics.ActionsFailed.WithLabelValues(action.Type, o.Name, class).Inc()
	w.logger.WarnContext(ctx, "worker: action failed",
		slog.String("observer", o.Name), slog.String("action_type", action.Type),
		slog.Int64("event_seq", ev.Seq), slog.Int("attempt", attempt),
		slog.Int("max_attempts", maxAttempts), slog.String("class", class),
		slog.String("error", err.Error()))
	return err
}

func (w *ActionWorker) webhook(ctx context.Context, v *Version, o *observers.Observer, idx int, ev *observers.Event) error {
	wa := o.Actions[idx].Webhook
	url, err := wa.ResolvedURL(w.getenv)
	if err != nil {
		return permanent(err)
	}
	secret, err := wa.ResolvedSecret(w.getenv)
	if err != nil {
		return permanent(err)
	}
	var body []byte
	if t := wa.Body(); t != nil {
		body = []byte(t.Render(observers.TemplateData(ev), true))
	} else if body, err = ev.EnvelopeJSON(o.Name); err != nil {
		return permanent(errors.Wrap(err, "encode event envelope"))
	}
	key := w.results.webhookKey(v, o, idx, ev, url, body)
	hit, release := w.results.lookup(ctx, key)
	if hit {
		return errServedFromCache
	}
	defer release()
	permit, err := w.breakerAllow(ctx, url, wa.CircuitBreaker)
	if err != nil {
		return err // a snooze: the endpoint's breaker is open
	}
	resp, err := w.webhooks.Send(ctx, observers.WebhookRequest{
		URL:       url,
		Method:    wa.Method,
		Headers:   wa.Headers,
		Body:      body,
		MessageID: observers.MessageID(ev.ID, o.Name, idx),
		Secret:    secret,
		Signature: wa.Signature,
		Timeout:   wa.Timeout,
	})
	permit.Done(ctx, err)
	if err == nil {
		w.results.save(ctx, v, key, resp.StatusCode)
	}
	return err
}

// permanent marks err as not worth retrying.
func permanent(err error) error {
	return &observers.DeliveryError{Permanent: true, Err: err}
}

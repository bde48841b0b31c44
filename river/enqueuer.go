package river

import (
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
)

// insertTopic is River's insert notification topic (its notifier's
// NotificationTopicInsert, which is internal).
const insertTopic = "river_insert"

// Enqueuer inserts observer jobs with a River client; it implements
// listener.Enqueuer.
type Enqueuer struct {
	client   *river.Client[pgx.Tx]
	perJob   int
	events   *EventLoader            // nil: none kept
	priority int                     // River's job priority; 0: River's default (1)
	audit    observers.AuditRecorder // nil: no audit trail
}

// EnqueuerParams configures an Enqueuer.
type EnqueuerParams struct {
	Client *river.Client[pgx.Tx] // required
	// DeliveriesPerJob is concurrency.deliveries_per_job (1 or less: one
	// job per delivery). Like the rest of the concurrency: block, it
	// changes at a restart.
	DeliveriesPerJob int
	// Events, when not nil, keeps the events of the jobs enqueued for the
	// client's workers (WorkerParams.Events), which then need not read them
	// again.
	Events *EventLoader
	// Audit, when not nil, records every event whose deliveries are
	// enqueued as received (the audit: block).
	Audit observers.AuditRecorder
}

// ReplayPriority is the River priority of replayed jobs: River fetches
// every available job of priority 1 (the listener's) before them, so a
// large replay does not hold up live deliveries.
const ReplayPriority = 2

// NewEnqueuer builds an Enqueuer.
func NewEnqueuer(p EnqueuerParams) *Enqueuer {
	return &Enqueuer{client: p.Client, perJob: p.DeliveriesPerJob, events: p.Events, audit: p.Audit}
}

// NewInserter returns an Enqueuer for a process that inserts jobs but
// works none (`replay`): its River client has no queues, and the `run`
// processes' workers take the jobs. priority is the jobs' River priority
// (0: River's default, 1).
func NewInserter(pool *pgxpool.Pool, deliveriesPerJob, priority int) (*Enqueuer, error) {
	client, err := NewClient(ClientParams{WorkerParams: WorkerParams{Pool: pool}, InsertOnly: true})
	if err != nil {
		return nil, err
	}
	e := NewEnqueuer(EnqueuerParams{Client: client, DeliveriesPerJob: deliveriesPerJob})
	e.priority = priority
	return e, nil
}

// EnqueueTx inserts the jobs of one listener batch in tx with River's
// COPY-based bulk insert: one round trip per batch, not per event. With
// deliveries_per_job above 1, the deliveries of each action type share
// batch jobs of that many; otherwise each is its own job.
func (e *Enqueuer) EnqueueTx(ctx context.Context, tx pgx.Tx, jobs []listener.Job) error {
	var params []river.InsertManyParams
	if e.perJob > 1 {
		params = batchParams(jobs, e.perJob)
	} else {
		params = make([]river.InsertManyParams, len(jobs))
		for i, j := range jobs {
			params[i] = actionParams(j)
		}
	}
	if e.priority > 0 {
		for _, p := range params {
			p.InsertOpts.Priority = e.priority
		}
	}
	if _, err := e.client.InsertManyFastTx(ctx, tx, params); err != nil {
		return errors.Wrap(err, "insert river jobs")
	}
	// River sends an insert notification at most once per fetch cooldown
	// per queue, so jobs inserted soon after another insert can wait for
	// the producers' fetch poll (a second) when no later insert follows.
	// One more notification per queue and transaction costs little: the
	// producers debounce what they receive.
	queues := make([]string, 0, 2)
	for _, p := range params {
		if q := p.InsertOpts.Queue; !slices.Contains(queues, q) {
			queues = append(queues, q)
		}
	}
	payloads := make([]string, len(queues))
	for i, q := range queues {
		payloads[i] = fmt.Sprintf(`{"queue": %q}`, q)
	}
	if err := e.client.Driver().UnwrapExecutor(tx).NotifyMany(ctx, &riverdriver.NotifyManyParams{
		Payload: payloads, Topic: insertTopic,
	}); err != nil {
		return errors.Wrap(err, "notify river producers")
	}
	// Kept even if tx rolls back: change-log rows are immutable, so a kept
	// event is right whenever a job names it.
	e.events.Keep(jobs)
	e.received(jobs)
	return nil
}

// received records each event of jobs as received. Recorded before the
// transaction commits: if it rolls back, the batch is read again and the
// same records (same ids, same content) are recorded again, which the
// audit trail keeps once.
func (e *Enqueuer) received(jobs []listener.Job) {
	if e.audit == nil {
		return
	}
	var last *observers.Event
	for _, j := range jobs {
		if j.Event != last { // an event's jobs are consecutive
			last = j.Event
			e.audit.Record(observers.EventRecord(j.Event, storage.AuditReceived, ""))
		}
	}
}

func actionParams(j listener.Job) river.InsertManyParams {
	typ := j.ActionType()
	return river.InsertManyParams{
		Args: ActionArgs{
			Seq:           j.Event.Seq,
			EventID:       j.Event.ID,
			Entity:        j.Event.EntityType,
			Observer:      j.Observer.Name,
			Action:        j.ActionIndex,
			ActionType:    typ,
			ConfigVersion: j.ConfigVersion,
			Replay:        j.Replay,
		},
		InsertOpts: &river.InsertOpts{MaxAttempts: j.Observer.Retry.MaxAttempts, Queue: QueueFor(typ)},
	}
}

// batchParams groups jobs by (config version, action type, replay) into
// batch jobs of at most perJob deliveries, keeping the listener's event
// order.
func batchParams(jobs []listener.Job, perJob int) []river.InsertManyParams {
	type group struct {
		version int64
		typ     string
		replay  int64
	}
	open := map[group]*BatchArgs{}
	var out []river.InsertManyParams
	flush := func(g group) {
		if a := open[g]; a != nil {
			out = append(out, river.InsertManyParams{
				Args:       *a,
				InsertOpts: &river.InsertOpts{MaxAttempts: BatchMaxAttempts, Queue: QueueFor(g.typ)},
			})
			delete(open, g)
		}
	}
	var order []group // first-seen order, so the output is deterministic
	for _, j := range jobs {
		g := group{j.ConfigVersion, j.ActionType(), j.Replay}
		a := open[g]
		if a == nil {
			a = &BatchArgs{ActionType: g.typ, ConfigVersion: g.version, Replay: g.replay}
			open[g] = a
			order = append(order, g)
		}
		if n := len(a.Deliveries); n > 0 && a.Deliveries[n-1].Observer == j.Observer.Name && a.Deliveries[n-1].Action == j.ActionIndex {
			a.Deliveries[n-1].Seqs = append(a.Deliveries[n-1].Seqs, j.Event.Seq)
		} else if i := slices.IndexFunc(a.Deliveries, func(d BatchDelivery) bool {
			return d.Observer == j.Observer.Name && d.Action == j.ActionIndex
		}); i >= 0 {
			a.Deliveries[i].Seqs = append(a.Deliveries[i].Seqs, j.Event.Seq)
		} else {
			a.Deliveries = append(a.Deliveries, BatchDelivery{Observer: j.Observer.Name, Action: j.ActionIndex, Seqs: []int64{j.Event.Seq}})
		}
		if a.size() >= perJob {
			flush(g)
		}
	}
	for _, g := range order {
		flush(g)
	}
	return out
}

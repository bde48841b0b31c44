package river

import (
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
)

// ActionKind is the River job kind of every observer action.
const ActionKind = "fraiseql_observer_action"

// QueueName is the single queue every action ran on before each action
// type had its own. The client still works it, so jobs enqueued before an
// upgrade are not lost; it is also the prefix of the per-type queues.
const QueueName = "fraiseql_observers"

// LegacyQueueMaxWorkers is the workers of QueueName: it only drains jobs
// left by an older version.
const LegacyQueueMaxWorkers = 10

// QueueFor returns the River queue of an action type:
// fraiseql_observers_<type>, so a slow email server cannot starve webhooks.
func QueueFor(actionType string) string { return QueueName + "_" + actionType }

// ActionArgs is a job's payload. It names the event and the action rather
// than copying them: the event is read from the change log, the action from
// the immutable configuration version that matched it, so a reload never
// changes a job already enqueued and job rows stay small.
type ActionArgs struct {
	Seq           int64  `json:"seq"`            // pk_entity_change_log
	EventID       string `json:"event_id"`       // the change's uuid (idempotency key source)
	Entity        string `json:"entity"`         // object_type, for people reading the queue
	Observer      string `json:"observer"`       // observer name
	Action        int    `json:"action"`         // index into the observer's actions
	ActionType    string `json:"action_type"`    // webhook, ...
	ConfigVersion int64  `json:"config_version"` // observer_config_versions.id
	// Batch is the batch job (BatchArgs) whose first attempt this delivery
	// continues; 0 when the delivery was enqueued as its own job.
	Batch int64 `json:"batch,omitempty"`
}

// Kind implements river.JobArgs.
func (ActionArgs) Kind() string { return ActionKind }

// BatchKind is the River job kind of a batch of deliveries.
const BatchKind = "fraiseql_observer_batch"

// Kinds are the River job kinds of observer deliveries.
var Kinds = []string{ActionKind, BatchKind}

// BatchArgs is the payload of a batch job: the first attempt of up to
// concurrency.deliveries_per_job deliveries of one action type, under one
// configuration version, enqueued by one listener batch. The worker
// (BatchWorker) runs them concurrently; each delivery that does not succeed
// continues as its own ActionArgs job, so retries, snoozes and the
// dead-letter queue stay per delivery.
type BatchArgs struct {
	ActionType    string          `json:"action_type"`
	ConfigVersion int64           `json:"config_version"`
	Deliveries    []BatchDelivery `json:"deliveries"`
}

// BatchDelivery is one action of one observer for some events of a batch.
type BatchDelivery struct {
	Observer string  `json:"observer"`
	Action   int     `json:"action"`
	Seqs     []int64 `json:"seqs"` // pk_entity_change_log of each event, in enqueue order
}

// Kind implements river.JobArgs.
func (BatchArgs) Kind() string { return BatchKind }

// size is the number of deliveries in a.
func (a BatchArgs) size() int {
	n := 0
	for _, d := range a.Deliveries {
		n += len(d.Seqs)
	}
	return n
}

// insertTopic is River's insert notification topic (its notifier's
// NotificationTopicInsert, which is internal).
const insertTopic = "river_insert"

// BatchMaxAttempts is a batch job's own attempts. A batch job fails as a
// whole only when its deliveries' outcomes cannot be recorded (the database
// is unreachable); a delivery's own failures continue as its own job.
const BatchMaxAttempts = 25

// Enqueuer inserts observer jobs with a River client; it implements
// observers.Enqueuer.
type Enqueuer struct {
	client *river.Client[pgx.Tx]
	perJob int
	events *EventLoader // nil: none kept
}

// NewEnqueuer wraps client; deliveriesPerJob is concurrency.deliveries_per_job
// (1 or less: one job per delivery). Like the rest of the concurrency:
// block, it changes at a restart. events, when not nil, keeps the events of
// the jobs enqueued for the client's workers (WorkerParams.Events), which
// then need not read them again.
func NewEnqueuer(client *river.Client[pgx.Tx], deliveriesPerJob int, events *EventLoader) *Enqueuer {
	return &Enqueuer{client: client, perJob: deliveriesPerJob, events: events}
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
	return nil
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
		},
		InsertOpts: &river.InsertOpts{MaxAttempts: j.Observer.Retry.MaxAttempts, Queue: QueueFor(typ)},
	}
}

// batchParams groups jobs by (config version, action type) into batch jobs
// of at most perJob deliveries, keeping the listener's event order.
func batchParams(jobs []listener.Job, perJob int) []river.InsertManyParams {
	type group struct {
		version int64
		typ     string
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
		g := group{j.ConfigVersion, j.ActionType()}
		a := open[g]
		if a == nil {
			a = &BatchArgs{ActionType: g.typ, ConfigVersion: g.version}
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

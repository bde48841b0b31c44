// Package river runs observer actions as River jobs: the job arguments, the
// worker that executes an action, and the client that enqueues and works
// them. It implements observers.Enqueuer.
package river

import (
	"context"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/fraiseql/fraiseql-observers/observers"
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
}

// Kind implements river.JobArgs.
func (ActionArgs) Kind() string { return ActionKind }

// Enqueuer inserts observer jobs with a River client; it implements
// observers.Enqueuer.
type Enqueuer struct {
	client *river.Client[pgx.Tx]
}

// NewEnqueuer wraps client.
func NewEnqueuer(client *river.Client[pgx.Tx]) *Enqueuer { return &Enqueuer{client: client} }

// EnqueueTx inserts one job per observers.Job in tx with River's COPY-based
// bulk insert: one round trip per batch, not per event.
func (e *Enqueuer) EnqueueTx(ctx context.Context, tx pgx.Tx, jobs []observers.Job) error {
	params := make([]river.InsertManyParams, len(jobs))
	for i, j := range jobs {
		typ := j.Observer.Actions[j.ActionIndex].Type
		params[i] = river.InsertManyParams{
			Args: ActionArgs{
				Seq:           j.Event.Seq,
				EventID:       j.Event.ID,
				Entity:        j.Event.EntityType,
				Observer:      j.Observer.Name,
				Action:        j.ActionIndex,
				ActionType:    typ,
				ConfigVersion: j.ConfigVersion,
			},
			InsertOpts: &river.InsertOpts{
				MaxAttempts: j.Observer.Retry.MaxAttempts,
				Queue:       QueueFor(typ),
			},
		}
	}
	if _, err := e.client.InsertManyFastTx(ctx, tx, params); err != nil {
		return errors.Wrap(err, "insert river jobs")
	}
	return nil
}

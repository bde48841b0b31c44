package river

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
	// Replay is the replay that enqueued the delivery again
	// (observer_replays.id); 0 for the listener's.
	Replay int64 `json:"replay,omitempty"`
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
	// Replay is the replay that enqueued the deliveries again; 0 for the
	// listener's.
	Replay int64 `json:"replay,omitempty"`
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

// BatchMaxAttempts is a batch job's own attempts. A batch job fails as a
// whole only when its deliveries' outcomes cannot be recorded (the database
// is unreachable); a delivery's own failures continue as its own job.
const BatchMaxAttempts = 25

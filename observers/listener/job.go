package listener

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Job is one unit of delivery: an action of an observer for one event, under
// the configuration version that matched it.
type Job struct {
	Table         string // the change log the event was read from (ChangeLog.Table)
	Event         *observers.Event
	Observer      *observers.Observer
	ActionIndex   int
	ConfigVersion int64
	Replay        int64 // the replay that enqueued it again (observer_replays.id); 0 for the listener
}

// ActionType is the type of the job's action.
func (j Job) ActionType() string { return j.Observer.Actions[j.ActionIndex].Type() }

// Enqueuer inserts jobs inside the caller's transaction, the one that also
// advances the checkpoint. The river package implements it.
type Enqueuer interface {
	EnqueueTx(ctx context.Context, tx pgx.Tx, jobs []Job) error
}

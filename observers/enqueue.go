package observers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// Job is one unit of delivery: an action of an observer for one event, under
// the configuration version that matched it.
type Job struct {
	Table         string // the change log the event was read from (ChangeLog.Table)
	Event         *Event
	Observer      *Observer
	ActionIndex   int
	ConfigVersion int64
}

// Enqueuer inserts jobs inside the caller's transaction, the one that also
// advances the checkpoint. The river package implements it.
type Enqueuer interface {
	EnqueueTx(ctx context.Context, tx pgx.Tx, jobs []Job) error
}

// MessageID is the idempotency key of one delivery: the same for every
// attempt of (event, observer, action), different for any other. Webhooks send
// it as `webhook-id`.
func MessageID(eventID, observer string, actionIndex int) string {
	h := sha256.Sum256([]byte(eventID + "\x00" + observer + "\x00" + strconv.Itoa(actionIndex)))
	return "msg_" + hex.EncodeToString(h[:16])
}

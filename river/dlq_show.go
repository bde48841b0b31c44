package river

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// ErrNoDelivery is returned by Show for an id that names no delivery.
var ErrNoDelivery = errors.New("no such delivery")

// DeadDetail is everything about one delivery, as `dlq show` shows it.
type DeadDetail struct {
	DeadDelivery
	// Dead reports whether the delivery is in the dead-letter queue; Note
	// says why not (retried, removed, continued as another job).
	Dead      bool
	Note      string
	CreatedAt time.Time
	// Attempts are the errors River recorded, one per failed attempt, in
	// order; a batch job's are the batch's own.
	Attempts []rivertype.AttemptError
	// Retries are the DLQ's retries of the job (metadata dlq_retries).
	Retries []DLQRetry
	// Event is the change, from the change log of the configuration
	// version; nil with EventErr when it cannot be read.
	Event    *observers.Event
	EventErr error
	// ObserverConfig is the observer as configured in the version;
	// nil with ConfigErr when the version cannot be read or has no such
	// action.
	ObserverConfig *observers.Observer
	ConfigErr      error
}

// DLQRetry is one retry by the DLQ, noted in the job's metadata.
type DLQRetry struct {
	At       time.Time `json:"at"`
	State    string    `json:"state,omitempty"`    // the job's state before
	Attempts int       `json:"attempts,omitempty"` // attempts made before
	Errors   int       `json:"errors,omitempty"`   // errors recorded before
	From     string    `json:"from,omitempty"`     // the batch job's delivery this job continues
}

// ActionConfig returns the delivery's action as configured; nil when
// unknown.
func (d *DeadDetail) ActionConfig() observers.Action {
	if d.ObserverConfig == nil || d.Action < 0 || d.Action >= len(d.ObserverConfig.Actions) {
		return nil
	}
	return d.ObserverConfig.Actions[d.Action]
}

// Show reads delivery id, dead or not; ErrNoDelivery when no observer job
// has it.
func (q *DLQ) Show(ctx context.Context, id DeliveryID) (*DeadDetail, error) {
	var j jobRow
	var attempt, maxAttempts int
	var errs []byte
	var created time.Time
	var finalized *time.Time
	err := q.pool.QueryRow(ctx, `SELECT id, kind, state::text, queue, args, metadata, attempt, max_attempts,
		coalesce(to_jsonb(errors), '[]'::jsonb), created_at, finalized_at FROM river_job WHERE id = $1`, id.Job).
		Scan(&j.id, &j.kind, &j.state, &j.queue, &j.args, &j.metadata, &attempt, &maxAttempts, &errs, &created, &finalized)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errors.Wrapf(ErrNoDelivery, "no job %d", id.Job)
	}
	if err != nil {
		return nil, errors.Wrapf(err, "dlq: read job %d", id.Job)
	}
	d := &DeadDetail{CreatedAt: created}
	d.ID, d.JobID, d.State, d.Attempt, d.MaxAttempts = id.String(), j.id, j.state, attempt, maxAttempts
	if finalized != nil {
		d.DiedAt = *finalized
	}
	if err := q.showJob(ctx, d, j, id); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(errs, &d.Attempts); err != nil {
		return nil, errors.Wrapf(err, "dlq: read the errors of job %d", id.Job)
	}
	if n := len(d.Attempts); n > 0 {
		d.LastError = d.Attempts[n-1].Error
	}
	var meta struct {
		Retries []DLQRetry `json:"dlq_retries"`
	}
	_ = json.Unmarshal(j.metadata, &meta)
	d.Retries = meta.Retries
	q.showEvent(ctx, d)
	return d, nil
}

// showJob fills in what the job's args say, and whether it is dead.
func (q *DLQ) showJob(ctx context.Context, d *DeadDetail, j jobRow, id DeliveryID) error {
	switch {
	case j.kind == ActionKind && !id.InBatch():
		var a ActionArgs
		if err := json.Unmarshal(j.args, &a); err != nil {
			return errors.Wrapf(err, "dlq: read the args of job %d", j.id)
		}
		d.Seq, d.EventID, d.EntityType, d.Observer, d.Action = a.Seq, a.EventID, a.Entity, a.Observer, a.Action
		d.ActionType, d.ConfigVersion, d.BatchJobID = a.ActionType, a.ConfigVersion, a.Batch
		d.Dead = isDead(j.state)
		return nil
	case j.kind == BatchKind && id.InBatch():
		b := newBatchJob(j)
		if id.Index >= len(b.items) {
			return errors.Wrapf(ErrNoDelivery, "%s", batchHint(j))
		}
		it := b.items[id.Index]
		d.Seq, d.Observer, d.Action = it.seq, it.observer, it.action
		d.ActionType, d.ConfigVersion, d.BatchJobID = b.args.ActionType, b.args.ConfigVersion, j.id
		return q.batchNote(ctx, d, b, id)
	case j.kind == BatchKind:
		return errors.Wrapf(ErrNoDelivery, "%s", batchHint(j))
	case j.kind == ActionKind:
		return errors.Wrapf(ErrNoDelivery, "job %d is an action job, not a batch job: name it as %d", j.id, j.id)
	}
	return errors.Wrapf(ErrNoDelivery, "job %d is not an observer delivery (kind %s)", j.id, j.kind)
}

// batchNote says whether delivery id of batch job b is dead, and if not, why.
func (q *DLQ) batchNote(ctx context.Context, d *DeadDetail, b *batchJob, id DeliveryID) error {
	if m, ok := b.marks[strconv.Itoa(id.Index)]; ok {
		if m.RemovedAt != nil {
			d.Note = "removed from the dead-letter queue at " + m.RemovedAt.UTC().Format(time.RFC3339)
		} else {
			d.Note = fmt.Sprintf("retried from the dead-letter queue at %s as job %d", m.RetriedAt.UTC().Format(time.RFC3339), m.Job)
		}
		return nil
	}
	follows, err := b.followUps(ctx, q.pool)
	if err != nil {
		return err
	}
	if f, ok := follows[b.items[id.Index]]; ok {
		d.Note = fmt.Sprintf("continues as job %d (%s)", f.id, f.state)
		return nil
	}
	d.Dead = isDead(b.row.state)
	return nil
}

// showEvent reads the change and the observer from the configuration
// version.
func (q *DLQ) showEvent(ctx context.Context, d *DeadDetail) {
	defer func() {
		if d.EventID != "" {
			d.WebhookID = observers.MessageID(d.EventID, d.Observer, d.Action)
		}
	}()
	v, err := q.configs.Get(ctx, d.ConfigVersion)
	if err != nil {
		d.ConfigErr, d.EventErr = err, err
		return
	}
	if d.ObserverConfig, err = v.action(d.Observer, d.Action); err != nil {
		d.ConfigErr = err
	}
	d.Event, d.EventErr = v.Log.Get(ctx, q.pool, d.Seq)
	if errors.Is(d.EventErr, storage.ErrNotFound) {
		d.EventErr = errors.Wrapf(d.EventErr, "the change is no longer in %s", v.Log.Table())
	}
	if d.Event != nil {
		d.EventID, d.EntityType, d.EntityID = d.Event.ID, d.Event.EntityType, d.Event.EntityID
	}
}

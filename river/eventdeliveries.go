package river

import (
	"context"
	"encoding/json"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// EventDelivery is one row of the observer_deliveries view: one action of
// one observer for one change, in whichever River job holds it now (the
// batch job that made its first attempt, or its own job after that).
type EventDelivery struct {
	JobID         int64  `json:"job_id"`
	BatchJobID    int64  `json:"batch_job_id,omitempty"` // the batch this job continues; 0 when none
	Seq           int64  `json:"seq"`
	Observer      string `json:"observer"`
	Action        int    `json:"action"`
	ActionType    string `json:"action_type"`
	ConfigVersion int64  `json:"config_version"`
	// InBatch: the job is the batch job that made the delivery's first
	// attempt (and it needed no other); its Attempt and MaxAttempts are the
	// batch job's.
	InBatch     bool           `json:"in_batch"`
	State       string         `json:"state"` // River's job state: available, running, completed, retryable, cancelled, discarded, …
	Attempt     int            `json:"attempt"`
	MaxAttempts int            `json:"max_attempts"`
	Snoozes     int            `json:"snoozes"` // times put back without an attempt (an open breaker, no free slot)
	Errors      []AttemptError `json:"errors"`
	CreatedAt   time.Time      `json:"created_at"`
	AttemptedAt *time.Time     `json:"attempted_at"`
	ScheduledAt time.Time      `json:"scheduled_at"`
	FinalizedAt *time.Time     `json:"finalized_at"`
}

// AttemptError is one failed attempt as River records it.
type AttemptError struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
}

// Dead reports whether the delivery is in the dead-letter queue.
func (d EventDelivery) Dead() bool { return d.State == "cancelled" || d.State == "discarded" }

// eventDeliveryJobsSQL finds the jobs that hold a delivery of one of the
// changes $1 through River's GIN index on args: an action job names its
// change (seq), a batch job lists it in one of its deliveries' seqs.
const eventDeliveryJobsSQL = `SELECT DISTINCT j.id, j.kind = '` + BatchKind + `'
FROM unnest($1::bigint[]) AS s(seq)
CROSS JOIN LATERAL (
  SELECT id, kind FROM river_job
  WHERE kind = '` + ActionKind + `' AND args @> jsonb_build_object('seq', s.seq)
  UNION ALL
  SELECT id, kind FROM river_job
  WHERE kind = '` + BatchKind + `'
    AND args @> jsonb_build_object('deliveries', jsonb_build_array(jsonb_build_object('seqs', jsonb_build_array(s.seq))))
) j`

// eventDeliveriesSQL reads the view for jobs $2 and changes $1; the filter
// on job_id reaches both branches of the view, so only those jobs are read.
const eventDeliveriesSQL = `SELECT job_id, COALESCE(batch_job_id, 0), seq, observer, action, action_type, config_version,
  state, attempt, max_attempts, COALESCE((metadata->>'snoozes')::int, 0), COALESCE(to_jsonb(errors), '[]')::text,
  created_at, attempted_at, scheduled_at, finalized_at
FROM observer_deliveries
WHERE job_id = ANY($2::bigint[]) AND seq = ANY($1::bigint[])
ORDER BY seq, observer, action, created_at, job_id`

// EventDeliveries returns the deliveries of the changes seqs
// (pk_entity_change_log) that River still holds, ordered by change,
// observer, action and age. Completed jobs are deleted by River after
// CompletedRetentionDefault and dead ones after DeadLetterRetentionDefault:
// an older change has none. Jobs do not name their change log, so with
// several change logs the caller keeps those whose configuration version
// reads the table it asked about.
func EventDeliveries(ctx context.Context, q observers.Querier, seqs []int64) ([]EventDelivery, error) {
	fail := func(err error) ([]EventDelivery, error) { return nil, errors.Wrap(err, "read deliveries") }
	if len(seqs) == 0 {
		return nil, nil
	}
	var ids []int64
	batches := map[int64]bool{}
	rows, err := q.Query(ctx, eventDeliveryJobsSQL, seqs)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var id int64
		var batch bool
		if err := rows.Scan(&id, &batch); err != nil {
			rows.Close()
			return fail(err)
		}
		ids, batches[id] = append(ids, id), batch
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err = q.Query(ctx, eventDeliveriesSQL, seqs, ids)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []EventDelivery
	for rows.Next() {
		var d EventDelivery
		var errs string
		if err := rows.Scan(&d.JobID, &d.BatchJobID, &d.Seq, &d.Observer, &d.Action, &d.ActionType, &d.ConfigVersion,
			&d.State, &d.Attempt, &d.MaxAttempts, &d.Snoozes, &errs,
			&d.CreatedAt, &d.AttemptedAt, &d.ScheduledAt, &d.FinalizedAt); err != nil {
			return fail(err)
		}
		if err := json.Unmarshal([]byte(errs), &d.Errors); err != nil {
			return fail(errors.Wrapf(err, "job %d: errors", d.JobID))
		}
		d.InBatch = batches[d.JobID]
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}

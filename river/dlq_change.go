package river

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver"
)

// Results of one delivery in a retry or a remove (Outcome.Result).
const (
	Retried     = "retried"
	Removed     = "removed"
	Skipped     = "skipped"
	Failed      = "failed"
	WouldRetry  = "would_retry"  // dry run
	WouldRemove = "would_remove" // dry run
)

// Outcome is what a retry or a remove did with one delivery.
type Outcome struct {
	ID     string `json:"id"`
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"` // why skipped or failed
	// JobID is the job that runs a retried delivery: the same action job,
	// or the new one that continues a batch job's delivery.
	JobID int64 `json:"job_id,omitempty"`
	// NotFound is set when no job has the id.
	NotFound bool `json:"-"`
}

// Summary counts what a retry or a remove did.
type Summary struct {
	Done    int // retried or removed; with a dry run, would be
	Skipped int
	Failed  int
	// Outcomes: every delivery for Retry and Remove; the skipped and failed
	// ones (at most SummaryOutcomesMax) for RetryAll and RemoveAll.
	Outcomes []Outcome
}

// SummaryOutcomesMax bounds the outcomes RetryAll and RemoveAll keep.
const SummaryOutcomesMax = 100

func (s *Summary) add(outs []Outcome, all bool) {
	for _, o := range outs {
		switch o.Result {
		case Skipped:
			s.Skipped++
		case Failed:
			s.Failed++
		default:
			s.Done++
			if !all {
				continue
			}
		}
		if all || len(s.Outcomes) < SummaryOutcomesMax {
			s.Outcomes = append(s.Outcomes, o)
		}
	}
}

// op is a change to dead deliveries: retry or remove, perhaps a dry run.
type op struct {
	remove bool
	dryRun bool
}

func (o op) done() string {
	switch {
	case o.remove && o.dryRun:
		return WouldRemove
	case o.remove:
		return Removed
	case o.dryRun:
		return WouldRetry
	}
	return Retried
}

// Retry puts the dead deliveries ids back, each with the full attempts of
// its observer's retry policy and the same webhook-id, in one transaction:
// a dead action job is made available again in place (its errors kept, a
// note added to its metadata's dlq_retries); a delivery of a dead batch job
// continues as a new action job, and the batch job marks it retried. River's
// producers are notified, so the jobs start at once. A delivery that is not
// dead is skipped with the reason. With dryRun nothing changes.
func (q *DLQ) Retry(ctx context.Context, ids []DeliveryID, dryRun bool) (*Summary, error) {
	return q.change(ctx, ids, op{dryRun: dryRun})
}

// Remove deletes the dead deliveries ids in one transaction: a dead action
// job is deleted; a delivery of a dead batch job is marked removed in the
// batch job's metadata (its other deliveries stay), and the batch job is
// deleted once every delivery in it is marked. A delivery that is not dead
// is skipped with the reason. With dryRun nothing changes.
func (q *DLQ) Remove(ctx context.Context, ids []DeliveryID, dryRun bool) (*Summary, error) {
	return q.change(ctx, ids, op{remove: true, dryRun: dryRun})
}

// dlqChunkTimeout bounds one transaction of a retry or a remove.
const dlqChunkTimeout = time.Minute

// chunkTx applies o to ids in one transaction.
func (q *DLQ) chunkTx(ctx context.Context, ids []DeliveryID, o op) ([]Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, dlqChunkTimeout)
	defer cancel()
	var outs []Outcome
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		var err error
		outs, err = q.chunk(ctx, tx, ids, o)
		return err
	})
	return outs, err
}

func (q *DLQ) change(ctx context.Context, ids []DeliveryID, o op) (*Summary, error) {
	outs, err := q.chunkTx(ctx, ids, o)
	if err != nil {
		return nil, err
	}
	// In the order asked.
	byID := map[string]Outcome{}
	for _, out := range outs {
		byID[out.ID] = out
	}
	s := &Summary{}
	for _, id := range ids {
		s.add([]Outcome{byID[id.String()]}, true)
	}
	return s, nil
}

// RetryAll retries every dead delivery matching f, as Retry does, in
// transactions of ChunkSize deliveries, oldest job first; progress (if not
// nil) is told how many each transaction handled, after total is known.
// Deliveries that die while it runs are left for the next run; a run that
// stops half way leaves the rest dead, so running it again finishes.
func (q *DLQ) RetryAll(ctx context.Context, f DeadFilter, dryRun bool, progress func(total, done int)) (*Summary, error) {
	return q.changeAll(ctx, f, op{dryRun: dryRun}, progress)
}

// RemoveAll removes every dead delivery matching f, as Remove does, in
// transactions of ChunkSize deliveries.
func (q *DLQ) RemoveAll(ctx context.Context, f DeadFilter, dryRun bool, progress func(total, done int)) (*Summary, error) {
	return q.changeAll(ctx, f, op{remove: true, dryRun: dryRun}, progress)
}

func (q *DLQ) changeAll(ctx context.Context, f DeadFilter, o op, progress func(total, done int)) (*Summary, error) {
	ids, err := q.deadIDs(ctx, f)
	if err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(int, int) {}
	}
	s := &Summary{}
	progress(len(ids), 0)
	if o.dryRun {
		s.Done = len(ids)
		progress(len(ids), len(ids))
		return s, nil
	}
	size := max(q.ChunkSize, 1)
	for chunk := range slices.Chunk(ids, size) {
		outs, err := q.chunkTx(ctx, chunk, o)
		if err != nil {
			s.Failed += len(chunk)
			return s, errors.WithHint(err, "what was done is kept; run the command again to go on")
		}
		s.add(outs, false)
		progress(len(ids), len(chunk))
	}
	return s, nil
}

// deadIDs lists the dead deliveries matching f, oldest job first.
func (q *DLQ) deadIDs(ctx context.Context, f DeadFilter) ([]DeliveryID, error) {
	var args []any
	cond, err := q.where(ctx, f, &args)
	if err != nil {
		return nil, err
	}
	rows, err := q.pool.Query(ctx, `SELECT d.job_id, d.idx FROM `+deadSQL+` WHERE `+cond+` ORDER BY d.job_id, d.idx`, args...)
	if err != nil {
		return nil, errors.Wrap(err, "dlq: select dead deliveries")
	}
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeliveryID, error) {
		var id DeliveryID
		return id, r.Scan(&id.Job, &id.Index)
	})
	return ids, errors.Wrap(err, "dlq: select dead deliveries")
}

// chunk applies o to ids in tx and notifies River's producers of the
// queues it made jobs available on.
func (q *DLQ) chunk(ctx context.Context, tx pgx.Tx, ids []DeliveryID, o op) ([]Outcome, error) {
	var jobs []int64
	var inBatch []DeliveryID
	for _, id := range ids {
		if id.InBatch() {
			inBatch = append(inBatch, id)
		} else {
			jobs = append(jobs, id.Job)
		}
	}
	var outs []Outcome
	var queues []string
	if len(jobs) > 0 {
		o1, q1, err := q.actionChunk(ctx, tx, jobs, o)
		if err != nil {
			return nil, err
		}
		outs, queues = append(outs, o1...), append(queues, q1...)
	}
	if len(inBatch) > 0 {
		o2, q2, err := q.batchChunk(ctx, tx, inBatch, o)
		if err != nil {
			return nil, err
		}
		outs, queues = append(outs, o2...), append(queues, q2...)
	}
	return outs, q.notify(ctx, tx, queues)
}

// notify tells River's producers that queues have jobs available, as River
// does after an insert (Enqueuer.EnqueueTx explains the topic).
func (q *DLQ) notify(ctx context.Context, tx pgx.Tx, queues []string) error {
	slices.Sort(queues)
	queues = slices.Compact(queues)
	if len(queues) == 0 {
		return nil
	}
	payloads := make([]string, len(queues))
	for i, name := range queues {
		payloads[i] = fmt.Sprintf(`{"queue": %q}`, name)
	}
	err := q.driver.UnwrapExecutor(tx).NotifyMany(ctx, &riverdriver.NotifyManyParams{Payload: payloads, Topic: insertTopic})
	return errors.Wrap(err, "dlq: notify river producers")
}

// jobRow is a locked river_job row.
type jobRow struct {
	id       int64
	kind     string
	state    string
	queue    string
	args     []byte
	metadata []byte
}

// lockJobs locks the jobs ids (in id order, so concurrent runs do not
// deadlock) and returns those that exist.
func lockJobs(ctx context.Context, tx pgx.Tx, ids []int64) (map[int64]jobRow, error) {
	rows, err := tx.Query(ctx, `SELECT id, kind, state::text, queue, args, metadata FROM river_job
		WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return nil, errors.Wrap(err, "dlq: lock jobs")
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (jobRow, error) {
		var j jobRow
		return j, r.Scan(&j.id, &j.kind, &j.state, &j.queue, &j.args, &j.metadata)
	})
	if err != nil {
		return nil, errors.Wrap(err, "dlq: lock jobs")
	}
	out := make(map[int64]jobRow, len(got))
	for _, j := range got {
		out[j.id] = j
	}
	return out, nil
}

func isDead(state string) bool { return slices.Contains(DeadStates, state) }

// maxAttempts is the attempts a retried delivery gets: its observer's retry
// policy in the configuration version it was matched under, which its job
// runs with.
func (q *DLQ) maxAttempts(ctx context.Context, version int64, observer string, action int) (int, error) {
	v, err := q.configs.Get(ctx, version)
	if err != nil {
		return 0, err
	}
	o, err := v.action(observer, action)
	if err != nil {
		return 0, err
	}
	return o.Retry.MaxAttempts, nil
}

// actionChunk retries or removes the action jobs ids.
func (q *DLQ) actionChunk(ctx context.Context, tx pgx.Tx, ids []int64, o op) ([]Outcome, []string, error) {
	rows, err := lockJobs(ctx, tx, ids)
	if err != nil {
		return nil, nil, err
	}
	outs := make([]Outcome, 0, len(ids))
	var change []int64
	var attempts []int32
	for _, id := range ids {
		out := Outcome{ID: DeliveryID{Job: id, Index: -1}.String(), Result: o.done(), JobID: id}
		j, ok := rows[id]
		switch {
		case !ok:
			out.Result, out.Reason, out.NotFound, out.JobID = Failed, fmt.Sprintf("no job %d", id), true, 0
		case j.kind == BatchKind:
			out.Result, out.Reason = Failed, batchHint(j)
		case j.kind != ActionKind:
			out.Result, out.Reason = Failed, fmt.Sprintf("job %d is not an observer delivery (kind %s)", id, j.kind)
		case !isDead(j.state):
			out.Result, out.Reason = Skipped, "not dead: it is "+j.state
		}
		if out.Result == o.done() && !o.remove {
			var a ActionArgs
			n, err := 0, json.Unmarshal(j.args, &a)
			if err == nil {
				n, err = q.maxAttempts(ctx, a.ConfigVersion, a.Observer, a.Action)
			}
			if err != nil {
				out.Result, out.Reason = Failed, err.Error()
			} else {
				attempts = append(attempts, int32(n))
			}
		}
		if out.Result == o.done() {
			change = append(change, id)
		}
		outs = append(outs, out)
	}
	if o.dryRun || len(change) == 0 {
		return outs, nil, nil
	}
	if o.remove {
		_, err := tx.Exec(ctx, removeActionsSQL, change)
		return outs, nil, errors.Wrap(err, "dlq: remove jobs")
	}
	queues, err := retryActions(ctx, tx, change, attempts)
	return outs, queues, err
}

// retryActionsSQL makes dead action jobs available again with fresh
// attempts ($2), keeping their errors and noting the retry in metadata.
const retryActionsSQL = `UPDATE river_job j SET state = 'available', attempt = 0, max_attempts = u.max_attempts,
	scheduled_at = now(), finalized_at = NULL,
	metadata = (j.metadata - 'cancel_attempted_at') || jsonb_build_object('dlq_retries',
		coalesce(j.metadata->'dlq_retries', '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
			'at', now(), 'state', j.state, 'attempts', j.attempt, 'errors', coalesce(cardinality(j.errors), 0))))
FROM unnest($1::bigint[], $2::int[]) AS u(id, max_attempts)
WHERE j.id = u.id AND j.state IN ('cancelled', 'discarded')
RETURNING j.queue`

// removeActionsSQL deletes dead action jobs; the batch job whose delivery
// one continued (if it is still there) marks that delivery removed, so it
// does not show again as the batch job's.
const removeActionsSQL = `WITH del AS (
	DELETE FROM river_job WHERE id = ANY($1::bigint[]) AND kind = 'fraiseql_observer_action'
		AND state IN ('cancelled', 'discarded')
	RETURNING args
), marks AS (
	SELECT b.id, jsonb_object_agg(x.n::text, jsonb_build_object('removed_at', now())) AS m
	FROM del JOIN river_job b ON b.id = (del.args->>'batch')::bigint AND b.kind = 'fraiseql_observer_batch'
	CROSS JOIN LATERAL observer_batch_deliveries(b.args) AS x
	WHERE x.seq = (del.args->>'seq')::bigint AND x.observer = del.args->>'observer' AND x.action = (del.args->>'action')::int
	GROUP BY b.id
)
UPDATE river_job b SET metadata = jsonb_set(b.metadata, '{dlq_deliveries}', coalesce(b.metadata->'dlq_deliveries', '{}'::jsonb) || marks.m)
FROM marks WHERE b.id = marks.id`

// retryActions runs retryActionsSQL and returns the jobs' queues.
func retryActions(ctx context.Context, tx pgx.Tx, ids []int64, attempts []int32) ([]string, error) {
	rows, err := tx.Query(ctx, retryActionsSQL, ids, attempts)
	if err != nil {
		return nil, errors.Wrap(err, "dlq: retry jobs")
	}
	queues, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return queues, errors.Wrap(err, "dlq: retry jobs")
}

// batchHint explains that a batch job is named by its deliveries.
func batchHint(j jobRow) string {
	var a BatchArgs
	_ = json.Unmarshal(j.args, &a)
	n := a.size()
	if n == 0 {
		return fmt.Sprintf("job %d is a batch job with no deliveries", j.id)
	}
	return fmt.Sprintf("job %d is a batch job of %d deliveries: name one as %d.0 to %d.%d", j.id, n, j.id, j.id, n-1)
}

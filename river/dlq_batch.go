package river

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
)

// batchItem is one delivery of a batch job.
type batchItem struct {
	observer string
	action   int
	seq      int64
}

// items lists a's deliveries in the DLQ's order: its deliveries × seqs, as
// observer_batch_deliveries numbers them.
func (a BatchArgs) items() []batchItem {
	out := make([]batchItem, 0, a.size())
	for _, d := range a.Deliveries {
		for _, seq := range d.Seqs {
			out = append(out, batchItem{d.Observer, d.Action, seq})
		}
	}
	return out
}

// batchMark is what the DLQ did with one delivery of a dead batch job, kept
// in the job's metadata under dlq_deliveries (migration 00015).
type batchMark struct {
	RetriedAt *time.Time `json:"retried_at,omitempty"`
	Job       int64      `json:"job,omitempty"` // the action job that continues it
	RemovedAt *time.Time `json:"removed_at,omitempty"`
}

// batchJob is a locked batch job and what the DLQ knows of it.
type batchJob struct {
	row     jobRow
	args    BatchArgs
	items   []batchItem
	marks   map[string]batchMark
	follows map[batchItem]followUpJob // nil until loaded
}

type followUpJob struct {
	id    int64
	state string
}

func newBatchJob(j jobRow) *batchJob {
	b := &batchJob{row: j}
	_ = json.Unmarshal(j.args, &b.args)
	b.items = b.args.items()
	var meta struct {
		Marks map[string]batchMark `json:"dlq_deliveries"`
	}
	_ = json.Unmarshal(j.metadata, &meta)
	b.marks = meta.Marks
	return b
}

// followUps reads the action jobs that continue b's deliveries.
func (b *batchJob) followUps(ctx context.Context, tx observers.Querier) (map[batchItem]followUpJob, error) {
	if b.follows != nil {
		return b.follows, nil
	}
	rows, err := tx.Query(ctx, `SELECT id, state::text, (args->>'seq')::bigint, args->>'observer', (args->>'action')::int
		FROM river_job WHERE kind = $2 AND args @> jsonb_build_object('batch', $1::bigint)`, b.row.id, ActionKind)
	if err != nil {
		return nil, errors.Wrap(err, "dlq: read follow-up jobs")
	}
	defer rows.Close()
	b.follows = map[batchItem]followUpJob{}
	for rows.Next() {
		var f followUpJob
		var it batchItem
		if err := rows.Scan(&f.id, &f.state, &it.seq, &it.observer, &it.action); err != nil {
			return nil, errors.Wrap(err, "dlq: read follow-up jobs")
		}
		b.follows[it] = f
	}
	return b.follows, errors.Wrap(rows.Err(), "dlq: read follow-up jobs")
}

// check says why delivery id of batch job b (nil: no such job) cannot be
// changed; "" when it is dead and can.
func (b *batchJob) check(ctx context.Context, tx pgx.Tx, id DeliveryID) (result, reason string, err error) {
	switch {
	case b == nil:
		return Failed, fmt.Sprintf("no job %d", id.Job), nil
	case b.row.kind == ActionKind:
		return Failed, fmt.Sprintf("job %d is an action job, not a batch job: name it as %d", id.Job, id.Job), nil
	case b.row.kind != BatchKind:
		return Failed, fmt.Sprintf("job %d is not an observer delivery (kind %s)", id.Job, b.row.kind), nil
	case id.Index >= len(b.items):
		return Failed, batchHint(b.row), nil
	case !isDead(b.row.state):
		return Skipped, fmt.Sprintf("not dead: batch job %d is %s", id.Job, b.row.state), nil
	}
	if m, ok := b.marks[strconv.Itoa(id.Index)]; ok {
		if m.RemovedAt != nil {
			return Skipped, "removed from the dead-letter queue", nil
		}
		return Skipped, fmt.Sprintf("not dead: already retried as job %d", m.Job), nil
	}
	follows, err := b.followUps(ctx, tx)
	if err != nil {
		return "", "", err
	}
	if f, ok := follows[b.items[id.Index]]; ok {
		return Skipped, fmt.Sprintf("not dead: it continues as job %d (%s)", f.id, f.state), nil
	}
	return "", "", nil
}

// batchChunk retries or removes deliveries of batch jobs.
func (q *DLQ) batchChunk(ctx context.Context, tx pgx.Tx, ids []DeliveryID, o op) ([]Outcome, []string, error) {
	var jobIDs []int64
	for _, id := range ids {
		jobIDs = append(jobIDs, id.Job)
	}
	slices.Sort(jobIDs)
	rows, err := lockJobs(ctx, tx, slices.Compact(jobIDs))
	if err != nil {
		return nil, nil, err
	}
	jobs := map[int64]*batchJob{}
	for id, j := range rows {
		jobs[id] = newBatchJob(j)
	}
	outs := make([]Outcome, 0, len(ids))
	var todo []DeliveryID
	var attempts []int
	for _, id := range ids {
		out := Outcome{ID: id.String(), Result: o.done()}
		b := jobs[id.Job]
		result, reason, err := b.check(ctx, tx, id)
		if err != nil {
			return nil, nil, err
		}
		n := 0
		if result == "" && !o.remove {
			it := b.items[id.Index]
			if n, err = q.maxAttempts(ctx, b.args.ConfigVersion, it.observer, it.action); err != nil {
				result, reason = Failed, err.Error()
			}
		}
		if result != "" {
			out.Result, out.Reason = result, reason
			out.NotFound = b == nil || (b.row.kind == BatchKind && id.Index >= len(b.items))
		} else {
			todo, attempts = append(todo, id), append(attempts, n)
		}
		outs = append(outs, out)
	}
	if o.dryRun || len(todo) == 0 {
		return outs, nil, nil
	}
	if o.remove {
		return outs, nil, removeBatchDeliveries(ctx, tx, todo)
	}
	queues, jobOf, err := q.retryBatchDeliveries(ctx, tx, jobs, todo, attempts)
	for i := range outs {
		outs[i].JobID = cmp.Or(outs[i].JobID, jobOf[outs[i].ID])
	}
	return outs, queues, err
}

// markSQL merges marks into batch jobs' metadata->'dlq_deliveries'.
const markSQL = `UPDATE river_job b SET metadata = jsonb_set(b.metadata, '{dlq_deliveries}',
	coalesce(b.metadata->'dlq_deliveries', '{}'::jsonb) || u.m)
FROM unnest($1::bigint[], $2::jsonb[]) AS u(id, m) WHERE b.id = u.id`

func mark(ctx context.Context, tx pgx.Tx, marks map[int64]map[string]batchMark) error {
	ids := make([]int64, 0, len(marks))
	docs := make([][]byte, 0, len(marks))
	for id, m := range marks {
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		ids, docs = append(ids, id), append(docs, b)
	}
	_, err := tx.Exec(ctx, markSQL, ids, docs)
	return errors.Wrap(err, "dlq: mark batch deliveries")
}

// removeBatchDeliveries marks ids removed, then deletes the dead batch jobs
// whose every delivery is marked.
func removeBatchDeliveries(ctx context.Context, tx pgx.Tx, ids []DeliveryID) error {
	now := time.Now().UTC()
	marks := map[int64]map[string]batchMark{}
	var jobs []int64
	for _, id := range ids {
		if marks[id.Job] == nil {
			marks[id.Job] = map[string]batchMark{}
			jobs = append(jobs, id.Job)
		}
		marks[id.Job][strconv.Itoa(id.Index)] = batchMark{RemovedAt: &now}
	}
	if err := mark(ctx, tx, marks); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM river_job b WHERE b.id = ANY($1::bigint[]) AND b.kind = 'fraiseql_observer_batch'
		AND b.state IN ('cancelled', 'discarded')
		AND NOT EXISTS (SELECT 1 FROM observer_batch_deliveries(b.args) AS x
			WHERE b.metadata->'dlq_deliveries'->(x.n::text) IS NULL)`, jobs)
	return errors.Wrap(err, "dlq: delete emptied batch jobs")
}

// retryBatchDeliveries inserts an action job for each of ids (attempts[i]
// attempts, Batch set to its batch job) and marks them retried; it returns
// the jobs' queues and each delivery's new job by id.
func (q *DLQ) retryBatchDeliveries(ctx context.Context, tx pgx.Tx, jobs map[int64]*batchJob, ids []DeliveryID, attempts []int) ([]string, map[string]int64, error) {
	heads := q.batchHeads(ctx, jobs, ids)
	now := time.Now().UTC()
	params := make([]river.InsertManyParams, len(ids))
	var queues []string
	for i, id := range ids {
		b := jobs[id.Job]
		it := b.items[id.Index]
		h := heads[b.args.ConfigVersion][it.seq]
		meta, err := json.Marshal(map[string]any{"dlq_retries": []any{map[string]any{"at": now, "from": id.String()}}})
		if err != nil {
			return nil, nil, err
		}
		queue := QueueFor(b.args.ActionType)
		params[i] = river.InsertManyParams{
			Args: ActionArgs{Seq: it.seq, EventID: h.ID, Entity: h.EntityType, Observer: it.observer, Action: it.action,
				ActionType: b.args.ActionType, ConfigVersion: b.args.ConfigVersion, Batch: b.row.id, Replay: b.args.Replay},
			InsertOpts: &river.InsertOpts{MaxAttempts: attempts[i], Queue: queue, Metadata: meta},
		}
		queues = append(queues, queue)
	}
	res, err := q.client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, nil, errors.Wrap(err, "dlq: insert jobs")
	}
	marks := map[int64]map[string]batchMark{}
	jobOf := map[string]int64{}
	for i, id := range ids {
		if marks[id.Job] == nil {
			marks[id.Job] = map[string]batchMark{}
		}
		marks[id.Job][strconv.Itoa(id.Index)] = batchMark{RetriedAt: &now, Job: res[i].Job.ID}
		jobOf[id.String()] = res[i].Job.ID
	}
	return queues, jobOf, mark(ctx, tx, marks)
}

// batchHeads reads the changes of ids (event id, entity) by configuration
// version, outside the transaction (a failed read would abort it); a
// version or change that cannot be read is left out (the job reads the
// change itself when it runs).
func (q *DLQ) batchHeads(ctx context.Context, jobs map[int64]*batchJob, ids []DeliveryID) map[int64]map[int64]changelog.Head {
	seqs := map[int64][]int64{}
	for _, id := range ids {
		b := jobs[id.Job]
		seqs[b.args.ConfigVersion] = append(seqs[b.args.ConfigVersion], b.items[id.Index].seq)
	}
	out := map[int64]map[int64]changelog.Head{}
	for version, s := range seqs {
		v, err := q.configs.Get(ctx, version)
		if err != nil {
			continue
		}
		if h, err := v.Log.Heads(ctx, q.pool, s); err == nil {
			out[version] = h
		}
	}
	return out
}

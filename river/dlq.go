package river

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
)

// The dead-letter queue is every delivery whose River job was discarded
// (its attempts exhausted) or cancelled (a permanent failure): an action job
// is one delivery; a dead batch job holds each of its deliveries that has
// not continued as an action job and that the DLQ has not retried or
// removed (migration 00015 describes the marks in the batch job's
// metadata). DeliveryID names one.

// DeadStates are the River job states of dead deliveries.
var DeadStates = []string{"cancelled", "discarded"}

// DeliveryID names a delivery in the dead-letter queue: an action job by its
// id ("123"), or delivery Index of batch job Job ("123.4"), Index counting
// from 0 over the batch's deliveries × seqs in the order of its args.
type DeliveryID struct {
	Job   int64
	Index int // -1: the action job Job
}

// ParseDeliveryID reads "123" or "123.4".
func ParseDeliveryID(s string) (DeliveryID, error) {
	job, idx, batch := strings.Cut(strings.TrimSpace(s), ".")
	id := DeliveryID{Index: -1}
	var err error
	if id.Job, err = strconv.ParseInt(job, 10, 64); err != nil || id.Job <= 0 {
		return id, errors.WithHint(errors.Newf("%q is not a dead-letter id", s),
			"an id is a job id (123) or a batch job's delivery (123.4), as `dlq list` shows them")
	}
	if batch {
		if id.Index, err = strconv.Atoi(idx); err != nil || id.Index < 0 {
			return id, errors.WithHint(errors.Newf("%q is not a dead-letter id", s),
				"a batch job's delivery is <job id>.<index from 0>, e.g. 123.4")
		}
	}
	return id, nil
}

// String renders the id as ParseDeliveryID reads it.
func (id DeliveryID) String() string {
	if id.Index < 0 {
		return strconv.FormatInt(id.Job, 10)
	}
	return fmt.Sprintf("%d.%d", id.Job, id.Index)
}

// InBatch reports whether id names a delivery of a batch job.
func (id DeliveryID) InBatch() bool { return id.Index >= 0 }

// DeadFilter selects dead deliveries; the zero value selects all.
type DeadFilter struct {
	Observer   string
	ActionType string
	EntityType string        // the change's object_type
	Since      time.Duration // died at most this long ago; 0: any time
	OlderThan  time.Duration // died more than this long ago; 0: any time
}

// DeadDelivery is one dead delivery, as `dlq list` shows it.
type DeadDelivery struct {
	ID    string `json:"id"`
	JobID int64  `json:"job_id"`
	// BatchJobID is the batch job whose first attempt an action job
	// continues; 0 when none. For a delivery of a dead batch job it is JobID.
	BatchJobID    int64     `json:"batch_job_id,omitempty"`
	State         string    `json:"state"` // cancelled or discarded
	Observer      string    `json:"observer"`
	ActionType    string    `json:"action_type"`
	Action        int       `json:"action"` // index in the observer's actions
	Seq           int64     `json:"seq"`    // pk_entity_change_log
	EventID       string    `json:"event_id"`
	EntityType    string    `json:"entity_type"`
	EntityID      string    `json:"entity_id"`
	WebhookID     string    `json:"webhook_id"` // observers.MessageID; "" when the change is gone
	ConfigVersion int64     `json:"config_version"`
	Attempt       int       `json:"attempt"`
	MaxAttempts   int       `json:"max_attempts"`
	LastError     string    `json:"last_error"` // first line
	DiedAt        time.Time `json:"died_at"`
}

// deadSQL is every dead delivery, one row each, with the columns scanDead
// reads. Conditions on its columns (d.observer, d.died_at, ...) reach both
// branches, so River's index on (state, finalized_at) serves them.
//
// A delivery of a dead batch job is dead unless the batch job marks it
// (retried or removed). Unlike observer_deliveries, it does not look for an
// action job continuing it: a batch job that recorded its outcomes (and so
// inserted such jobs) completed in the same transaction, so a dead batch
// job's deliveries continue only through Retry, which marks them; and that
// look-up, one per delivery, is what made a list of 2,000 dead deliveries
// take seconds. Retry and Remove still check for one (batchJob.check).
const deadSQL = `(
SELECT j.id AS job_id, -1 AS idx, j.state::text AS state,
  (j.args->>'seq')::bigint AS seq, j.args->>'observer' AS observer, (j.args->>'action')::int AS action,
  j.args->>'action_type' AS action_type, nullif(j.args->>'entity', '') AS entity,
  nullif(j.args->>'event_id', '') AS event_id, coalesce((j.args->>'batch')::bigint, 0) AS batch,
  (j.args->>'config_version')::bigint AS config_version, j.attempt::int AS attempt,
  j.max_attempts::int AS max_attempts, j.finalized_at AS died_at,
  j.errors[array_upper(j.errors, 1)]->>'error' AS last_error
FROM river_job j
WHERE j.state IN ('cancelled', 'discarded') AND j.kind = 'fraiseql_observer_action'
UNION ALL
SELECT b.id, x.n, b.state::text, x.seq, x.observer, x.action, b.args->>'action_type', NULL::text, NULL::text,
  b.id, (b.args->>'config_version')::bigint, b.attempt::int, b.max_attempts::int, b.finalized_at,
  b.errors[array_upper(b.errors, 1)]->>'error'
FROM river_job b CROSS JOIN LATERAL observer_batch_deliveries(b.args) AS x
WHERE b.state IN ('cancelled', 'discarded') AND b.kind = 'fraiseql_observer_batch'
  AND b.metadata->'dlq_deliveries'->(x.n::text) IS NULL
) AS d`

const deadColumns = `d.job_id, d.idx, d.state, d.seq, coalesce(d.observer, ''), coalesce(d.action, 0),
  coalesce(d.action_type, ''), coalesce(d.entity, ''), coalesce(d.event_id, ''), d.batch,
  coalesce(d.config_version, 0), d.attempt, d.max_attempts, d.died_at, coalesce(d.last_error, '')`

func scanDead(rows pgx.CollectableRow) (DeadDelivery, error) {
	var d DeadDelivery
	var idx int
	err := rows.Scan(&d.JobID, &idx, &d.State, &d.Seq, &d.Observer, &d.Action, &d.ActionType, &d.EntityType,
		&d.EventID, &d.BatchJobID, &d.ConfigVersion, &d.Attempt, &d.MaxAttempts, &d.DiedAt, &d.LastError)
	d.ID = DeliveryID{Job: d.JobID, Index: idx}.String()
	d.LastError, _, _ = strings.Cut(d.LastError, "\n")
	return d, err
}

// DLQ reads and changes the dead-letter queue.
type DLQ struct {
	pool    *pgxpool.Pool
	configs *ConfigStore
	client  *river.Client[pgx.Tx] // inserts only
	driver  *riverpgxv5.Driver
	// ChunkSize bounds the deliveries one transaction of RetryAll and
	// RemoveAll changes; default DLQChunkSizeDefault.
	ChunkSize int
}

// DLQChunkSizeDefault is the deliveries RetryAll and RemoveAll change per
// transaction.
const DLQChunkSizeDefault = 1000

// NewDLQ returns the dead-letter queue of the database behind pool.
// Pool is the database the DLQ reads.
func (q *DLQ) Pool() *pgxpool.Pool { return q.pool }

func NewDLQ(pool *pgxpool.Pool) (*DLQ, error) {
	driver := riverpgxv5.New(pool)
	client, err := river.NewClient(driver, &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, errors.Wrap(err, "dlq: create river client")
	}
	return &DLQ{pool: pool, configs: NewConfigStore(pool), client: client, driver: driver, ChunkSize: DLQChunkSizeDefault}, nil
}

// where renders f as SQL conditions on deadSQL's columns, appending the
// arguments to args.
func (q *DLQ) where(ctx context.Context, f DeadFilter, args *[]any) (string, error) {
	conds := []string{"true"}
	add := func(cond string, v any) {
		*args = append(*args, v)
		conds = append(conds, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(*args))))
	}
	if f.Observer != "" {
		add("d.observer = $?", f.Observer)
	}
	if f.ActionType != "" {
		add("d.action_type = $?", f.ActionType)
	}
	if f.Since > 0 {
		add("d.died_at >= now() - make_interval(secs => $?)", f.Since.Seconds())
	}
	if f.OlderThan > 0 {
		add("d.died_at < now() - make_interval(secs => $?)", f.OlderThan.Seconds())
	}
	if f.EntityType != "" {
		// Action jobs carry their entity; a batch job's deliveries are
		// looked up in the change log of their configuration version.
		lookup, err := q.entityLookup(ctx, strings.Join(conds, " AND "), *args)
		if err != nil {
			return "", err
		}
		add("coalesce(d.entity, "+lookup+") = $?", f.EntityType)
	}
	return strings.Join(conds, " AND "), nil
}

// entityLookup is a SQL expression giving the object_type of d.seq in the
// change log of d.config_version, for the dead deliveries matching cond.
func (q *DLQ) entityLookup(ctx context.Context, cond string, args []any) (string, error) {
	rows, err := q.pool.Query(ctx, `SELECT DISTINCT d.config_version FROM `+deadSQL+
		` WHERE d.entity IS NULL AND d.config_version IS NOT NULL AND `+cond, args...)
	if err != nil {
		return "", errors.Wrap(err, "dlq: read configuration versions")
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return "", errors.Wrap(err, "dlq: read configuration versions")
	}
	byTable := map[string][]string{}
	logs := map[string]*changelog.ChangeLog{}
	var tables []string
	for _, id := range versions {
		v, err := q.configs.Get(ctx, id)
		if err != nil {
			continue // its deliveries have no entity to match
		}
		t := v.Log.Table()
		if logs[t] == nil {
			logs[t], tables = v.Log, append(tables, t)
		}
		byTable[t] = append(byTable[t], strconv.FormatInt(id, 10))
	}
	if len(tables) == 0 {
		return "NULL::text", nil
	}
	var b strings.Builder
	b.WriteString("CASE")
	for _, t := range tables {
		fmt.Fprintf(&b, " WHEN d.config_version IN (%s) THEN %s", strings.Join(byTable[t], ","), logs[t].EntityTypeSQL("d.seq"))
	}
	b.WriteString(" END")
	return b.String(), nil
}

// List returns dead deliveries matching f, newest first, from offset, at
// most limit; and how many match in all.
func (q *DLQ) List(ctx context.Context, f DeadFilter, limit, offset int) ([]DeadDelivery, int64, error) {
	var args []any
	cond, err := q.where(ctx, f, &args)
	if err != nil {
		return nil, 0, err
	}
	var total int64
	if err := q.pool.QueryRow(ctx, `SELECT count(*) FROM `+deadSQL+` WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, errors.Wrap(err, "dlq: count dead deliveries")
	}
	n := len(args)
	rows, err := q.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE %s
		ORDER BY d.died_at DESC, d.job_id DESC, d.idx LIMIT $%d OFFSET $%d`, deadColumns, deadSQL, cond, n+1, n+2),
		append(args, limit, offset)...)
	if err != nil {
		return nil, 0, errors.Wrap(err, "dlq: list dead deliveries")
	}
	page, err := pgx.CollectRows(rows, scanDead)
	if err != nil {
		return nil, 0, errors.Wrap(err, "dlq: list dead deliveries")
	}
	q.describe(ctx, page)
	return page, total, nil
}

// describe fills in each delivery's change (event id, entity) from the
// change log of its configuration version, and its webhook-id. A version
// or change that cannot be read leaves the fields the job carries.
func (q *DLQ) describe(ctx context.Context, ds []DeadDelivery) {
	seqs := map[int64][]int64{}
	for _, d := range ds {
		seqs[d.ConfigVersion] = append(seqs[d.ConfigVersion], d.Seq)
	}
	heads := map[int64]map[int64]changelog.Head{}
	for version, s := range seqs {
		v, err := q.configs.Get(ctx, version)
		if err != nil {
			continue
		}
		if heads[version], err = v.Log.Heads(ctx, q.pool, s); err != nil {
			continue
		}
	}
	for i := range ds {
		d := &ds[i]
		if h, ok := heads[d.ConfigVersion][d.Seq]; ok {
			d.EventID, d.EntityType, d.EntityID = h.ID, h.EntityType, h.EntityID
		}
		if d.EventID != "" {
			d.WebhookID = observers.MessageID(d.EventID, d.Observer, d.Action)
		}
	}
}

// DeadGroup counts the dead deliveries that share a key.
type DeadGroup struct {
	Key       string    `json:"key"`
	Count     int64     `json:"count"`
	Cancelled int64     `json:"cancelled"`
	Discarded int64     `json:"discarded"`
	Oldest    time.Time `json:"oldest"`
	Newest    time.Time `json:"newest"`
}

// Ways to group dead deliveries in Stats.
const (
	ByObserver   = "observer"
	ByActionType = "action-type"
	ByError      = "error"
)

// statsKeyMaxChars cuts an error message grouped by ByError.
const statsKeyMaxChars = 120

// Stats counts the dead deliveries matching f grouped by by (ByObserver,
// ByActionType or ByError: the first line of the last error), largest
// group first.
func (q *DLQ) Stats(ctx context.Context, f DeadFilter, by string) ([]DeadGroup, error) {
	var key string
	switch by {
	case ByObserver:
		key = "coalesce(d.observer, '')"
	case ByActionType:
		key = "coalesce(d.action_type, '')"
	case ByError:
		key = fmt.Sprintf("coalesce(left(split_part(d.last_error, E'\\n', 1), %d), '')", statsKeyMaxChars)
	default:
		return nil, errors.WithHint(errors.Newf("cannot group by %q", by), "use observer, action-type or error")
	}
	var args []any
	cond, err := q.where(ctx, f, &args)
	if err != nil {
		return nil, err
	}
	rows, err := q.pool.Query(ctx, `SELECT `+key+`, count(*), count(*) FILTER (WHERE d.state = 'cancelled'),
		count(*) FILTER (WHERE d.state = 'discarded'), min(d.died_at), max(d.died_at)
		FROM `+deadSQL+` WHERE `+cond+` GROUP BY 1 ORDER BY 2 DESC, 1`, args...)
	if err != nil {
		return nil, errors.Wrap(err, "dlq: count dead deliveries")
	}
	groups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadGroup, error) {
		var g DeadGroup
		return g, r.Scan(&g.Key, &g.Count, &g.Cancelled, &g.Discarded, &g.Oldest, &g.Newest)
	})
	return groups, errors.Wrap(err, "dlq: count dead deliveries")
}

// CountDead counts the dead deliveries by state (cancelled, discarded) in
// tx, as `dlq list` defines them; `status` reports the dead-letter queue
// with it.
func CountDead(ctx context.Context, tx pgx.Tx) (map[string]int64, error) {
	return countStates(ctx, tx, "count dead deliveries", `SELECT d.state, count(*) FROM `+deadSQL+` GROUP BY 1`)
}

package retention_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/retention"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

const day = 24 * time.Hour

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := pool.Exec(ctx, sql, args...)
	require.NoError(t, err, sql)
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

// insertRows writes n change-log rows with object_id prefix-1 … prefix-n,
// created age ago, one transaction, and returns their pks.
func insertRows(t *testing.T, pool *pgxpool.Pool, prefix string, n int, age time.Duration) []int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(), `INSERT INTO core.tb_entity_change_log
		(object_type, object_id, modification_type, object_data, created_at)
		SELECT 'Order', $1 || '-' || g, 'INSERT', '{}', now() - make_interval(secs => $3)
		FROM generate_series(1, $2::int) g RETURNING pk_entity_change_log`, prefix, n, age.Seconds())
	require.NoError(t, err)
	var pks []int64
	for rows.Next() {
		var pk int64
		require.NoError(t, rows.Scan(&pk))
		pks = append(pks, pk)
	}
	require.NoError(t, rows.Err())
	return pks
}

// checkpointAt puts group's checkpoint, reading table (NULL: unknown), at
// the change-log row pk.
func checkpointAt(t *testing.T, pool *pgxpool.Pool, group string, table *string, pk int64) {
	t.Helper()
	exec(t, pool, `INSERT INTO observer_checkpoints (listener_id, change_log, txid, event_id)
		SELECT $1, $2, COALESCE(txid, '0'), pk_entity_change_log FROM core.tb_entity_change_log WHERE pk_entity_change_log = $3
		ON CONFLICT (listener_id) DO UPDATE SET change_log = EXCLUDED.change_log, txid = EXCLUDED.txid, event_id = EXCLUDED.event_id`,
		group, table, pk)
}

func remaining(t *testing.T, pool *pgxpool.Pool, prefix string) int64 {
	t.Helper()
	return count(t, pool, `SELECT count(*) FROM core.tb_entity_change_log WHERE object_id LIKE $1 || '-%'`, prefix)
}

func actionJob(t *testing.T, pool *pgxpool.Pool, state string, seq int64, finalized *time.Time) {
	t.Helper()
	args, _ := json.Marshal(obsriver.ActionArgs{Seq: seq, Observer: "o", ActionType: "webhook", ConfigVersion: 1})
	if finalized == nil && (state == "cancelled" || state == "discarded") {
		now := time.Now()
		finalized = &now
	}
	exec(t, pool, `INSERT INTO river_job (kind, args, state, max_attempts, finalized_at, queue)
		VALUES ($1, $2, $3::river_job_state, 5, $4, 'fraiseql_observers_webhook')`, obsriver.ActionKind, args, state, finalized)
}

func batchJob(t *testing.T, pool *pgxpool.Pool, state string, seqs ...int64) {
	t.Helper()
	args, _ := json.Marshal(obsriver.BatchArgs{ActionType: "webhook", ConfigVersion: 1,
		Deliveries: []obsriver.BatchDelivery{{Observer: "o", Action: 0, Seqs: seqs[:1]}, {Observer: "o", Action: 1, Seqs: seqs[1:]}}})
	exec(t, pool, `INSERT INTO river_job (kind, args, state, max_attempts, queue)
		VALUES ($1, $2, $3::river_job_state, 5, 'fraiseql_observers_webhook')`, obsriver.BatchKind, args, state)
}

// deleted reads observer_retention_deleted_total{table}.
func deleted(t *testing.T, r *retention.Runner, table string) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, r.Metrics().Deleted.WithLabelValues(table).Write(&m))
	return m.GetCounter().GetValue()
}

func newRunner(t *testing.T, pool *pgxpool.Pool, reg prometheus.Registerer, cfg observers.RetentionConfig) *retention.Runner {
	t.Helper()
	r, err := retention.New(retention.Params{DB: pool, Config: cfg, BatchRows: 4, Pause: time.Millisecond,
		Metrics: retention.NewMetrics(reg)})
	require.NoError(t, err)
	return r
}

func tableReport(t *testing.T, rep retention.Report, table string) retention.TableReport {
	t.Helper()
	for _, tr := range rep.Tables {
		if tr.Table == table {
			return tr
		}
	}
	t.Fatalf("no %s in the report", table)
	return retention.TableReport{}
}

const ourTable = "core.tb_entity_change_log"

// A change-log row goes only when it is older than the period, the
// checkpoint of every group reading its table has passed it, and no
// delivery that is not completed refers to it; the dry run counts exactly
// what the real run then deletes, and the metric counts it.
func TestChangeLogDeletesOnlyWhatItMay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := sqltest.NewDB(t)
	table := ourTable

	insertRows(t, pool, "free", 10, 40*day)                    // go
	pinned := insertRows(t, pool, "pinned", 8, 40*day)         // kept by a job each
	doneJob := insertRows(t, pool, "done", 1, 40*day)          // its job completed: goes
	young := insertRows(t, pool, "young", 5, time.Hour)        // too young
	checkpointAt(t, pool, "ours", &table, young[len(young)-1]) // every row above is passed
	insertRows(t, pool, "behind", 6, 40*day)                   // not passed by the checkpoint
	exec(t, pool, `INSERT INTO observer_checkpoints (listener_id, change_log, txid, event_id) VALUES ('elsewhere', 'app.other_log', '0', 0)`)

	for i, state := range []string{"available", "retryable", "scheduled", "running", "cancelled", "discarded"} {
		actionJob(t, pool, state, pinned[i], nil)
	}
	batchJob(t, pool, "available", pinned[6], pinned[7]) // seqs in two deliveries
	now := time.Now()
	actionJob(t, pool, "completed", doneJob[0], &now)

	reg := prometheus.NewRegistry()
	r := newRunner(t, pool, reg, observers.RetentionConfig{ChangeLog: 30 * day})

	dry, err := r.Apply(ctx, retention.Options{DryRun: true})
	require.NoError(t, err)
	require.True(t, dry.DryRun)
	cl := tableReport(t, dry, observers.RetentionChangeLog)
	require.Equal(t, int64(11), cl.Rows, "free and done would go")
	require.Equal(t, int64(8), cl.Pinned)
	require.Equal(t, "ours", cl.HeldBy)
	require.True(t, cl.Complete)
	require.Equal(t, int64(30), count(t, pool, `SELECT count(*) FROM core.tb_entity_change_log`), "a dry run deletes nothing")
	require.InDelta(t, 0, deleted(t, r, "change_log"), 0)

	var progressed int64
	rep, err := r.Apply(ctx, retention.Options{Progress: func(table string, n int64) {
		if table == observers.RetentionChangeLog {
			progressed += n
		}
	}})
	require.NoError(t, err)
	cl = tableReport(t, rep, observers.RetentionChangeLog)
	require.Equal(t, int64(11), cl.Rows)
	require.Equal(t, int64(11), progressed)
	require.Equal(t, int64(0), remaining(t, pool, "free"))
	require.Equal(t, int64(0), remaining(t, pool, "done"))
	require.Equal(t, int64(8), remaining(t, pool, "pinned"), "rows of unfinished and dead deliveries stay")
	require.Equal(t, int64(5), remaining(t, pool, "young"))
	require.Equal(t, int64(6), remaining(t, pool, "behind"), "rows the checkpoint has not passed stay")
	require.InDelta(t, 11, deleted(t, r, "change_log"), 0)

	// A dead letter past its period goes, and then its row can go too.
	exec(t, pool, `UPDATE river_job SET finalized_at = now() - interval '40 days' WHERE state = 'discarded'`)
	rep, err = r.Apply(ctx, retention.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(1), tableReport(t, rep, observers.RetentionDeadLetters).Rows)
	require.Equal(t, int64(1), tableReport(t, rep, observers.RetentionChangeLog).Rows)
	require.Equal(t, int64(7), remaining(t, pool, "pinned"))
	require.InDelta(t, 12, deleted(t, r, "change_log"), 0)
	require.InDelta(t, 1, deleted(t, r, "dead_letters"), 0)
}

// Every group reading the table bounds what goes, a group whose table is
// unknown (NULL: written before migration 00017, or by FraiseQL) included;
// with no checkpoint at all nothing goes.
func TestChangeLogWaitsForEveryGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := sqltest.NewDB(t)
	table := ourTable
	first := insertRows(t, pool, "first", 5, 40*day)
	second := insertRows(t, pool, "second", 5, 40*day)
	r := newRunner(t, pool, nil, observers.RetentionConfig{ChangeLog: 30 * day})

	rep, err := r.Apply(ctx, retention.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(0), tableReport(t, rep, observers.RetentionChangeLog).Rows, "no checkpoint: nothing goes")
	require.Empty(t, tableReport(t, rep, observers.RetentionChangeLog).HeldBy)
	require.Equal(t, int64(10), remaining(t, pool, "first")+remaining(t, pool, "second"))

	checkpointAt(t, pool, "ahead", &table, second[4])
	checkpointAt(t, pool, "legacy", nil, first[2]) // unknown table: counts
	rep, err = r.Apply(ctx, retention.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(3), tableReport(t, rep, observers.RetentionChangeLog).Rows)
	require.Equal(t, "legacy", tableReport(t, rep, observers.RetentionChangeLog).HeldBy)
	require.Equal(t, int64(2), remaining(t, pool, "first"))

	exec(t, pool, `UPDATE observer_checkpoints SET change_log = 'app.other_log' WHERE listener_id = 'legacy'`) // no longer counts
	checkpointAt(t, pool, "slow", &table, second[1])
	rep, err = r.Apply(ctx, retention.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(4), tableReport(t, rep, observers.RetentionChangeLog).Rows, "%+v", rep)
	require.Equal(t, "slow", tableReport(t, rep, observers.RetentionChangeLog).HeldBy)
	require.Equal(t, int64(3), remaining(t, pool, "second"))
}

// An unfinished replay keeps the rows it has yet to read (after its
// position, up to its bound); a finished one keeps nothing.
func TestChangeLogKeepsWhatAReplayHasYetToRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := sqltest.NewDB(t)
	table := ourTable
	pks := insertRows(t, pool, "old", 10, 40*day)
	checkpointAt(t, pool, "default", &table, pks[9])
	// Read up to pks[3], bound at pks[7]: pks[4..7] are still to be read.
	exec(t, pool, `INSERT INTO observer_replays (listener_id, key, parameters, config_version, bound_txid, bound_pk,
			position_txid, position_pk, total, state)
		SELECT 'default', 'k', '{}', 1, (SELECT COALESCE(txid, '0')::text::bigint FROM core.tb_entity_change_log WHERE pk_entity_change_log = $2), $2,
			COALESCE(txid, '0')::text::bigint, pk_entity_change_log, 8, 'running'
		FROM core.tb_entity_change_log WHERE pk_entity_change_log = $1`, pks[3], pks[7])
	r := newRunner(t, pool, nil, observers.RetentionConfig{ChangeLog: 30 * day})
	rep, err := r.Apply(ctx, retention.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(6), tableReport(t, rep, observers.RetentionChangeLog).Rows, "%+v", rep)
	require.Equal(t, int64(4), count(t, pool, `SELECT count(*) FROM core.tb_entity_change_log WHERE pk_entity_change_log = ANY($1)`, pks[4:8]))

	exec(t, pool, `UPDATE observer_replays SET state = 'finished', finished_at = now()`)
	rep, err = r.Apply(ctx, retention.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(4), tableReport(t, rep, observers.RetentionChangeLog).Rows)
	require.Equal(t, int64(0), remaining(t, pool, "old"))
}

// Completed jobs, dead letters (of every kind: River's own cleaner is
// off) and skipped events go after their periods, in batches; off keeps a
// table; the change log is off by default.
func TestJobsAndSkippedEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := sqltest.NewDB(t)
	exec(t, pool, `INSERT INTO river_job (kind, args, state, max_attempts, finalized_at)
		SELECT k, '{}', s::river_job_state, 1, now() - make_interval(days => d)
		FROM (VALUES ('other_app_kind', 'completed', 10), ($1, 'completed', 3), ($1, 'completed', 0),
		             ($1, 'cancelled', 40), ('other_app_kind', 'discarded', 40), ($1, 'discarded', 3)) v(k, s, d),
		     generate_series(1, 5)`, obsriver.ActionKind)
	exec(t, pool, `INSERT INTO observer_skipped_events (listener_id, change_pk, reason, created_at)
		SELECT 'default', g, 'bad json', now() - make_interval(days => CASE WHEN g <= 7 THEN 40 ELSE 1 END)
		FROM generate_series(1, 9) g`)
	insertRows(t, pool, "old", 3, 400*day)
	checkpointAt(t, pool, "default", nil, 3)

	reg := prometheus.NewRegistry()
	r := newRunner(t, pool, reg, observers.RetentionConfig{CompletedJobs: 2 * day, SkippedEvents: observers.RetentionOff})
	dry, err := r.Apply(ctx, retention.Options{DryRun: true})
	require.NoError(t, err)
	require.Equal(t, int64(10), tableReport(t, dry, observers.RetentionCompletedJobs).Rows)
	require.Equal(t, int64(10), tableReport(t, dry, observers.RetentionDeadLetters).Rows)
	require.Equal(t, "off", tableReport(t, dry, observers.RetentionSkippedEvents).Period)
	require.Equal(t, "off", tableReport(t, dry, observers.RetentionChangeLog).Period, "the change log is kept by default")
	require.Nil(t, tableReport(t, dry, observers.RetentionChangeLog).Before)

	rep, err := r.Apply(ctx, retention.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(10), tableReport(t, rep, observers.RetentionCompletedJobs).Rows)
	require.Equal(t, int64(10), tableReport(t, rep, observers.RetentionDeadLetters).Rows)
	require.Equal(t, int64(10), count(t, pool, `SELECT count(*) FROM river_job`), "the young completed and dead jobs stay")
	require.Equal(t, int64(9), count(t, pool, `SELECT count(*) FROM observer_skipped_events`), "skipped_events: off")
	require.Equal(t, int64(3), count(t, pool, `SELECT count(*) FROM core.tb_entity_change_log`))

	r.SetConfig(observers.RetentionConfig{SkippedEvents: 30 * day, CompletedJobs: observers.RetentionOff})
	rep, err = r.Apply(ctx, retention.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(7), tableReport(t, rep, observers.RetentionSkippedEvents).Rows)
	require.Equal(t, int64(2), count(t, pool, `SELECT count(*) FROM observer_skipped_events`))

	families, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, families, 1)
	require.Equal(t, "observer_retention_deleted_total", families[0].GetName())
	require.Len(t, families[0].GetMetric(), 6, "a series per table from the start")
	for table, want := range map[string]float64{"completed_jobs": 10, "dead_letters": 10, "skipped_events": 7, "change_log": 0} {
		require.InDelta(t, want, deleted(t, r, table), 0, table)
	}
}

// A budget stops a run between batches; the next run goes on.
func TestBudgetStopsBetweenBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := sqltest.NewDB(t)
	rows := insertRows(t, pool, "old", 20, 40*day)
	table := ourTable
	checkpointAt(t, pool, "default", &table, rows[19])
	r, err := retention.New(retention.Params{DB: pool, Config: observers.RetentionConfig{ChangeLog: 30 * day},
		BatchRows: 4, Pause: time.Hour})
	require.NoError(t, err)
	rep, err := r.Apply(ctx, retention.Options{Budget: time.Nanosecond})
	require.NoError(t, err)
	cl := tableReport(t, rep, observers.RetentionChangeLog)
	require.False(t, cl.Complete)
	require.Equal(t, int64(20), remaining(t, pool, "old"))

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err = r.Apply(cctx, retention.Options{Progress: func(table string, _ int64) {
		if table == observers.RetentionChangeLog {
			cancel()
		}
	}})
	require.ErrorIs(t, err, context.Canceled, "the hour-long pause ends with the context")
	require.Equal(t, int64(16), remaining(t, pool, "old"), "one batch went")
}

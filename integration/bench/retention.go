package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/fraiseql/fraiseql-observers/observertest"
)

// retentionScenario is the latency scenario's load, offered for
// -retention-duration (long enough for the deletion), twice, each on a
// fresh database holding -retention-rows change-log rows 40 days old that
// the checkpoint has already passed: once with retention off (the
// baseline), once with `retention: {change_log: 30d}`, whose periodic job
// starts deleting them when `run` starts. It reports the commit→delivery
// p99 of the baseline, of the events that committed while retention was
// deleting, and their ratio (target: at most 1.5), with how long the
// deletion took.
func retentionScenario(ctx context.Context, o options) result {
	o.duration = o.retentionDuration
	r := result{Scenario: "retention", Params: map[string]any{"rows": o.retentionRows, "rate": o.rate,
		"duration": o.duration.String(), "deliveries_per_job": perJob(o)}}
	base, err := retentionRun(ctx, o, false)
	if err != nil {
		r.Err = fmt.Errorf("without retention: %w", err)
		return r
	}
	with, err := retentionRun(ctx, o, true)
	if err != nil {
		r.Err = fmt.Errorf("with retention: %w", err)
		return r
	}
	addPercentiles(&r, "baseline_commit_to_delivery", base.all)
	addPercentiles(&r, "during_retention_commit_to_delivery", with.during)
	r.add("during_retention_events", float64(len(with.during)), "events")
	r.add("p99_ratio", r.get("during_retention_commit_to_delivery_p99_ms")/r.get("baseline_commit_to_delivery_p99_ms"), "x")
	r.add("retention_rows_deleted", with.deleted, "rows")
	r.add("retention_s", with.took.Seconds(), "s")
	r.add("retention_rows_per_s", with.deleted/max(with.took.Seconds(), 1e-3), "rows/s")
	if with.deleted != float64(o.retentionRows) {
		r.Err = fmt.Errorf("retention deleted %.0f of %d rows while the load ran", with.deleted, o.retentionRows)
	}
	return r
}

type retentionOutcome struct {
	all, during []float64 // commit→delivery ms: every event, those committed while retention deleted
	deleted     float64   // rows retention deleted while the load ran
	took        time.Duration
}

func retentionRun(ctx context.Context, o options, enabled bool) (retentionOutcome, error) {
	var out retentionOutcome
	name := "fraiseql_bench_retention_off"
	extra := ""
	if enabled {
		name, extra = "fraiseql_bench_retention_on", "retention: {change_log: 30d}\n"
	}
	db, err := newDatabase(ctx, o.admin, name)
	if err != nil {
		return out, err
	}
	defer db.drop(ctx, o.admin)
	if err := seedOldRows(ctx, db, o.retentionRows); err != nil {
		return out, err
	}
	var w *deletionWatch
	var began error
	lr, err := runLatency(ctx, o, db, extra, func(p *observertest.Process) {
		if enabled {
			w = watchDeletion(p.HTTPAddr(), float64(o.retentionRows))
			began = w.waitBegin(2 * time.Minute)
		}
	})
	if err != nil {
		return out, err
	}
	if began != nil {
		stop(lr.p)
		return out, began
	}
	defer stop(lr.p)
	out.all = lr.latencies(time.Time{}, time.Time{})
	if w != nil {
		first, last, deleted := w.finish()
		out.during, out.deleted, out.took = lr.latencies(first, last), deleted, last.Sub(first)
	}
	return out, nil
}

// seedOldRows writes n change-log rows 40 days old (an entity nothing
// observes) and puts the bench group's checkpoint past them, reading the
// default table, so retention may delete them all; then VACUUM ANALYZE and
// CHECKPOINT so both runs start from the same settled table.
func seedOldRows(ctx context.Context, db *database, n int) error {
	const chunk = 100_000
	for i := 1; i <= n; i += chunk {
		if _, err := db.pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data, created_at)
			SELECT 'Archive', 'a-' || g, 'INSERT', jsonb_build_object('n', g, 'status', 'archived', 'total', 120.5), now() - interval '40 days'
			FROM generate_series($1::int, $2::int) g`, i, min(i+chunk-1, n)); err != nil {
			return fmt.Errorf("seed old rows: %w", err)
		}
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO observer_checkpoints (listener_id, change_log, txid, event_id)
		SELECT 'bench', 'core.tb_entity_change_log', COALESCE(txid, '0'), pk_entity_change_log
		FROM core.tb_entity_change_log ORDER BY COALESCE(txid, '0') DESC, pk_entity_change_log DESC LIMIT 1`); err != nil {
		return fmt.Errorf("seed checkpoint: %w", err)
	}
	if _, err := db.pool.Exec(ctx, `VACUUM ANALYZE core.tb_entity_change_log`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	// Settle again, as newDatabase does: the seed's writes are not flushed
	// inside the measured run.
	if _, err := db.pool.Exec(ctx, "CHECKPOINT"); err != nil {
		fmt.Fprintf(os.Stderr, "bench: CHECKPOINT after seeding: %v (running unsettled)\n", err)
	}
	return nil
}

// deletionWatch polls observer_retention_deleted_total{table="change_log"}
// of the process under test: when it first moved and when it reached its
// target.
type deletionWatch struct {
	began    chan struct{} // closed when the first rows are deleted
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	first    time.Time
	last     time.Time
	deleted  float64
}

const deletionPoll = 100 * time.Millisecond

func watchDeletion(addr string, want float64) *deletionWatch {
	w := &deletionWatch{stop: make(chan struct{}), done: make(chan struct{}), began: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(deletionPoll)
		defer t.Stop()
		for {
			if v := scrapeMetric(addr, `observer_retention_deleted_total{table="change_log"}`); v > w.deleted {
				if w.deleted == 0 {
					w.first = time.Now().Add(-deletionPoll) // it began within the last poll
					close(w.began)
				}
				w.deleted, w.last = v, time.Now()
				if v >= want {
					return
				}
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// waitBegin waits until the deletion has begun: the periodic job's first
// run comes a moment after the process starts (River's leader election,
// its periodic enqueuer), and a load offered before it would measure
// nothing of the deletion when the deletion is short (-quick).
func (w *deletionWatch) waitBegin(timeout time.Duration) error {
	select {
	case <-w.began:
		return nil
	case <-w.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("retention deleted nothing within %s of the start", timeout)
	}
}

// finish stops polling and returns the deletion's window and rows.
func (w *deletionWatch) finish() (first, last time.Time, deleted float64) {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
	return w.first, w.last, w.deleted
}

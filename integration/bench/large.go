package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fraiseql/fraiseql-observers/observertest"
)

// largeScenario commits o.largeRows changes of o.largeBytes of JSON each
// (many small objects, the shape that costs most once decoded) in one
// transaction, then one small change, and measures how long until every one
// is delivered and the peak RSS of `run` meanwhile.
func largeScenario(ctx context.Context, o options) result {
	r := result{Scenario: "large", Params: map[string]any{"rows": o.largeRows, "bytes_per_row": o.largeBytes}}
	db, err := newDatabase(ctx, o.admin, "fraiseql_bench_large")
	if err != nil {
		r.Err = err
		return r
	}
	defer db.drop(ctx, o.admin)
	recv, err := observertest.ListenReceiver(observertest.ReceiverOptions{CountOnly: true})
	if err != nil {
		r.Err = err
		return r
	}
	defer recv.Close()
	p, err := startRun(ctx, o.bin, db, configYAML(o, recv.URL(), 1, 1, o.workers, `{"i": "{{ i }}"}`))
	if err != nil {
		r.Err = err
		return r
	}
	defer stop(p)
	recv.Expect(int64(o.largeRows + 1))
	start := time.Now()
	if _, err := db.pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
		SELECT 'Order', i::text, 'INSERT', jsonb_build_object('i', i, 'items',
			(SELECT jsonb_agg(jsonb_build_object('k', g, 'v', md5((i * 1000003 + g)::text))) FROM generate_series(1, $2 / 64) AS g))
		FROM generate_series(1, $1) AS i`, o.largeRows, o.largeBytes); err != nil {
		r.Err = err
		return r
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
		VALUES ('Order', 'small', 'INSERT', '{"i": 0}')`); err != nil {
		r.Err = err
		return r
	}
	written := time.Since(start)
	select {
	case <-recv.Done():
	case <-time.After(5 * time.Minute):
		r.Err = fmt.Errorf("only %d of %d deliveries arrived", recv.Count(), o.largeRows+1)
		return r
	}
	st := readProcStats(p.Pid())
	r.add("write_s", written.Seconds(), "s")
	r.add("all_delivered_s", time.Since(start).Seconds(), "s")
	r.add("peak_rss_mib", float64(st.PeakRSS)/(1<<20), "MiB")
	r.add("cpu_s", st.CPUSeconds, "s")
	r.add("enqueue_batches", scrapeMetric(p.HTTPAddr(), "observer_batches_total"), "tx")
	return r
}

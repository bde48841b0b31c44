package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observertest"
)

const benchSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// configYAML builds a configuration with nObs observers on Order inserts,
// each with nAct signed webhooks to url.
func configYAML(o options, url string, nObs, nAct int, maxWorkers int, bodyTemplate string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listener:\n  id: bench\n")
	if o.batch > 0 {
		fmt.Fprintf(&b, "  batch_size: %d\n", o.batch)
	}
	b.WriteString("allow_private_targets: true\nworkers:\n")
	if maxWorkers > 0 {
		fmt.Fprintf(&b, "  max_workers: %d\n", maxWorkers)
	}
	if o.fetchCooldown > 0 {
		fmt.Fprintf(&b, "  fetch_cooldown: %s\n", o.fetchCooldown)
	}
	if o.perJob > 0 {
		fmt.Fprintf(&b, "concurrency:\n  deliveries_per_job: %d\n", o.perJob)
	}
	if o.audit {
		b.WriteString("audit:\n  enabled: true\n  backend: postgres\n")
	}
	b.WriteString("observers:\n")
	for i := range nObs {
		fmt.Fprintf(&b, "  obs_%d:\n    entity: Order\n    events: [INSERT]\n    actions:\n", i)
		for j := range nAct {
			fmt.Fprintf(&b, "      - type: webhook\n        url: %s/o%d/a%d\n        signing_secret: %s\n", url, i, j, benchSecret)
			if bodyTemplate != "" {
				fmt.Fprintf(&b, "        body_template: '%s'\n", bodyTemplate)
			}
		}
	}
	return b.String()
}

// perJob is the deliveries_per_job a scenario runs with.
func perJob(o options) int {
	return cmp.Or(o.perJob, observers.ConcurrencyDeliveriesPerJobDefault)
}

// ceilingScenario is raw River on the same database shape and worker count:
// insert N no-op jobs with InsertManyFast, work them, jobs/s.
func ceilingScenario(ctx context.Context, o options) result {
	r := result{Scenario: "ceiling", Params: map[string]any{"n": o.n}}
	db, err := newDatabase(ctx, o.admin, "fraiseql_bench_ceiling")
	if err != nil {
		r.Err = err
		return r
	}
	defer db.drop(ctx, o.admin)
	cfg := observers.WorkersConfig{MaxWorkers: o.workers, FetchCooldown: o.fetchCooldown}.WithDefaults()
	r.Params["workers"], r.Params["fetch_cooldown"] = cfg.MaxWorkers, cfg.FetchCooldown.String()
	// Count in the worker: River's event subscription drops events when its
	// buffer is full, which a fast no-op queue does.
	var worked atomic.Int64
	allDone := make(chan struct{})
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[noopArgs]) error {
		if worked.Add(1) == int64(o.n) {
			close(allDone)
		}
		return nil
	}))
	client, err := river.NewClient(riverpgxv5.New(db.pool), &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.MaxWorkers}},
		FetchCooldown:     cfg.FetchCooldown,
		FetchPollInterval: cfg.FetchPollInterval,
		Workers:           workers,
	})
	if err != nil {
		r.Err = err
		return r
	}
	if err := client.Start(ctx); err != nil {
		r.Err = err
		return r
	}
	defer func() { _ = client.Stop(context.WithoutCancel(ctx)) }()
	start := time.Now()
	go func() {
		for i := 0; i < o.n; i += 1000 {
			params := make([]river.InsertManyParams, 0, 1000)
			for j := i; j < min(i+1000, o.n); j++ {
				params = append(params, river.InsertManyParams{Args: noopArgs{}})
			}
			if _, err := client.InsertManyFast(ctx, params); err != nil {
				fmt.Println("ceiling insert:", err)
				return
			}
		}
	}()
	select {
	case <-allDone:
	case <-time.After(10 * time.Minute):
		r.Err = fmt.Errorf("only %d of %d jobs worked", worked.Load(), o.n)
		return r
	}
	el := time.Since(start)
	r.add("jobs_per_s", float64(o.n)/el.Seconds(), "jobs/s")
	r.add("elapsed_s", el.Seconds(), "s")
	return r
}

type noopArgs struct{}

func (noopArgs) Kind() string { return "bench_noop" }

// runStats samples the process under test while a scenario runs.
type runStats struct {
	stop     chan struct{}
	done     chan struct{}
	maxConns int
}

func sampleRun(ctx context.Context, db *database) *runStats {
	s := &runStats{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			s.maxConns = max(s.maxConns, connections(ctx, db.pool))
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *runStats) finish() { close(s.stop); <-s.done }

// pipelineScenario: N change-log rows inserted by a separate writer in
// batched transactions; nObs observers × nAct webhooks each; events/s and
// deliveries/s from first insert to last delivery.
func pipelineScenario(ctx context.Context, o options, name string, nObs, nAct int) result {
	dpe := nObs * nAct
	r := result{Scenario: name, Params: map[string]any{"n": o.n, "observers": nObs, "actions_per_observer": nAct, "deliveries_per_job": perJob(o)}}
	db, err := newDatabase(ctx, o.admin, "fraiseql_bench_"+name)
	if err != nil {
		r.Err = err
		return r
	}
	defer db.drop(ctx, o.admin)
	recv, err := newReceiver(0, false)
	if err != nil {
		r.Err = err
		return r
	}
	defer recv.Close()
	var extra []string
	if o.profileDir != "" {
		extra = append(extra, "--pprof")
	}
	p, err := startRun(ctx, o.bin, db, configYAML(o, recv.URL(), nObs, nAct, o.workers, ""), extra...)
	if err != nil {
		r.Err = err
		return r
	}
	defer stop(p)
	want := int64(o.n * dpe)
	recv.Expect(want)
	wal0 := walLSN(ctx, db.pool)
	stats := sampleRun(ctx, db)
	start := time.Now()
	if o.profileDir != "" {
		go saveProfile(p.HTTPAddr(), filepath.Join(o.profileDir, name+".pprof"))
	}
	writerDone := make(chan time.Duration, 1)
	go func() {
		const batch = 500
		for i := 1; i <= o.n; i += batch {
			_, err := db.pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
				SELECT 'Order', 'o-' || g, 'INSERT', jsonb_build_object('n', g, 'status', 'new', 'total', 120.5)
				FROM generate_series($1::int, $2::int) g`, i, min(i+batch-1, o.n))
			if err != nil {
				fmt.Println("writer:", err)
				return
			}
		}
		writerDone <- time.Since(start)
	}()
	select {
	case <-recv.Done():
	case <-time.After(15 * time.Minute):
		stats.finish()
		r.Err = fmt.Errorf("only %d of %d deliveries arrived", recv.Count(), want)
		return r
	}
	el := recv.LastArrival().Sub(start)
	stats.finish()
	wrote := <-writerDone
	ps := readProcStats(p.Pid())
	wal := walLSN(ctx, db.pool) - wal0
	var jobs int64
	_ = db.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind LIKE 'fraiseql_observer_%'`).Scan(&jobs)
	batches := scrapeMetric(p.HTTPAddr(), "observer_batches_total")
	if o.audit {
		// Every record stored: the event's and its deliveries' (nothing
		// dropped, nothing left in the outbox).
		wantRecs := int64(o.n) * int64(1+dpe)
		var recs int64
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM observer_audit`).Scan(&recs); err != nil || recs >= wantRecs {
				break
			}
		}
		r.add("audit_records", float64(recs), "records")
		r.add("audit_stored_after_s", time.Since(start).Seconds(), "s")
		r.add("audit_dropped", scrapeMetric(p.HTTPAddr(), "observer_audit_dropped_total"), "records")
		if recs < wantRecs {
			r.Err = fmt.Errorf("only %d of %d audit records stored", recs, wantRecs)
		}
	}

	r.add("events_per_s", float64(o.n)/el.Seconds(), "events/s")
	r.add("deliveries_per_s", float64(want)/el.Seconds(), "deliveries/s")
	r.add("elapsed_s", el.Seconds(), "s")
	r.add("writer_rows_per_s", float64(o.n)/wrote.Seconds(), "rows/s")
	r.add("peak_rss_mib", float64(ps.PeakRSS)/(1<<20), "MiB")
	r.add("cpu_s", ps.CPUSeconds, "s")
	r.add("pg_connections_max", float64(stats.maxConns), "conns")
	r.add("river_rows_per_event", float64(jobs)/float64(o.n), "rows")
	r.add("enqueue_batches", batches, "tx")
	r.add("wal_bytes_per_event", float64(wal)/float64(o.n), "bytes")
	return r
}

// saveProfile stores a 5-second CPU profile of the process at addr.
func saveProfile(addr, path string) {
	resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=5")
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

// scrapeMetric reads one sample from the process's /metrics; -1 when it is
// absent or unreadable.
func scrapeMetric(addr, series string) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, ok, err := observertest.ReadMetric(ctx, addr, series)
	if err != nil || !ok {
		return -1
	}
	return v
}

// latencyScenario offers a fixed load of single-row transactions and reports
// commit→delivery percentiles, plus commit→job-fetched from River's rows.
func latencyScenario(ctx context.Context, o options) result {
	r := result{Scenario: "latency", Params: map[string]any{"rate": o.rate, "duration": o.duration.String(), "deliveries_per_job": perJob(o)}}
	db, err := newDatabase(ctx, o.admin, "fraiseql_bench_latency")
	if err != nil {
		r.Err = err
		return r
	}
	defer db.drop(ctx, o.admin)
	lr, err := runLatency(ctx, o, db, "", nil)
	if err != nil {
		r.Err = err
		return r
	}
	defer stop(lr.p)
	addPercentiles(&r, "commit_to_delivery", lr.latencies(time.Time{}, time.Time{}))

	riverStages(ctx, db, lr.committed, lr.arrived, &r)
	r.add("writer_late_ticks", float64(lr.late), "rows")
	// A failed first attempt is retried after the retry policy's delay (1s
	// by default) and shows as a far outlier: say so.
	failed := 0
	for _, l := range strings.Split(lr.p.Tail(), "\n") {
		if strings.Contains(l, "action failed") {
			failed++
			fmt.Fprintln(os.Stderr, "bench: latency: "+l)
		}
	}
	r.add("failed_attempts", float64(failed), "attempts")
	return r
}

// latencyRun is one run of the latency load: the `run` process (still
// running; the caller stops it), when each event committed and when it
// arrived.
type latencyRun struct {
	p         *observertest.Process
	committed []time.Time
	arrived   map[string]time.Time
	late      int64 // writes that started more than 10ms late
}

// runLatency starts `run` on db with one signed webhook per Order insert
// (extraYAML added before observers:), calls started, offers -rate
// single-row transactions for -duration and waits for every delivery.
func runLatency(ctx context.Context, o options, db *database, extraYAML string, started func(*observertest.Process)) (*latencyRun, error) {
	recv, err := newReceiver(0, true)
	if err != nil {
		return nil, err
	}
	defer recv.Close()
	cfg := configYAML(o, recv.URL(), 1, 1, o.workers, `{"id": "{{ event.entity_id }}"}`)
	cfg = strings.Replace(cfg, "observers:\n", extraYAML+"observers:\n", 1)
	p, err := startRun(ctx, o.bin, db, cfg)
	if err != nil {
		return nil, err
	}
	if started != nil {
		started(p)
	}
	total := int(float64(o.rate) * o.duration.Seconds())
	recv.Expect(int64(total))
	lr := &latencyRun{p: p}
	lr.committed, lr.late = offerLoad(ctx, db, o.rate, total)
	select {
	case <-recv.Done():
	case <-time.After(60 * time.Second):
		stop(p)
		return nil, fmt.Errorf("only %d of %d deliveries arrived", recv.Count(), total)
	}
	lr.arrived = recv.Arrivals()
	return lr, nil
}

// latencies lists commit→delivery (ms) of the events that committed within
// [from, to]; a zero bound is open.
func (lr *latencyRun) latencies(from, to time.Time) []float64 {
	lat := make([]float64, 0, len(lr.committed))
	for i, c := range lr.committed {
		if c.IsZero() || (!from.IsZero() && c.Before(from)) || (!to.IsZero() && c.After(to)) {
			continue
		}
		if a, ok := lr.arrived[fmt.Sprint("l-", i)]; ok {
			lat = append(lat, a.Sub(c).Seconds()*1000)
		}
	}
	return lat
}

// offerLoad inserts total single-row transactions at rate per second from 8
// writers and returns when each committed (zero when it failed) and how
// many writes started more than 10ms late.
func offerLoad(ctx context.Context, db *database, rate, total int) ([]time.Time, int64) {
	committed := make([]time.Time, total)
	var next atomic.Int64
	start := time.Now().Add(50 * time.Millisecond)
	interval := time.Second / time.Duration(rate)
	var wg sync.WaitGroup
	var late atomic.Int64
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				at := start.Add(time.Duration(i) * interval)
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				} else if d < -10*time.Millisecond {
					late.Add(1)
				}
				_, err := db.pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
					VALUES ('Order', $1, 'INSERT', '{"status": "new"}')`, fmt.Sprint("l-", i))
				if err != nil {
					fmt.Println("latency writer:", err)
					return
				}
				committed[i] = time.Now()
			}
		})
	}
	wg.Wait()
	return committed, late.Load()
}

// riverStages adds the percentiles of commit → enqueue transaction
// (created_at, which is now() of that transaction), commit → job fetched by
// a worker (attempted_at) and job fetched → delivery, from River's rows.
func riverStages(ctx context.Context, db *database, committed []time.Time, arrived map[string]time.Time, r *result) {
	rows, err := db.pool.Query(ctx, `SELECT c.object_id, d.created_at, d.attempted_at FROM observer_deliveries d
		JOIN core.tb_entity_change_log c ON c.pk_entity_change_log = d.seq`)
	if err != nil {
		return
	}
	defer rows.Close()
	var enq, fetched, fetchToDelivery []float64
	for rows.Next() {
		var id string
		var created, attempted *time.Time
		if rows.Scan(&id, &created, &attempted) != nil {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(id, "l-%d", &i); err != nil || i >= len(committed) || committed[i].IsZero() {
			continue
		}
		if created != nil {
			enq = append(enq, created.Sub(committed[i]).Seconds()*1000)
		}
		if attempted != nil {
			fetched = append(fetched, attempted.Sub(committed[i]).Seconds()*1000)
			if a, ok := arrived[id]; ok {
				fetchToDelivery = append(fetchToDelivery, a.Sub(*attempted).Seconds()*1000)
			}
		}
	}
	addPercentiles(r, "commit_to_enqueue_tx", enq)
	addPercentiles(r, "commit_to_job_fetched", fetched)
	addPercentiles(r, "job_fetched_to_delivery", fetchToDelivery)
}

func addPercentiles(r *result, name string, ms []float64) {
	if len(ms) == 0 {
		return
	}
	slices.Sort(ms)
	q := func(p float64) float64 { return ms[min(len(ms)-1, int(p*float64(len(ms))))] }
	r.add(name+"_p50_ms", q(0.50), "ms")
	r.add(name+"_p95_ms", q(0.95), "ms")
	r.add(name+"_p99_ms", q(0.99), "ms")
	r.add(name+"_max_ms", ms[len(ms)-1], "ms")
}

// concurrencyScenario: events × 3 actions against a receiver that sleeps
// 100ms, with one worker and with the default.
func concurrencyScenario(ctx context.Context, o options) result {
	r := result{Scenario: "concurrency", Params: map[string]any{"events": o.concurrencyN, "actions": 3, "receiver_delay": "100ms"}}
	var walls [2]float64
	for k, workers := range []int{1, o.workers} {
		el, err := concurrencyRun(ctx, o, workers)
		if err != nil {
			r.Err = err
			return r
		}
		walls[k] = el.Seconds()
	}
	r.add("wall_s_max_workers_1", walls[0], "s")
	r.add("wall_s_default", walls[1], "s")
	r.add("speedup", walls[0]/walls[1], "x")
	return r
}

func concurrencyRun(ctx context.Context, o options, workers int) (time.Duration, error) {
	db, err := newDatabase(ctx, o.admin, fmt.Sprintf("fraiseql_bench_concurrency_%d", workers))
	if err != nil {
		return 0, err
	}
	defer db.drop(ctx, o.admin)
	recv, err := newReceiver(100*time.Millisecond, false)
	if err != nil {
		return 0, err
	}
	defer recv.Close()
	p, err := startRun(ctx, o.bin, db, configYAML(o, recv.URL(), 1, 3, workers, ""))
	if err != nil {
		return 0, err
	}
	defer stop(p)
	recv.Expect(int64(o.concurrencyN * 3))
	start := time.Now()
	if _, err := db.pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
		SELECT 'Order', 'c-' || g, 'INSERT', '{}' FROM generate_series(1, $1::int) g`, o.concurrencyN); err != nil {
		return 0, err
	}
	select {
	case <-recv.Done():
	case <-time.After(10 * time.Minute):
		return 0, fmt.Errorf("only %d deliveries arrived", recv.Count())
	}
	return recv.LastArrival().Sub(start), nil
}

// idleScenario: CPU and memory of an idle `run`.
func idleScenario(ctx context.Context, o options) result {
	r := result{Scenario: "idle", Params: map[string]any{"duration": o.idle.String()}}
	db, err := newDatabase(ctx, o.admin, "fraiseql_bench_idle")
	if err != nil {
		r.Err = err
		return r
	}
	defer db.drop(ctx, o.admin)
	p, err := startRun(ctx, o.bin, db, configYAML(o, "http://127.0.0.1:9", 1, 1, o.workers, ""))
	if err != nil {
		r.Err = err
		return r
	}
	defer stop(p)
	time.Sleep(time.Second) // let start-up work settle before measuring
	s0 := readProcStats(p.Pid())
	time.Sleep(o.idle)
	s1 := readProcStats(p.Pid())
	r.add("cpu_percent_of_one_core", (s1.CPUSeconds-s0.CPUSeconds)/o.idle.Seconds()*100, "%")
	r.add("rss_mib", float64(s1.RSS)/(1<<20), "MiB")
	r.add("pg_connections", float64(connections(ctx, db.pool)), "conns")
	return r
}

// cacheScenario is the seed's 1000-webhook example: events where the same
// change repeats (entities × identical copies), against a receiver that
// takes cacheReceiverDelay per request, without and with
// `cache: {backend: postgres}`. Wall time runs from the first insert until
// every job has completed.
func cacheScenario(ctx context.Context, o options) result {
	entities, copies := 100, 10
	if o.quick {
		entities, copies = 20, 10
	}
	r := result{Scenario: "cache", Params: map[string]any{"events": entities * copies, "entities": entities,
		"copies_per_entity": copies, "receiver_delay": cacheReceiverDelay.String(),
		"workers": observers.WorkersConfig{MaxWorkers: o.workers}.WithDefaults().MaxWorkers}}
	for _, c := range []struct{ name, block string }{
		{"no_cache", ""},
		{"cache_postgres", "cache: {backend: postgres, ttl: 5m}\n"},
	} {
		el, requests, hits, errs, err := cacheRun(ctx, o, c.name, c.block, entities, copies)
		if err != nil {
			r.Err = fmt.Errorf("%s: %w", c.name, err)
			return r
		}
		r.add("wall_s_"+c.name, el.Seconds(), "s")
		r.add("requests_"+c.name, float64(requests), "requests")
		if c.block != "" {
			r.add("cache_hits_"+c.name, hits, "hits")
			r.add("cache_errors_"+c.name, max(errs, 0), "errors")
		}
	}
	r.add("speedup", r.get("wall_s_no_cache")/r.get("wall_s_cache_postgres"), "x")
	return r
}

// cacheReceiverDelay stands for an external API's latency.
const cacheReceiverDelay = 50 * time.Millisecond

func cacheRun(ctx context.Context, o options, name, block string, entities, copies int) (el time.Duration, requests int64, hits, errs float64, err error) {
	db, err := newDatabase(ctx, o.admin, "fraiseql_bench_cache_"+name)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer db.drop(ctx, o.admin)
	recv, err := newReceiver(cacheReceiverDelay, false)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer recv.Close()
	cfg := strings.Replace(configYAML(o, recv.URL(), 1, 1, o.workers, ""), "observers:\n", block+"observers:\n", 1)
	p, err := startRun(ctx, o.bin, db, cfg)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer stop(p)
	n := entities * copies
	start := time.Now()
	// Copy k of every entity in one transaction; the copies follow each other.
	for k := range copies {
		if _, err := db.pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
			SELECT 'Order', 'c-' || g, 'INSERT', jsonb_build_object('n', g, 'status', 'new') FROM generate_series(1, $1::int) g`, entities); err != nil {
			return 0, 0, 0, 0, fmt.Errorf("insert copy %d: %w", k, err)
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var done int
		if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM observer_deliveries WHERE state = 'completed'`).Scan(&done); err != nil {
			return 0, 0, 0, 0, err
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, 0, 0, fmt.Errorf("only %d of %d jobs completed", done, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	el = time.Since(start)
	return el, recv.Count(), scrapeMetric(p.HTTPAddr(), "observer_cache_hits_total"),
		scrapeMetric(p.HTTPAddr(), `observer_cache_errors_total{backend="postgres"}`), nil
}

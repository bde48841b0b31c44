package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"
)

// dlqBatches is how many of the dlq scenario's dead deliveries sit in dead
// batch jobs (of 100 each) rather than in action jobs of their own: a dead
// batch job is rare, but retry-all handles both.
const dlqBatches = 10

// dlqScenario fills the dead-letter queue with o.dlqN dead deliveries,
// written straight into river_job as fault injection (the retry is what is
// measured, not how deliveries die): o.dlqN - 1000 cancelled or discarded
// action jobs and dlqBatches cancelled batch jobs of 100 deliveries, with
// their changes and configuration version. It times `dlq list --limit 20`,
// `dlq stats` and `dlq retry-all` (rows/s) with the real binary, then
// checks that every delivery is available again and none is dead. No `run`
// process works the jobs meanwhile.
func dlqScenario(ctx context.Context, o options) result {
	n := o.dlqN
	inBatches := min(dlqBatches*100, n/2)
	r := result{Scenario: "dlq", Params: map[string]any{"dead": n, "in_batch_jobs": inBatches}}
	db, err := newDatabase(ctx, o.admin, "fraiseql_bench_dlq")
	if err != nil {
		r.Err = err
		return r
	}
	defer db.drop(ctx, o.admin)
	start := time.Now()
	if err := seedDeadLetters(ctx, db, n, inBatches); err != nil {
		r.Err = err
		return r
	}
	r.add("seed_s", time.Since(start).Seconds(), "s")

	for _, c := range []struct {
		name string
		args []string
	}{
		{"list_ms", []string{"dlq", "list", "--limit", "20"}},
		{"stats_ms", []string{"dlq", "stats"}},
	} {
		el, _, err := runCLI(ctx, o.bin, db.url, c.args...)
		if err != nil {
			r.Err = err
			return r
		}
		r.add(c.name, float64(el.Microseconds())/1000, "ms")
	}

	el, out, err := runCLI(ctx, o.bin, db.url, "dlq", "retry-all", "--format", "json")
	if err != nil {
		r.Err = err
		return r
	}
	var sum struct {
		Retried, Skipped, Failed int
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		r.Err = fmt.Errorf("read retry-all's output: %w", err)
		return r
	}
	var dead, available int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state IN ('cancelled', 'discarded') AND kind = 'fraiseql_observer_action'),
		count(*) FILTER (WHERE state = 'available') FROM river_job`).Scan(&dead, &available); err != nil {
		r.Err = err
		return r
	}
	if sum.Retried != n || sum.Skipped+sum.Failed != 0 || dead != 0 || available != n {
		r.Err = fmt.Errorf("retry-all retried %d of %d (skipped %d, failed %d); %d jobs available, %d still dead",
			sum.Retried, n, sum.Skipped, sum.Failed, available, dead)
		return r
	}
	r.add("retry_all_s", el.Seconds(), "s")
	r.add("retry_rows_per_s", float64(n)/el.Seconds(), "rows/s")
	return r
}

// runCLI runs the binary with args against dbURL and returns how long it
// took and its stdout.
func runCLI(ctx context.Context, bin, dbURL string, args ...string) (time.Duration, []byte, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append(args, "--database-url", dbURL)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, nil, fmt.Errorf("%v: %w\n%s", args, err, errOut.String())
	}
	return time.Since(start), out.Bytes(), nil
}

// dlqBenchConfig is the configuration version the dead deliveries name.
const dlqBenchConfig = `listener:
  id: bench
allow_private_targets: true
observers:
  obs_webhook:
    entity: Order
    events: [INSERT]
    actions:
      - type: webhook
        url: http://127.0.0.1:9/orders
        signing_secret: ` + benchSecret + `
    retry: {max_attempts: 5}
`

// seedDeadLetters writes n changes and their dead deliveries, the last
// inBatches of them in cancelled batch jobs of 100.
func seedDeadLetters(ctx context.Context, db *database, n, inBatches int) error {
	var version int64
	if err := db.pool.QueryRow(ctx, `INSERT INTO observer_config_versions (hash, source) VALUES ('bench-dlq', $1) RETURNING id`,
		dlqBenchConfig).Scan(&version); err != nil {
		return err
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (pk_entity_change_log, object_type, object_id, modification_type, object_data)
		SELECT g, 'Order', 'o-' || g, 'INSERT', jsonb_build_object('n', g, 'status', 'new', 'total', 120.5)
		FROM generate_series(1, $1::int) g`, n); err != nil {
		return err
	}
	const errs = `ARRAY[jsonb_build_object('at', now() - interval '1 hour', 'attempt', 1, 'error',
		'webhook POST http://127.0.0.1:9/orders responded 400 Bad Request: "{\"error\": \"missing field customer\"}"', 'trace', '')]`
	for i := 1; i <= n-inBatches; i += 10_000 {
		if _, err := db.pool.Exec(ctx, `INSERT INTO river_job (kind, queue, state, attempt, max_attempts, attempted_at, finalized_at, errors, args)
			SELECT 'fraiseql_observer_action', 'fraiseql_observers_webhook',
				(CASE WHEN g % 10 = 0 THEN 'discarded' ELSE 'cancelled' END)::river_job_state,
				CASE WHEN g % 10 = 0 THEN 5 ELSE 1 END, 5, now() - interval '1 hour', now() - make_interval(secs => $3::int - g), `+errs+`,
				jsonb_build_object('seq', g, 'event_id', c.id, 'entity', 'Order', 'observer', 'obs_webhook', 'action', 0,
					'action_type', 'webhook', 'config_version', $4::bigint)
			FROM generate_series($1::int, $2::int) g JOIN core.tb_entity_change_log c ON c.pk_entity_change_log = g`,
			i, min(i+9_999, n-inBatches), n, version); err != nil {
			return err
		}
	}
	for first := n - inBatches + 1; first <= n; first += 100 {
		if _, err := db.pool.Exec(ctx, `INSERT INTO river_job (kind, queue, state, attempt, max_attempts, attempted_at, finalized_at, errors, args)
			SELECT 'fraiseql_observer_batch', 'fraiseql_observers_webhook', 'cancelled', 1, 25, now(), now(), `+errs+`,
				jsonb_build_object('action_type', 'webhook', 'config_version', $3::bigint, 'deliveries', jsonb_build_array(
					jsonb_build_object('observer', 'obs_webhook', 'action', 0, 'seqs', (SELECT jsonb_agg(g) FROM generate_series($1::int, $2::int) g))))`,
			first, min(first+99, n), version); err != nil {
			return err
		}
	}
	_, err := db.pool.Exec(ctx, `ANALYZE river_job`)
	return err
}

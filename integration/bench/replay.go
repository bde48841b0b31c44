package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"
)

// replayScenario: o.replayN changes delivered once by a running `run`
// (so its listener has passed them), then `fraiseql-observers replay --from
// 0` of all of them. Reports the replay command's rate (changes read,
// matched and enqueued per second of its wall time, process start
// included) and the time until the running process delivered every
// replayed change to a loopback receiver.
func replayScenario(ctx context.Context, o options) result {
	n := o.replayN
	r := result{Scenario: "replay", Params: map[string]any{"n": n, "deliveries_per_job": perJob(o)}}
	db, err := newDatabase(ctx, o.admin, "fraiseql_bench_replay")
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
	p, err := startRun(ctx, o.bin, db, configYAML(o, recv.URL(), 1, 1, o.workers, ""))
	if err != nil {
		r.Err = err
		return r
	}
	defer stop(p)

	// The original deliveries: the listener passes every change.
	recv.Expect(int64(n))
	for i := 1; i <= n; i += 5000 {
		if _, err := db.pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
			SELECT 'Order', 'o-' || g, 'INSERT', jsonb_build_object('n', g, 'status', 'new', 'total', 120.5)
			FROM generate_series($1::int, $2::int) g`, i, min(i+4999, n)); err != nil {
			r.Err = err
			return r
		}
	}
	select {
	case <-recv.Done():
	case <-time.After(15 * time.Minute):
		r.Err = fmt.Errorf("only %d of %d original deliveries arrived", recv.Count(), n)
		return r
	}

	recv.Expect(int64(2 * n))
	start := time.Now()
	cmd := exec.CommandContext(ctx, o.bin, "replay", "--database-url", db.url, "--from", "0", "--format", "json")
	out, err := cmd.Output()
	enqueued := time.Since(start)
	if err != nil {
		r.Err = fmt.Errorf("replay: %w: %s", err, out)
		return r
	}
	var res struct {
		Replay struct {
			State  string `json:"state"`
			Counts struct {
				EventsRead int64 `json:"events_read"`
				Deliveries int64 `json:"deliveries"`
			} `json:"counts"`
		} `json:"replay"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Replay.State != "finished" || res.Replay.Counts.Deliveries != int64(n) {
		r.Err = fmt.Errorf("replay did not enqueue %d deliveries (%v): %s", n, err, out)
		return r
	}
	select {
	case <-recv.Done():
	case <-time.After(15 * time.Minute):
		r.Err = fmt.Errorf("only %d of %d replayed deliveries arrived", recv.Count()-int64(n), n)
		return r
	}
	delivered := recv.LastArrival().Sub(start)
	r.add("replay_events_per_s", float64(res.Replay.Counts.EventsRead)/enqueued.Seconds(), "events/s")
	r.add("replay_command_s", enqueued.Seconds(), "s")
	r.add("all_delivered_s", delivered.Seconds(), "s")
	r.add("delivered_per_s", float64(n)/delivered.Seconds(), "deliveries/s")
	return r
}

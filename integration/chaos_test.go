//go:build chaos

package integration

import (
	"context"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

var chaosDurationFlag = flag.Duration("chaos.duration", 0, "length of the chaos phase (default $CHAOS_DURATION, else 60s)")

// Chaos parameters. Everything waits with a bound; nothing asserts speed.
const (
	chaosInstances   = 3
	chaosListenerID  = "chaos"
	chaosEntity      = "ChaosItem"
	chaosFailRate    = 0.08 // share of requests answered 500
	chaosHangRate    = 0.03 // share of requests left hanging until the action timeout
	chaosHangMax     = 5 * time.Second
	chaosRedisOutage = 3 * time.Second
	failoverBound    = 60 * time.Second
	recoveryBound    = 2 * time.Minute
)

// chaosActions are the (observer, path) pairs every event is delivered to.
var chaosActions = [][2]string{{"chaos_a", "/a/0"}, {"chaos_a", "/a/1"}, {"chaos_b", "/b/0"}}

func chaosConfig(recvURL, redisAddr, prefix string) string {
	return fmt.Sprintf(`listener:
  id: %[1]s
  batch_size: 200
  poll_interval: 200ms
allow_private_targets: true
workers:
  max_workers: 50
circuit_breaker: {timeout: 2s}
redis: {url: 'redis://%[3]s/0', key_prefix: '%[4]s'}
dedup: {enabled: true, backend: redis, window: 2m, on_error: process}
observers:
  chaos_a:
    entity: %[5]s
    events: [INSERT]
    actions:
      - type: webhook
        url: %[2]s/a/0
        timeout: 2s
        signing_secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
      - type: webhook
        url: %[2]s/a/1
        timeout: 2s
    retry: {max_attempts: 25, initial_delay: 100ms, max_delay: 2s}
  chaos_b:
    entity: %[5]s
    events: [INSERT, UPDATE]
    actions:
      - type: webhook
        url: %[2]s/b/0
        timeout: 2s
    retry: {max_attempts: 25, initial_delay: 100ms, max_delay: 2s}
`, chaosListenerID, recvURL, redisAddr, prefix, chaosEntity)
}

// chaosDuration is -chaos.duration, else $CHAOS_DURATION, else 60s.
func chaosDuration(t *testing.T) time.Duration {
	if *chaosDurationFlag > 0 {
		return *chaosDurationFlag
	}
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "CHAOS_DURATION")
		return d
	}
	return 60 * time.Second
}

// TestChaos runs three instances under faults (SIGKILLs, a leader kill, a
// Postgres restart, a Redis cut) while a writer inserts changes and a flaky
// receiver answers, then checks that every (event, action) was delivered and
// that no job is stuck. See README "Chaos suite".
func TestChaos(t *testing.T) {
	duration := chaosDuration(t)
	drainTimeout := envDuration(t, "CHAOS_DRAIN_TIMEOUT", 4*time.Minute)
	rate := 25
	if v := os.Getenv("CHAOS_RATE"); v != "" {
		r, err := strconv.Atoi(v)
		require.NoError(t, err, "CHAOS_RATE")
		rate = max(r, 1)
	}
	adminURL := cmpOr(os.Getenv("CHAOS_DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	cluster := strings.Fields(cmpOr(os.Getenv("CHAOS_PG_CLUSTER"), defaultCluster()))
	require.Len(t, cluster, 2, "CHAOS_PG_CLUSTER is '<version> <name>', e.g. '15 main'")
	redisAddr := cmpOr(os.Getenv("CHAOS_REDIS_ADDR"), "127.0.0.1:6379")
	ctx := context.Background()

	au, err := url.Parse(adminURL)
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "fraiseql-observers-chaos-")
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	s := &chaosSuite{t: t, dir: dir, pgHost: au.Hostname(), pgPort: cmpOr(au.Port(), "5432"),
		pgVer: cluster[0], pgName: cluster[1], stopSupv: make(chan struct{}), supvDone: make(chan struct{})}
	require.NoError(t, pgIsReady(ctx, s.pgHost, s.pgPort, 30*time.Second))

	// Redis must answer directly; the instances reach it through the proxy.
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	t.Cleanup(func() { _ = rdb.Close() })
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	require.NoError(t, rdb.Ping(pctx).Err(), "Redis at %s (CHAOS_REDIS_ADDR) must answer", redisAddr)
	pcancel()
	prefix := "fraiseql-observers-chaos:" + randHex(6) + ":"
	t.Cleanup(func() { deleteRedisPrefix(rdb, prefix) })
	proxy := newTCPProxy(t, redisAddr)

	// A fresh database, migrated by the binary; dropped at the end (after
	// Postgres is back up, and after every process is gone: cleanups run
	// last-registered first).
	dbName := fmt.Sprintf("fraiseql_observers_chaos_%d_%s", time.Now().Unix(), randHex(3))
	adminExecURL(t, adminURL, "CREATE DATABASE "+pgx.Identifier{dbName}.Sanitize())
	t.Cleanup(func() {
		if err := pgIsReady(context.Background(), s.pgHost, s.pgPort, recoveryBound); err != nil {
			t.Errorf("%v", err)
		}
		adminExecURL(t, adminURL, "DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)")
	})
	du := *au
	du.Path = "/" + dbName
	dbURL := du.String()
	q := du.Query()
	q.Set("pool_max_conns", "8")
	du.RawQuery = q.Encode()
	s.procURL = du.String()
	mctx, mcancel := context.WithTimeout(ctx, 2*time.Minute)
	out, err := exec.CommandContext(mctx, binary, "migrate", "--database-url", dbURL).CombinedOutput()
	mcancel()
	require.NoError(t, err, "migrate:\n%s", out)

	pcfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(t, err)
	pcfg.MaxConns = 4
	s.pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	require.NoError(t, err)
	t.Cleanup(s.pool.Close)

	recv := newChaosReceiver(t, chaosFailRate, chaosHangRate, chaosHangMax)
	s.cfgPath = filepath.Join(s.dir, "observers.yaml")
	require.NoError(t, os.WriteFile(s.cfgPath, []byte(chaosConfig(recv.URL(), proxy.Addr(), prefix)), 0o600))

	// Every process is killed at the end, whatever happens.
	t.Cleanup(func() {
		s.mu.Lock()
		all := append([]*chaosProc(nil), s.all...)
		s.mu.Unlock()
		for _, p := range all {
			p.Kill()
		}
	})

	s.mu.Lock()
	for i := range chaosInstances {
		s.spawnLocked(i)
	}
	first := append([]*chaosProc(nil), s.all...)
	s.mu.Unlock()
	for _, p := range first {
		select {
		case <-p.Started():
		case <-p.Exited():
			t.Fatalf("run exited before starting: %v\n%s", p.ExitErr(), p.Tail())
		case <-time.After(2 * time.Minute):
			t.Fatalf("run did not start in time\n%s", p.Tail())
		}
	}
	s.began = time.Now()
	go s.supervise()
	stopSupervisor := sync.OnceFunc(func() { close(s.stopSupv); <-s.supvDone })
	t.Cleanup(stopSupervisor)
	_, _, ok := s.waitLeader(ctx, time.Time{}, 0, failoverBound)
	require.True(t, ok, "a leader is elected")

	// The writer: one change per tick, each with unique content (so content
	// dedup never skips one). Failed inserts (Postgres down) are counted; the
	// change log itself is the truth of what was written.
	var writes, writeErrs atomic.Int64
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			ictx, cancel := context.WithTimeout(wctx, 3*time.Second)
			_, err := s.pool.Exec(ictx, `INSERT INTO core.tb_entity_change_log
				(object_type, object_id, modification_type, object_data) VALUES ($1, $2, 'INSERT', $3::jsonb)`,
				chaosEntity, fmt.Sprint("item-", n), fmt.Sprintf(`{"n": %d, "run": %q}`, n, dbName))
			cancel()
			if err != nil {
				writeErrs.Add(1)
			} else {
				writes.Add(1)
			}
		}
	}()

	// The chaos phase: a fault every 2-5s. The leader kill, the Postgres
	// restart and the Redis cut happen once each, at 25%, 50% and 70%.
	var (
		leaderKilled, pgRestarted, redisCut bool
		pgr                                 pgRestart
		redisCutAt                          time.Duration
		redisConnsCut                       int
		cpBeforeCut, cpAfterCut             int64
	)
	end := s.began.Add(duration)
	doRedisCut := func() {
		redisCutAt = s.since()
		cpBeforeCut, _ = s.checkpoint(ctx)
		redisConnsCut = proxy.Cut()
		time.Sleep(chaosRedisOutage) // the outage itself, not a wait for a result
		cpAfterCut, _ = s.checkpoint(ctx)
		proxy.Restore()
		redisCut = true
	}
	for time.Now().Before(end) {
		time.Sleep(min(time.Until(end), time.Duration(2000+mrand.IntN(3000))*time.Millisecond))
		if !time.Now().Before(end) {
			break
		}
		el := time.Since(s.began)
		switch {
		case !leaderKilled && el >= duration/4:
			leaderKilled = s.killLeader(ctx)
		case !pgRestarted && el >= duration/2:
			pgr, pgRestarted = s.restartPostgres(ctx), true
		case !redisCut && el >= duration*7/10:
			doRedisCut()
		default:
			s.kill(ctx, mrand.IntN(chaosInstances), false)
		}
	}
	// A short run still gets every planned fault.
	if !leaderKilled {
		s.killLeader(ctx)
	}
	if !pgRestarted {
		pgr = s.restartPostgres(ctx)
	}
	if !redisCut {
		doRedisCut()
	}
	chaosPhase := time.Since(s.began)
	stopWriter()
	<-writerDone

	// Drain: the checkpoint passes the last change and no job is left to run.
	drainStart := time.Now()
	var lastPk, cp int64
	var pendingStates map[string]int
	drained := false
	for time.Since(drainStart) < drainTimeout {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err1 := s.pool.QueryRow(qctx, `SELECT coalesce(max(pk_entity_change_log), 0) FROM core.tb_entity_change_log`).Scan(&lastPk)
		cancel()
		cp, _ = s.checkpoint(ctx)
		pendingStates = jobStates(ctx, s.pool, "available", "running", "retryable", "scheduled", "pending")
		if err1 == nil && cp >= lastPk && pendingStates != nil && len(pendingStates) == 0 {
			drained = true
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	drainTook := time.Since(drainStart)
	stopSupervisor()

	// Stop every instance cleanly.
	s.mu.Lock()
	live := []*chaosProc{}
	for _, p := range s.slots {
		if p != nil && !p.isExited() {
			p.killedBy = true
			live = append(live, p)
		}
	}
	s.mu.Unlock()
	for _, p := range live {
		_ = p.Signal(syscall.SIGTERM)
	}
	for _, p := range live {
		select {
		case <-p.Exited():
			if p.ExitErr() != nil {
				t.Errorf("pid %d exited with %v after SIGTERM (log %s)\n%s", p.Pid(), p.ExitErr(), p.LogPath(), p.Tail())
			}
		case <-time.After(45 * time.Second):
			t.Errorf("pid %d did not stop after SIGTERM (log %s)", p.Pid(), p.LogPath())
		}
	}

	// What should have been delivered.
	rows, err := s.pool.Query(ctx, `SELECT id::text FROM core.tb_entity_change_log WHERE object_type = $1`, chaosEntity)
	require.NoError(t, err)
	changeIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	expected := map[string]bool{}
	for _, id := range changeIDs {
		for _, a := range chaosActions {
			expected[id+"|"+a[0]+"|"+a[1]] = true
		}
	}
	states := jobStates(ctx, s.pool)
	perChange := jobCounts(t, s.pool)

	// What the receiver saw.
	seen := recv.snapshot()
	deliveredKeys := map[string]bool{}
	keyIDs := map[string]int{}
	duplicates, ambiguous := 0, 0
	var requests int
	for id, rec := range seen {
		requests += rec.Requests
		if len(rec.Keys) != 1 {
			ambiguous++
			t.Errorf("webhook-id %s was used for %d different (event, action) pairs: %v", id, len(rec.Keys), rec.Keys)
		}
		for k := range rec.Keys {
			keyIDs[k]++
			if rec.Successes > 0 {
				deliveredKeys[k] = true
			}
		}
		if rec.Successes > 1 {
			duplicates += rec.Successes - 1
		}
	}
	var missing []string
	for k := range expected {
		if !deliveredKeys[k] {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	accepted, cutConns, refused := proxy.stats()

	// The report.
	var b strings.Builder
	s.mu.Lock()
	fmt.Fprintf(&b, "chaos report\n")
	fmt.Fprintf(&b, "  duration:              %s chaos + %s drain (requested %s)\n", chaosPhase.Round(time.Millisecond), drainTook.Round(time.Millisecond), duration)
	fmt.Fprintf(&b, "  events:                %d (writer: %d ok, %d failed inserts, %d/s)\n", len(changeIDs), writes.Load(), writeErrs.Load(), rate)
	fmt.Fprintf(&b, "  expected deliveries:   %d (%d events x %d actions)\n", len(expected), len(changeIDs), len(chaosActions))
	fmt.Fprintf(&b, "  deliveries seen:       %d of %d pairs got a 2xx; %d distinct webhook-ids\n", len(deliveredKeys), len(expected), len(seen))
	_, fails, hangs, oks := recv.counts()
	fmt.Fprintf(&b, "  requests:              %d (%d answered 500, %d left hanging, %d answered 200)\n", requests, fails, hangs, oks)
	fmt.Fprintf(&b, "  duplicates seen:       %d (2xx for an already delivered webhook-id; allowed)\n", duplicates)
	fmt.Fprintf(&b, "  jobs by state:         %v\n", states)
	fmt.Fprintf(&b, "  instance kills:        %d (SIGKILL; %d processes started in all)\n", s.instanceKills, s.spawns)
	fmt.Fprintf(&b, "  leader kills:          %d\n", s.leaderKills)
	fmt.Fprintf(&b, "  unexpected exits:      %d after starting, %d while starting (restarted like killed ones)\n", s.crashExits, s.startupExits)
	fmt.Fprintf(&b, "  failovers:             %d\n", len(s.failovers))
	for _, f := range s.failovers {
		kind := "random kill hit the leader"
		if f.Planned {
			kind = "leader kill"
		}
		took := "NO NEW LEADER"
		if f.Took >= 0 {
			took = f.Took.String()
		}
		fmt.Fprintf(&b, "    t+%-10s %-27s pid %d -> %d in %s\n", f.At, kind, f.OldPid, f.NewPid, took)
	}
	fmt.Fprintf(&b, "  postgres restart:      t+%s; accepting connections after %s, new leader after %s, pipeline moving after %s\n",
		pgr.At, fmtDur(pgr.Ready), fmtDur(pgr.Leader), fmtDur(pgr.Pipeline))
	fmt.Fprintf(&b, "  redis cut:             t+%s for %s; %d connections cut, %d refused while down, %d proxied in all; checkpoint %d -> %d during the cut\n",
		redisCutAt, chaosRedisOutage, redisConnsCut, refused, accepted, cpBeforeCut, cpAfterCut)
	if cutConns == 0 {
		fmt.Fprintf(&b, "    (no Redis connection was open at the cut)\n")
	}
	for _, n := range s.exitNotes {
		fmt.Fprintf(&b, "  exit: %s\n", n)
	}
	s.mu.Unlock()
	t.Log("\n" + b.String())
	if p := os.Getenv("CHAOS_REPORT"); p != "" {
		_ = os.WriteFile(p, []byte(b.String()), 0o644)
	}

	// The assertions.
	require.Empty(t, recv.malformed(), "malformed webhook requests")
	hint := ""
	if pendingStates["running"] > 0 {
		hint = "jobs left 'running' by a SIGKILLed instance wait for River's job rescuer " +
			"(RescueStuckJobsAfter, 1h unless the River client sets it)\n"
	}
	require.True(t, drained, "not drained after %s: checkpoint %d, last change %d, jobs left: %v\n%s%s",
		drainTimeout, cp, lastPk, pendingStates, hint, stuckJobs(ctx, s.pool))
	require.NotEmpty(t, changeIDs, "the writer wrote nothing")
	for _, st := range []string{"available", "running", "retryable", "scheduled", "pending", "discarded", "cancelled"} {
		require.Zero(t, states[st], "jobs %s: %v\n%s", st, states, stuckJobs(ctx, s.pool))
	}
	require.Len(t, perChange, len(changeIDs), "one set of jobs per change")
	for seq, n := range perChange {
		require.Equal(t, len(chaosActions), n, "change %d has %d jobs, want one per action", seq, n)
	}
	require.Empty(t, missing, "%d of %d (event, action) pairs never got a 2xx (first: %v)", len(missing), len(expected), missing[:min(len(missing), 5)])
	require.Zero(t, ambiguous)
	require.Len(t, seen, len(expected), "distinct webhook-ids = events x actions")
	require.Len(t, keyIDs, len(expected), "every (event, action) pair has exactly one webhook-id")
	for k, n := range keyIDs {
		require.Equal(t, 1, n, "pair %s arrived under %d webhook-ids", k, n)
	}
}

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

func orderObserver(url string) map[string]string {
	return map[string]string{"order_created": fmt.Sprintf(`entity: Order
events: [INSERT]
actions:
  - type: webhook
    url: %s/orders
    signing_secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
retry: {max_attempts: 5, initial_delay: 50ms, max_delay: 200ms}
`, url)}
}

// The seed's checkpoint scenario: delivered once, checkpoint recorded, not
// delivered again after a restart; changes made while down arrive after it.
func TestCheckpointSurvivesRestart(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := webhookConfig("", orderObserver(recv.URL()))
	ctx := context.Background()

	p := observertest.StartProcess(t, runOptions(url, cfg))
	_, err := pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data) VALUES ('Order', 'test-123', 'INSERT', '{"status": "new"}');`)
	require.NoError(t, err)
	d := recv.WaitN(t, 1, 30*time.Second)[0]
	var env map[string]any
	require.NoError(t, json.Unmarshal(d.Body, &env))
	require.Equal(t, "Order", env["entity_type"])
	require.Equal(t, "test-123", env["entity_id"])
	require.Equal(t, "INSERT", env["event_type"])
	require.Equal(t, "order_created", env["observer"])
	require.Equal(t, map[string]any{"status": "new"}, env["data"])

	var eventID int64
	require.Eventually(t, func() bool {
		return pool.QueryRow(ctx, `SELECT event_id FROM observer_checkpoints WHERE listener_id = 'it'`).Scan(&eventID) == nil && eventID > 0
	}, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, p.Stop(stopTimeout))

	second := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "while-down", Kind: "INSERT", Data: `{"status":"new"}`})
	require.Greater(t, second, eventID)
	observertest.StartProcess(t, runOptions(url, cfg))
	d2 := recv.WaitN(t, 1, 30*time.Second)[0]
	require.Contains(t, string(d2.Body), "while-down")
	recv.Quiet(t, 500*time.Millisecond)
	require.Len(t, recv.All(), 2, "the first event must not be delivered again")
	require.Equal(t, map[int64]int{eventID: 1, second: 1}, jobCounts(t, pool))
}

// A bigserial is not commit order: B takes a later pk but commits first, A
// commits last. Both are delivered, each exactly once; the open transaction
// delays delivery of B, it does not lose A.
func TestCommitOrderNeverLosesAnEvent(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	p := observertest.StartProcess(t, runOptions(url, webhookConfig("", orderObserver(recv.URL()))))
	ctx := context.Background()

	txA, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer txA.Rollback(ctx)
	var pkA, pkB int64
	require.NoError(t, txA.QueryRow(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data)
		VALUES ('Order', 'A', 'INSERT', '{}') RETURNING pk_entity_change_log`).Scan(&pkA))
	pkB = observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "B", Kind: "INSERT", Data: `{}`})
	require.Greater(t, pkB, pkA)

	// While A is open, B is held back by the horizon (not delivered, not skipped).
	recv.Quiet(t, 700*time.Millisecond)
	var cp int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT event_id FROM observer_checkpoints WHERE listener_id = 'it'`).Scan(&cp))
	require.Less(t, cp, pkA, "the checkpoint must not pass an open transaction's row")
	require.Eventually(t, func() bool {
		return strings.Contains(observertest.Metrics(t, p.HTTPAddr()), "observer_horizon_held_events 1\n")
	}, 10*time.Second, 50*time.Millisecond, "the held-back row is visible in the metrics")

	require.NoError(t, txA.Commit(ctx))
	got := recv.WaitN(t, 2, 30*time.Second)
	ids := map[string]bool{}
	for _, d := range got {
		var env map[string]any
		require.NoError(t, json.Unmarshal(d.Body, &env))
		ids[env["entity_id"].(string)] = true
	}
	require.Equal(t, map[string]bool{"A": true, "B": true}, ids)
	recv.Quiet(t, 300*time.Millisecond)
	require.Equal(t, map[int64]int{pkA: 1, pkB: 1}, jobCounts(t, pool))
}

// A change held back by a transaction that writes no change (so sends no
// NOTIFY when it ends) is delivered once that transaction ends, without
// waiting for the poll interval (here 10 minutes).
func TestHeldChangeIsDeliveredWithoutAPoll(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := webhookConfig("", orderObserver(recv.URL()))
	require.Contains(t, cfg, "poll_interval: 200ms")
	observertest.StartProcess(t, runOptions(url, strings.Replace(cfg, "poll_interval: 200ms", "poll_interval: 10m", 1)))
	ctx := context.Background()

	// Wake-ups work: a change is delivered on its NOTIFY.
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "first", Kind: "INSERT", Data: `{}`})
	recv.WaitN(t, 1, 30*time.Second)

	other, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer other.Rollback(ctx)
	_, err = other.Exec(ctx, `CREATE TEMP TABLE holder (x int); INSERT INTO holder VALUES (1)`) // takes a transaction id
	require.NoError(t, err)
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "held", Kind: "INSERT", Data: `{}`}) // its NOTIFY arrives while it is held
	recv.Quiet(t, 300*time.Millisecond)
	require.NoError(t, other.Commit(ctx))
	got := recv.WaitN(t, 1, 30*time.Second)
	var env map[string]any
	require.NoError(t, json.Unmarshal(got[0].Body, &env))
	require.Equal(t, "held", env["entity_id"])
}

// A crash between the job insert and the commit replays the batch: after a
// restart every event has exactly one job per action.
func TestCrashInsideEnqueueTransaction(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	obs := orderObserver(recv.URL())
	obs["order_audit"] = fmt.Sprintf("entity: \"*\"\nevents: [INSERT, UPDATE]\nactions:\n  - type: webhook\n    url: %s/audit\n", recv.URL())
	cfg := webhookConfig("", obs)

	var pks []int64
	for i := range 5 {
		pks = append(pks, observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("o", i), Kind: "INSERT", Data: `{}`}))
	}
	crashing := observertest.SpawnProcess(t, runOptions(url, cfg, "FRAISEQL_OBSERVERS_CRASH_IN_BATCH=1"))
	select {
	case <-crashing.Exited():
	case <-time.After(60 * time.Second):
		t.Fatalf("the fault was not injected\n%s", crashing.Log())
	}
	require.Contains(t, crashing.Log(), "fault injection: exiting inside enqueue transaction 1")
	require.Empty(t, jobCounts(t, pool), "the crashed transaction must leave no jobs")
	var cp int64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT event_id FROM observer_checkpoints WHERE listener_id = 'it'`).Scan(&cp))
	require.Zero(t, cp, "the crashed transaction must not move the checkpoint")

	observertest.StartProcess(t, runOptions(url, cfg))
	recv.WaitN(t, 10, 30*time.Second)
	want := map[int64]int{}
	for _, pk := range pks {
		want[pk] = 2 // two observers match each event
	}
	require.Equal(t, want, jobCounts(t, pool))
	ids := map[string]int{}
	for _, d := range recv.All() {
		ids[d.ID]++
	}
	require.Len(t, ids, 10, "each (event, observer, action) has its own webhook-id")
}

// Two processes share a listener id: one leads; SIGKILL it and the other takes
// over, with nothing lost or enqueued twice.
func TestFailoverAfterSIGKILL(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := webhookConfig("", orderObserver(recv.URL()))
	ctx := context.Background()

	a := observertest.StartProcess(t, runOptions(url, cfg))
	b := observertest.StartProcess(t, runOptions(url, cfg))
	leaders := func() []int {
		rows, err := pool.Query(ctx, `SELECT pid FROM observer_listeners WHERE listener_id = 'it' AND role = 'leader'`)
		require.NoError(t, err)
		defer rows.Close()
		var pids []int
		for rows.Next() {
			var pid int
			require.NoError(t, rows.Scan(&pid))
			pids = append(pids, pid)
		}
		return pids
	}
	require.Eventually(t, func() bool { return len(leaders()) == 1 }, 20*time.Second, 50*time.Millisecond)
	var held int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE `+listenerLock, "it").Scan(&held))
	require.Equal(t, 1, held, "exactly one instance holds the listener lock")

	var pks []int64
	for i := range 20 {
		pks = append(pks, observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("before-", i), Kind: "INSERT", Data: `{}`}))
	}
	recv.WaitN(t, 20, 30*time.Second)

	leader, standby := a, b
	if leaders()[0] == b.Pid() {
		leader, standby = b, a
	}
	leader.Kill()
	for i := range 20 {
		pks = append(pks, observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("after-", i), Kind: "INSERT", Data: `{}`}))
	}
	recv.WaitN(t, 20, 30*time.Second)
	require.Contains(t, standby.Log(), "listener: became leader")

	counts := jobCounts(t, pool)
	require.Len(t, counts, 40)
	for _, pk := range pks {
		require.Equal(t, 1, counts[pk], "change %d", pk)
	}
}

// Webhook delivery through River: same webhook-id on retry, 4xx not retried,
// a hanging receiver times out, and the SSRF guard refuses loopback by default.
func TestWebhookRetriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	ctx := context.Background()

	flaky := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(_ context.Context, d observertest.Delivery) observertest.Response {
			if d.Seq == 1 {
				return observertest.Response{Status: http.StatusInternalServerError}
			}
			return observertest.Response{}
		},
	})
	rejecting := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(context.Context, observertest.Delivery) observertest.Response {
			return observertest.Response{Status: http.StatusBadRequest}
		},
	})
	hang := make(chan struct{})
	hanging := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(context.Context, observertest.Delivery) observertest.Response {
			<-hang
			return observertest.Response{}
		},
	})
	t.Cleanup(func() { close(hang) }) // releases the handlers; Close does not wait for them

	cfg := webhookConfig("", map[string]string{
		"flaky":    fmt.Sprintf("entity: Flaky\nevents: [INSERT]\nactions:\n  - type: webhook\n    url: %s\nretry: {max_attempts: 3, initial_delay: 50ms, max_delay: 100ms}\n", flaky.URL()),
		"rejected": fmt.Sprintf("entity: Rejected\nevents: [INSERT]\nactions:\n  - type: webhook\n    url: %s\nretry: {max_attempts: 5, initial_delay: 50ms}\n", rejecting.URL()),
		"hanging":  fmt.Sprintf("entity: Hanging\nevents: [INSERT]\nactions:\n  - type: webhook\n    url: %s\n    timeout: 300ms\nretry: {max_attempts: 2, initial_delay: 50ms, max_delay: 50ms}\n", hanging.URL()),
	})
	observertest.StartProcess(t, runOptions(url, cfg))
	flakyPK := observertest.InsertChange(t, pool, observertest.Change{Entity: "Flaky", ID: "1", Kind: "INSERT", Data: `{}`})
	rejectedPK := observertest.InsertChange(t, pool, observertest.Change{Entity: "Rejected", ID: "1", Kind: "INSERT", Data: `{}`})
	hangingPK := observertest.InsertChange(t, pool, observertest.Change{Entity: "Hanging", ID: "1", Kind: "INSERT", Data: `{}`})

	flaky.WaitN(t, 1, 30*time.Second)
	all := flaky.All()
	require.Len(t, all, 2)
	require.Equal(t, all[0].ID, all[1].ID, "a retry carries the same webhook-id")

	jobState := func(pk int64) (state string, attempt int, errs []string) {
		var raw []byte
		require.NoError(t, pool.QueryRow(ctx, `SELECT state::text, attempt, to_jsonb(errors) FROM observer_deliveries WHERE seq = $1`, pk).Scan(&state, &attempt, &raw))
		var es []map[string]any
		_ = json.Unmarshal(raw, &es)
		for _, e := range es {
			errs = append(errs, fmt.Sprint(e["error"]))
		}
		return
	}
	require.Eventually(t, func() bool { s, _, _ := jobState(flakyPK); return s == "completed" }, 20*time.Second, 50*time.Millisecond)

	require.Eventually(t, func() bool { s, _, _ := jobState(rejectedPK); return s == "cancelled" }, 20*time.Second, 50*time.Millisecond)
	_, attempt, errs := jobState(rejectedPK)
	require.Equal(t, 1, attempt, "a 400 is not retried")
	require.Len(t, rejecting.All(), 1)
	require.Contains(t, errs[len(errs)-1], "400")

	require.Eventually(t, func() bool { s, _, _ := jobState(hangingPK); return s == "discarded" }, 30*time.Second, 50*time.Millisecond)
	_, attempt, errs = jobState(hangingPK)
	require.Equal(t, 2, attempt, "a timeout is retried until attempts run out")
	require.Contains(t, errs[len(errs)-1], "timeout")
}

func TestSSRFGuardRefusesLoopbackByDefault(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	ctx := context.Background()
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := fmt.Sprintf(`listener: {id: it, poll_interval: 200ms}
observers:
  o:
    entity: Order
    events: [INSERT]
    actions:
      - type: webhook
        url: %s
`, recv.URL())
	observertest.StartProcess(t, runOptions(url, cfg))
	pk := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "1", Kind: "INSERT", Data: `{}`})
	var state string
	var errText string
	require.Eventually(t, func() bool {
		return pool.QueryRow(ctx, `SELECT state::text, coalesce(errors[array_length(errors,1)]->>'error','') FROM observer_deliveries WHERE seq = $1`, pk).Scan(&state, &errText) == nil && state == "cancelled"
	}, 20*time.Second, 50*time.Millisecond)
	require.Contains(t, errText, "loopback")
	require.Empty(t, recv.All(), "no request may reach a loopback target")
}

// A leader stopped cleanly hands over at once: the standby here would retry
// only every 10 minutes, so only the handover notification can wake it.
func TestCleanStopHandsOverImmediately(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := webhookConfig("", orderObserver(recv.URL()))
	slow := runOptions(url, cfg)
	slow.Args = []string{"--standby-retry", "10m"}
	a := observertest.StartProcess(t, slow)
	require.Eventually(t, func() bool { return strings.Contains(a.Log(), "listener: became leader") }, 20*time.Second, 20*time.Millisecond)
	b := observertest.StartProcess(t, slow)
	require.Eventually(t, func() bool { return strings.Contains(b.Log(), "listener: standing by") }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, a.Stop(stopTimeout))
	require.Contains(t, a.Log(), "listener: handed leadership over")
	require.Eventually(t, func() bool { return strings.Contains(b.Log(), "listener: became leader") }, 30*time.Second, 20*time.Millisecond)
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "after-handover", Kind: "INSERT", Data: `{}`})
	recv.WaitN(t, 1, 30*time.Second)
}

// When Postgres kills the leader's lock session, that leader stops reading at
// once and leadership is taken again (by either instance); nothing is lost or
// enqueued twice.
func TestFailoverWhenLockSessionIsKilled(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := webhookConfig("", orderObserver(recv.URL()))
	ctx := context.Background()
	a := observertest.StartProcess(t, runOptions(url, cfg))
	b := observertest.StartProcess(t, runOptions(url, cfg))
	lockHolder := func() (pid int) {
		err := pool.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE `+listenerLock, "it").Scan(&pid)
		if !errors.Is(err, pgx.ErrNoRows) {
			require.NoError(t, err)
		}
		return pid
	}
	require.Eventually(t, func() bool { return lockHolder() != 0 }, 20*time.Second, 20*time.Millisecond)
	var pks []int64
	for i := range 10 {
		pks = append(pks, observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("before-", i), Kind: "INSERT", Data: `{}`}))
	}
	recv.WaitN(t, 10, 30*time.Second)

	old := lockHolder()
	_, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, old)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return strings.Contains(a.Log(), "lock session lost") || strings.Contains(b.Log(), "lock session lost")
	}, 20*time.Second, 20*time.Millisecond, "the leader notices at once")
	require.Eventually(t, func() bool { h := lockHolder(); return h != 0 && h != old }, 20*time.Second, 20*time.Millisecond)

	for i := range 10 {
		pks = append(pks, observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("after-", i), Kind: "INSERT", Data: `{}`}))
	}
	recv.WaitN(t, 10, 30*time.Second)
	counts := jobCounts(t, pool)
	for _, pk := range pks {
		require.Equal(t, 1, counts[pk], "change %d", pk)
	}
}

// listenerLock selects, in pg_locks, the granted session advisory lock of the
// listener group named by $1 (River takes advisory locks of its own).
const listenerLock = `locktype = 'advisory' AND granted AND objsubid = 1
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('fraiseql-observers/listener/' || $1, 0)`

// A network cut between the leader and Postgres (its TCP connections reset)
// frees the lock; the standby takes over and nothing is lost or doubled,
// also after the cut heals and the old leader rejoins as a standby.
func TestFailoverOnNetworkCut(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := webhookConfig("", orderObserver(recv.URL()))
	u, err := neturl.Parse(url)
	require.NoError(t, err)
	proxy := newTCPProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.Addr()

	a := observertest.StartProcess(t, runOptions(viaProxy.String(), cfg))
	require.Eventually(t, func() bool { return strings.Contains(a.Log(), "listener: became leader") }, 20*time.Second, 20*time.Millisecond)
	b := observertest.StartProcess(t, runOptions(url, cfg))
	require.Eventually(t, func() bool { return strings.Contains(b.Log(), "listener: standing by") }, 20*time.Second, 20*time.Millisecond)
	var pks []int64
	for i := range 10 {
		pks = append(pks, observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("before-", i), Kind: "INSERT", Data: `{}`}))
	}
	recv.WaitN(t, 10, 30*time.Second)

	proxy.Cut()
	require.Eventually(t, func() bool { return strings.Contains(b.Log(), "listener: became leader") }, 30*time.Second, 20*time.Millisecond)
	for i := range 10 {
		pks = append(pks, observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("during-", i), Kind: "INSERT", Data: `{}`}))
	}
	recv.WaitN(t, 10, 30*time.Second)

	proxy.Restore()
	for i := range 10 {
		pks = append(pks, observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint("after-", i), Kind: "INSERT", Data: `{}`}))
	}
	recv.WaitN(t, 10, 30*time.Second)
	counts := jobCounts(t, pool)
	for _, pk := range pks {
		require.Equal(t, 1, counts[pk], "change %d", pk)
	}
}

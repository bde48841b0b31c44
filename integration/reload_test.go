package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

func pathObserver(url, path string) map[string]string {
	return map[string]string{"o": fmt.Sprintf("entity: Order\nevents: [INSERT]\nactions:\n  - {type: webhook, url: %s/%s}\n", url, path)}
}

// Observers change without a restart: a changed file is picked up, a broken
// one is rejected with the old observers still running, and SIGHUP reloads
// too. Jobs enqueued before a reload keep the action they were matched with.
func TestConfigReloadsWithoutRestart(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	p := observertest.StartProcess(t, runOptions(url, webhookConfig("", pathObserver(recv.URL(), "a"))))
	reloads := func() int { return strings.Count(p.Log(), "config: reloaded") }
	write := func(cfg string) {
		t.Helper()
		require.NoError(t, os.WriteFile(p.ConfigPath()+".tmp", []byte(cfg), 0o600))
		require.NoError(t, os.Rename(p.ConfigPath()+".tmp", p.ConfigPath())) // as editors do
	}

	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "1", Kind: "INSERT", Data: `{}`})
	require.Equal(t, "/a", recv.WaitN(t, 1, 30*time.Second)[0].Path)

	write(webhookConfig("", pathObserver(recv.URL(), "b")))
	require.Eventually(t, func() bool { return reloads() == 1 }, 20*time.Second, 20*time.Millisecond)
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "2", Kind: "INSERT", Data: `{}`})
	require.Equal(t, "/b", recv.WaitN(t, 1, 30*time.Second)[0].Path)

	write("observers:\n  broken:\n    entity: Order\n    events: [INSERT]\n    condition: \"status ==\"\n    actions:\n      - {type: webhook}\n")
	require.Eventually(t, func() bool { return strings.Contains(p.Log(), "config: reload rejected") }, 20*time.Second, 20*time.Millisecond)
	require.Contains(t, p.Log(), "invalid condition")
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "3", Kind: "INSERT", Data: `{}`})
	require.Equal(t, "/b", recv.WaitN(t, 1, 30*time.Second)[0].Path, "a broken reload keeps the running observers")

	// A reload that brings a new action type also starts its queue.
	obs := pathObserver(recv.URL(), "c")
	obs["audit"] = "entity: Order\nevents: [INSERT]\nactions:\n  - {type: log, message_template: 'audit {{ event.entity_id }}'}\n"
	write(webhookConfig("", obs))
	require.Eventually(t, func() bool { return reloads() == 2 }, 20*time.Second, 20*time.Millisecond)
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "4", Kind: "INSERT", Data: `{}`})
	require.Equal(t, "/c", recv.WaitN(t, 1, 30*time.Second)[0].Path)
	require.Eventually(t, func() bool { return strings.Contains(p.Log(), "audit 4") }, 20*time.Second, 20*time.Millisecond,
		"the log action's new queue is worked")

	var versions int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(DISTINCT config_version) FROM observer_deliveries`).Scan(&versions))
	require.Equal(t, 3, versions, "each job carries the version it was matched under (the rejected file made none)")
}

// Without the file watcher, SIGHUP reloads (and does not stop the process).
func TestSIGHUPReloads(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	opts := runOptions(url, webhookConfig("", pathObserver(recv.URL(), "a")))
	opts.Args = []string{"--watch-config=false"}
	p := observertest.StartProcess(t, opts)
	require.NoError(t, os.WriteFile(p.ConfigPath(), []byte(webhookConfig("", pathObserver(recv.URL(), "b"))), 0o600))
	time.Sleep(time.Second) // well past the watcher's debounce, were there one
	require.NotContains(t, p.Log(), "config: reloaded", "no watcher: the file change alone does nothing")
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "1", Kind: "INSERT", Data: `{}`})
	require.Equal(t, "/a", recv.WaitN(t, 1, 30*time.Second)[0].Path, "no watcher: the old observers still run")

	require.NoError(t, p.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(p.Log(), "config: reloaded") }, 20*time.Second, 20*time.Millisecond)
	require.Contains(t, p.Log(), "trigger=SIGHUP")
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "2", Kind: "INSERT", Data: `{}`})
	require.Equal(t, "/b", recv.WaitN(t, 1, 30*time.Second)[0].Path)
}

// Reloads while events flow lose nothing: an observer present in every
// version delivers every event exactly once, while others come and go.
func TestReloadWhileEventsFlow(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	versions := []map[string]string{
		{"stable": "entity: Order\nevents: [INSERT]\nactions:\n  - {type: webhook, url: " + recv.URL() + "/stable}\n"},
		{"stable": "entity: Order\nevents: [INSERT]\nactions:\n  - {type: webhook, url: " + recv.URL() + "/stable}\n",
			"added": "entity: Order\nevents: [INSERT]\nactions:\n  - {type: webhook, url: " + recv.URL() + "/added}\n"},
		{"stable": "entity: Order\nevents: [INSERT]\ncondition: \"n >= 0\"\nactions:\n  - {type: webhook, url: " + recv.URL() + "/stable}\n"},
	}
	p := observertest.StartProcess(t, runOptions(url, webhookConfig("", versions[0])))
	const events = 150
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range events {
			if _, err := pool.Exec(context.Background(), `INSERT INTO core.tb_entity_change_log
				(object_type, object_id, modification_type, object_data) VALUES ('Order', $1, 'INSERT', $2::jsonb)`,
				fmt.Sprint(i), fmt.Sprintf(`{"n": %d}`, i)); err != nil {
				t.Errorf("insert %d: %v", i, err)
				return
			}
			time.Sleep(5 * time.Millisecond) // a steady trickle, not a correctness wait
		}
	}()
	for i, v := range versions[1:] {
		require.NoError(t, os.WriteFile(p.ConfigPath()+".tmp", []byte(webhookConfig("", v)), 0o600))
		require.NoError(t, os.Rename(p.ConfigPath()+".tmp", p.ConfigPath()))
		require.Eventually(t, func() bool { return strings.Count(p.Log(), "config: reloaded") == i+1 }, 20*time.Second, 10*time.Millisecond)
	}
	<-done
	seen := map[string]int{}
	require.Eventually(t, func() bool {
		clear(seen)
		for _, d := range recv.All() {
			if d.Path == "/stable" {
				seen[entityID(t, d)]++
			}
		}
		return len(seen) == events
	}, 30*time.Second, 50*time.Millisecond, "every event reaches the observer that never went away")
	for id, n := range seen {
		require.Equal(t, 1, n, "event %s delivered once", id)
	}
}

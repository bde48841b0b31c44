package integration

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// Observers come from FraiseQL's tb_observer table too: a row delivers, an
// UPDATE of the row reloads, a soft delete stops it, and a broken row is
// rejected with the running observers (the file's here) still working.
func TestObserversFromTable(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	exec(`CREATE TABLE core.tb_observer (
		id serial PRIMARY KEY, name text NOT NULL, entity_type text, event_type text, condition_expression text,
		actions jsonb NOT NULL DEFAULT '[]', enabled boolean NOT NULL DEFAULT true, retry_config jsonb,
		timeout_ms integer, deleted_at timestamptz)`)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	exec(`INSERT INTO core.tb_observer (name, entity_type, event_type, actions, retry_config, timeout_ms)
		VALUES ('order_created', 'Order', 'created', jsonb_build_array(jsonb_build_object('type', 'webhook', 'url', $1::text)),
		'{"max_attempts": 3}', 5000)`, recv.URL()+"/a")
	p := observertest.StartProcess(t, runOptions(url, webhookConfig("observers_table: core.tb_observer\n", map[string]string{
		"user_file": "entity: User\nevents: [INSERT]\nactions:\n  - {type: webhook, url: " + recv.URL() + "/file}\n",
	})))
	reloads := func() int { return strings.Count(p.Log(), "config: reloaded") }

	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "1", Kind: "INSERT", Data: `{}`})
	require.Equal(t, "/a", recv.WaitN(t, 1, 30*time.Second)[0].Path)

	exec(`UPDATE core.tb_observer SET actions = jsonb_build_array(jsonb_build_object('type', 'webhook', 'url', $1::text))
		WHERE name = 'order_created'`, recv.URL()+"/b")
	require.Eventually(t, func() bool { return reloads() == 1 }, 20*time.Second, 20*time.Millisecond)
	require.Contains(t, p.Log(), "trigger=\"table changed\"")
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "2", Kind: "INSERT", Data: `{}`})
	require.Equal(t, "/b", recv.WaitN(t, 1, 30*time.Second)[0].Path)

	exec(`UPDATE core.tb_observer SET deleted_at = now() WHERE name = 'order_created'`)
	require.Eventually(t, func() bool { return reloads() == 2 }, 20*time.Second, 20*time.Millisecond)
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "3", Kind: "INSERT", Data: `{}`})
	recv.Quiet(t, 2*time.Second)

	exec(`INSERT INTO core.tb_observer (name, entity_type, event_type, actions) VALUES ('broken', 'Order', 'INSERT', '[{"type": "webhook"}]')`)
	require.Eventually(t, func() bool { return strings.Contains(p.Log(), "config: reload rejected") }, 20*time.Second, 20*time.Millisecond)
	require.Contains(t, p.Log(), "tb_observer[broken]: actions[0]: webhook needs url or url_env")
	observertest.InsertChange(t, pool, observertest.Change{Entity: "User", ID: "4", Kind: "INSERT", Data: `{}`})
	require.Equal(t, "/file", recv.WaitN(t, 1, 30*time.Second)[0].Path, "a broken row keeps the running observers")
	require.Equal(t, 2, reloads())
}

// A bad row stops `run` from starting, with every problem logged.
func TestObserversFromTableBadRowAtStart(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	_, err := pool.Exec(context.Background(), `CREATE TABLE core.tb_observer (
		id serial PRIMARY KEY, name text NOT NULL, entity_type text, event_type text, condition_expression text,
		actions jsonb NOT NULL DEFAULT '[]', enabled boolean NOT NULL DEFAULT true, retry_config jsonb,
		timeout_ms integer, deleted_at timestamptz);
		INSERT INTO core.tb_observer (name, event_type, actions) VALUES
			('bad_kind', 'INSERTED', '[{"type": "log"}]'),
			('bad_action', NULL, '[{"type": "webhok"}]')`)
	require.NoError(t, err)
	p := observertest.SpawnProcess(t, runOptions(url, webhookConfig("observers_table: core.tb_observer\n", nil)))
	select {
	case <-p.Exited():
	case <-time.After(60 * time.Second):
		t.Fatalf("run started with a bad row\n%s", p.Log())
	}
	var ee *exec.ExitError
	require.ErrorAs(t, p.ExitErr(), &ee)
	require.Equal(t, 1, ee.ExitCode(), p.Log())
	require.Contains(t, p.Log(), `tb_observer[bad_kind]: unknown event kind \"INSERTED\"`)
	require.Contains(t, p.Log(), `tb_observer[bad_action]: unknown action type \"webhok\"`)
	require.NotContains(t, p.Log(), "run: started")
}

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// Deliveries from the real pipeline verify with the independent Standard
// Webhooks library; matching covers FraiseQL conditions, the wildcard entity,
// several observers and several actions per observer.
func TestMatchingAndSignedDeliveries(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	cfg := webhookConfig("", map[string]string{
		"big_orders": fmt.Sprintf(`entity: Order
events: [created]
condition: "status == 'new' && total > 100 && customer.tier == 'gold'"
actions:
  - {type: webhook, url: %[1]s/big-1, signing_secret: %[2]s}
  - {type: webhook, url: %[1]s/big-2, signing_secret: %[2]s, body_template: '{"id": "{{ event.entity_id }}", "note": "{{ note }}"}'}
`, recv.URL(), secret),
		"shipped": fmt.Sprintf(`entity: Order
events: [UPDATE]
condition: "field_changed_to('status', 'shipped') && !field_changed('total')"
actions:
  - {type: webhook, url: %s/shipped, signing_secret: %s}
`, recv.URL(), secret),
		"everything": fmt.Sprintf(`entity: "*"
events: [INSERT, UPDATE, DELETE]
actions:
  - {type: webhook, url: %s/all, signing_secret: %s}
`, recv.URL(), secret),
	})
	observertest.StartProcess(t, runOptions(url, cfg))
	ctx := context.Background()

	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "o1", Kind: "INSERT", Data: `{"status": "new", "total": 100.50, "customer": {"tier": "gold"}, "note": "say \"hi\"\n"}`}) // big_orders ×2 + everything
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "o2", Kind: "INSERT", Data: `{"status": "new", "total": 100.00, "customer": {"tier": "gold"}}`})                         // everything only (100.00 is not > 100)
	_, err := pool.Exec(ctx, `INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type, object_data, object_data_before)
		VALUES ('Order', 'o1', 'UPDATE', '{"status":"shipped","total":100.5}', '{"status":"new","total":100.5}')`) // shipped + everything
	require.NoError(t, err)
	observertest.InsertChange(t, pool, observertest.Change{Entity: "User", ID: "u1", Kind: "DELETE", Data: `{"name": "x"}`}) // everything

	got := recv.WaitN(t, 7, 30*time.Second)
	recv.Quiet(t, 500*time.Millisecond)
	byPath := map[string]int{}
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	for _, d := range got {
		byPath[d.Path]++
		require.NoError(t, wh.Verify(d.Body, d.Header), "delivery to %s must verify", d.Path)
		tampered := append([]byte(nil), d.Body...)
		tampered[0] = ' '
		require.Error(t, wh.Verify(tampered, d.Header))
		if d.Path == "/big-2" {
			var body map[string]string
			require.NoError(t, json.Unmarshal(d.Body, &body), "the template is JSON-escaped: %s", d.Body)
			require.Equal(t, map[string]string{"id": "o1", "note": "say \"hi\"\n"}, body)
		}
	}
	require.Equal(t, map[string]int{"/big-1": 1, "/big-2": 1, "/shipped": 1, "/all": 4}, byPath)
}

// Bad rows never stall the log: an unknown modification_type and a payload
// that is not a JSON object are recorded as skipped with a reason, and a
// condition that fails at run time just does not match.
func TestBadRowsAreSkippedAndReported(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := webhookConfig("", map[string]string{
		"typed": fmt.Sprintf("entity: Order\nevents: [INSERT]\ncondition: \"total > 100\"\nactions:\n  - {type: webhook, url: %s/typed}\n", recv.URL()),
		"all":   fmt.Sprintf("entity: \"*\"\nevents: [INSERT]\nactions:\n  - {type: webhook, url: %s/all}\n", recv.URL()),
	})
	p := observertest.StartProcess(t, runOptions(url, cfg))
	ctx := context.Background()

	unknown := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "1", Kind: "UPSERT", Data: `{"total": 500}`})
	notObject := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "2", Kind: "INSERT", Data: `[1, 2, 3]`})
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "3", Kind: "INSERT", Data: `{"total": "lots"}`}) // condition errors → no match for "typed"
	last := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "4", Kind: "INSERT", Data: `{"total": 500}`})

	got := recv.WaitN(t, 3, 30*time.Second) // all:3, all:4, typed:4
	recv.Quiet(t, 300*time.Millisecond)
	paths := map[string]int{}
	for _, d := range got {
		paths[d.Path]++
	}
	require.Equal(t, map[string]int{"/all": 2, "/typed": 1}, paths)

	rows, err := pool.Query(ctx, `SELECT change_pk, reason FROM observer_skipped_events ORDER BY change_pk`)
	require.NoError(t, err)
	skipped := map[int64]string{}
	for rows.Next() {
		var pk int64
		var reason string
		require.NoError(t, rows.Scan(&pk, &reason))
		skipped[pk] = reason
	}
	require.NoError(t, rows.Err())
	require.Len(t, skipped, 2)
	require.Contains(t, skipped[unknown], `unknown modification_type "UPSERT"`)
	require.Contains(t, skipped[notObject], "object_data is not a JSON object")

	var cp int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT event_id FROM observer_checkpoints WHERE listener_id = 'it'`).Scan(&cp))
	require.Equal(t, last, cp)
	require.Contains(t, p.Log(), "listener: condition failed; treated as no match")

	// The metrics say so too.
	metrics := observertest.Metrics(t, p.HTTPAddr())
	require.Contains(t, metrics, `observer_events_skipped_total{reason="unknown_kind"} 1`)
	require.Contains(t, metrics, `observer_events_skipped_total{reason="bad_payload"} 1`)
	require.Contains(t, metrics, `observer_condition_errors_total{observer="typed"} 1`)
	require.Contains(t, metrics, "observer_events_processed_total 4")
}

// SIGTERM drains: a delivery in flight when the signal arrives completes
// before the process exits 0.
func TestShutdownDrainsInFlightJobs(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(context.Context, observertest.Delivery) observertest.Response {
			entered <- struct{}{}
			<-release
			return observertest.Response{}
		},
	})
	p := observertest.StartProcess(t, runOptions(url, webhookConfig("", orderObserver(recv.URL()))))
	pk := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "1", Kind: "INSERT", Data: `{}`})
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the delivery never started")
	}
	require.NoError(t, p.Signal(os.Interrupt))
	require.Eventually(t, func() bool { return strings.Contains(p.Log(), "run: shutting down") }, 10*time.Second, 10*time.Millisecond)
	close(release)
	require.NoError(t, p.Stop(stopTimeout)) // asserts exit 0
	var state string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT state::text FROM observer_deliveries WHERE seq = $1`, pk).Scan(&state))
	require.Equal(t, "completed", state)
}

// `run` refuses to start, with a clear error, when a secret's variable is
// unset or when the database has not been migrated.
func TestRunRefusesToStartWithoutSecretsOrSchema(t *testing.T) {
	t.Parallel()
	_, url := sqltest.NewDB(t)
	cfg := webhookConfig("", map[string]string{
		"o": "entity: Order\nevents: [INSERT]\nactions:\n  - {type: webhook, url: https://example.com/x, signing_secret_env: IT_SURELY_UNSET_SECRET}\n",
	})
	out, code := runCLI(t, cfg, "run", "--database-url", url, "--http-addr", "")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "IT_SURELY_UNSET_SECRET")

	empty := sqltest.NewEmptyDB(t)
	out, code = runCLI(t, webhookConfig("", orderObserver("https://example.com")), "run", "--database-url", empty, "--http-addr", "")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "fraiseql-observers migrate")
}

// runCLI runs the binary with a config file written from cfg and returns its
// combined output and exit code.
func runCLI(t *testing.T, cfg string, args ...string) (string, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "observers.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	cmd := exec.Command(binary, append(args, "--config", path)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return string(out), code
}

// A 429 with Retry-After schedules the retry no earlier than the receiver
// asked, even when the observer's own backoff is shorter.
func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(context.Context, observertest.Delivery) observertest.Response {
			return observertest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"30"}}}
		},
	})
	observertest.StartProcess(t, runOptions(url, webhookConfig("", orderObserver(recv.URL())))) // initial_delay 50ms, max_delay 200ms
	pk := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "1", Kind: "INSERT", Data: `{}`})
	var state string
	var wait float64
	require.Eventually(t, func() bool {
		err := pool.QueryRow(context.Background(), `SELECT state::text, extract(epoch FROM scheduled_at - attempted_at)
			FROM observer_deliveries WHERE seq = $1`, pk).Scan(&state, &wait)
		return err == nil && state == "retryable"
	}, 20*time.Second, 20*time.Millisecond)
	require.GreaterOrEqual(t, wait, 29.0, "the retry waits for Retry-After, not the 50ms backoff")
	require.Len(t, recv.All(), 1)
}

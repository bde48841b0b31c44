package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observertest"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

const dlqE2ESecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// dlqE2EConfig has a webhook and a log action on each Order insert.
func dlqE2EConfig(url string) string {
	return fmt.Sprintf(`listener:
  id: dlq
  poll_interval: 200ms
allow_private_targets: true
observers:
  obs-webhook:
    entity: Order
    events: [INSERT]
    actions:
      - type: webhook
        url: %s/orders
        signing_secret: %s
    retry: {max_attempts: 3, initial_delay: 50ms, max_delay: 200ms}
  obs-log:
    entity: Order
    events: [INSERT]
    actions:
      - type: log
        message_template: "obs-log-marker {{ event.entity_id }}"
`, url, dlqE2ESecret)
}

func dlqList(t *testing.T, url string, args ...string) dlqListView {
	t.Helper()
	code, out, errOut := runDLQ(t, append([]string{"list", "--database-url", url, "--format", "json"}, args...)...)
	require.Equal(t, exitOK, code, errOut)
	var v dlqListView
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	return v
}

func startDLQObserver(t *testing.T, url, recvURL string) *observertest.Observer {
	t.Helper()
	ob := observertest.Run(t, observertest.Options{Config: dlqE2EConfig(recvURL), DatabaseURL: url})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, ob.WaitLeader(ctx))
	return ob
}

// The scenario: a delivery dead-lettered by a 400 is listed, shown,
// retried once the receiver is fixed, and then delivered exactly once with
// the webhook-id of its first attempt; the event's other action is not run
// again.
func TestDLQRetryDeliversOnceWithTheSameWebhookID(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	var fixed atomic.Bool
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{Secret: dlqE2ESecret,
		Respond: func(context.Context, observertest.Delivery) observertest.Response {
			if fixed.Load() {
				return observertest.Response{}
			}
			return observertest.Response{Status: 400, Body: []byte(`{"error": "missing field customer"}`)}
		}})
	ob := startDLQObserver(t, url, recv.URL())

	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "ord-1", Kind: "INSERT", Data: `{"total": 10}`})
	var l dlqListView
	require.Eventually(t, func() bool { l = dlqList(t, url); return l.Total == 1 }, 30*time.Second, 100*time.Millisecond)
	first := recv.All()
	require.Len(t, first, 1)
	require.Equal(t, 400, first[0].Status)
	require.NoError(t, first[0].SignatureErr)
	d := l.Deliveries[0]
	require.Equal(t, "cancelled", d.State)
	require.Equal(t, "obs-webhook", d.Observer)
	require.Equal(t, "webhook", d.ActionType)
	require.Equal(t, "Order", d.EntityType)
	require.Equal(t, "ord-1", d.EntityID)
	require.Equal(t, first[0].ID, d.WebhookID, "the list shows the webhook-id the receiver got")
	require.Contains(t, d.LastError, "400")

	code, out, errOut := runDLQ(t, "show", d.ID, "--database-url", url, "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	require.NotContains(t, out, dlqE2ESecret)
	var show dlqShowView
	require.NoError(t, json.Unmarshal([]byte(out), &show))
	require.True(t, show.Dead)
	require.Equal(t, first[0].ID, show.WebhookID)
	require.Len(t, show.Attempts, 1)
	require.Contains(t, show.Attempts[0].Error, "400")
	require.Equal(t, "ord-1", show.Event.EntityID)
	settings := map[string]any{}
	for _, s := range *show.ActionConfig {
		settings[s.Key] = s.Value
	}
	require.Equal(t, "webhook", settings["type"])
	require.Equal(t, recv.URL()+"/orders", settings["url"])
	require.Equal(t, observers.RedactedSetting, settings["signing_secret"])

	fixed.Store(true)
	code, out, errOut = runDLQ(t, "retry", d.ID, "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, fmt.Sprintf("retried %s\nretried 1 delivery, skipped 0, failed 0\n", d.ID), out)
	ok := recv.WaitN(t, 1, 30*time.Second)
	require.Equal(t, first[0].ID, ok[0].ID, "the retry is sent with the first attempt's webhook-id")
	require.NoError(t, ok[0].SignatureErr)
	recv.Quiet(t, time.Second)
	all := recv.All()
	require.Len(t, all, 2, "one 400, then exactly one delivery")
	require.Equal(t, 200, all[1].Status)

	require.Eventually(t, func() bool { return dlqList(t, url).Total == 0 }, 10*time.Second, 50*time.Millisecond)
	var state string
	require.Eventually(t, func() bool {
		return pool.QueryRow(context.Background(), `SELECT state FROM observer_deliveries WHERE job_id = $1`, d.JobID).Scan(&state) == nil &&
			state == "completed"
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, 1, strings.Count(ob.Log(), "obs-log-marker ord-1"), "the event's other action ran once")

	code, out, _ = runDLQ(t, "retry", d.ID, "--database-url", url)
	require.Equal(t, exitFailure, code)
	require.Equal(t, fmt.Sprintf("skipped %s: not dead: it is completed\nretried 0 deliveries, skipped 1, failed 0\n", d.ID), out)
}

// A batch job cancelled before it ran (fault injection in SQL): each of its
// deliveries is dead; retrying one delivers that one alone.
func TestDLQDeadBatchDeliveryRetriedAlone(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{Secret: dlqE2ESecret})
	startDLQObserver(t, url, recv.URL())

	// Updates match no observer (events: [INSERT]); the batch job names them.
	a := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "ord-a", Kind: "UPDATE", Data: `{"total": 1}`})
	b := observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "ord-b", Kind: "UPDATE", Data: `{"total": 2}`})
	batch := insertDeadBatch(t, pool, a, b)

	l := dlqList(t, url)
	require.EqualValues(t, 2, l.Total)
	ids := []string{l.Deliveries[0].ID, l.Deliveries[1].ID}
	require.Equal(t, []string{fmt.Sprintf("%d.0", batch), fmt.Sprintf("%d.1", batch)}, ids)
	require.Equal(t, "ord-b", l.Deliveries[1].EntityID)

	code, out, errOut := runDLQ(t, "retry", ids[1], "--database-url", url, "--format", "json")
	require.Equal(t, exitOK, code, errOut)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.InDelta(t, 1, v["retried"], 0)
	got := recv.WaitN(t, 1, 30*time.Second)[0]
	require.Contains(t, string(got.Body), `"entity_id":"ord-b"`)
	var eventB string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT id::text FROM core.tb_entity_change_log WHERE pk_entity_change_log = $1`, b).Scan(&eventB))
	require.Equal(t, observers.MessageID(eventB, "obs-webhook", 0), got.ID)
	recv.Quiet(t, time.Second)
	require.Len(t, recv.All(), 1, "only the delivery retried")

	l = dlqList(t, url)
	require.EqualValues(t, 1, l.Total)
	require.Equal(t, ids[0], l.Deliveries[0].ID, "the batch's other delivery is still dead")
}

// insertDeadBatch inserts a batch job of obs-webhook's deliveries of seqs,
// cancelled as River leaves one, under the latest configuration version.
func insertDeadBatch(t *testing.T, pool *pgxpool.Pool, seqs ...int64) int64 {
	t.Helper()
	ctx := context.Background()
	var version int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT max(id) FROM observer_config_versions`).Scan(&version))
	args, err := json.Marshal(obsriver.BatchArgs{ActionType: "webhook", ConfigVersion: version,
		Deliveries: []obsriver.BatchDelivery{{Observer: "obs-webhook", Action: 0, Seqs: seqs}}})
	require.NoError(t, err)
	var id int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO river_job (kind, queue, args, state, attempt, max_attempts, attempted_at, finalized_at, errors)
		VALUES ($1, $2, $3, 'cancelled', 1, $4, now(), now(), ARRAY['{"at": "2025-01-02T03:04:05Z", "attempt": 1, "error": "cancelled by the test"}'::jsonb])
		RETURNING id`, obsriver.BatchKind, obsriver.QueueFor("webhook"), args, obsriver.BatchMaxAttempts).Scan(&id))
	return id
}

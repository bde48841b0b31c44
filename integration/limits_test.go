package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// A rate-limited endpoint gets at most its rate, every delivery arrives
// (none dropped), and those over the limit were snoozed without spending an
// attempt.
func TestRateLimitSpacesDeliveries(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := webhookConfig("", map[string]string{"limited": fmt.Sprintf(
		"entity: Order\nevents: [INSERT]\nactions:\n  - type: webhook\n    url: %s/limited\n    rate_limit: 2/s\n", recv.URL())})
	p := observertest.StartProcess(t, runOptions(url, cfg))
	const n = 8
	for i := range n {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint(i), Kind: "INSERT", Data: `{}`})
	}
	got := recv.WaitN(t, n, 90*time.Second)
	at := make([]time.Time, len(got))
	for i, d := range got {
		at[i] = d.At
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	// A bucket of 2 tokens, one back every 500ms: the first two may go at
	// once, the i-th no sooner than (i-1) × 500ms after the first.
	const interval, slack = 500 * time.Millisecond, 150 * time.Millisecond
	for i := 2; i < n; i++ {
		require.GreaterOrEqual(t, at[i].Sub(at[0]), time.Duration(i-1)*interval-slack, "delivery %d came too soon: %v", i, at)
	}

	// The deliveries refused in their batch continued as jobs of their own,
	// snoozed (no attempt spent) until their turn, then sent once.
	ctx := context.Background()
	var followUps, done int
	require.Eventually(t, func() bool {
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'completed' AND attempt = 1
				AND (metadata->>'snoozes')::int > 0)
			FROM observer_deliveries WHERE batch_job_id IS NOT NULL`).Scan(&followUps, &done))
		return followUps > 0 && done == followUps
	}, 30*time.Second, 100*time.Millisecond, "every snoozed delivery completed with one attempt")
	limited, ok := observertest.LookupMetric(t, p.HTTPAddr(), `observer_rate_limited_total{endpoint="`+recv.URL()+`/limited"}`)
	require.True(t, ok, "the metric names the endpoint")
	require.Positive(t, limited)
	require.Zero(t, len(recv.All())-n, "no request was sent twice")
}

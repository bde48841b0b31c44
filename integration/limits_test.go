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

// concurrency.max_in_flight caps the HTTP requests of a process: while a
// hanging receiver holds the only slot, another delivery is snoozed (no
// attempt spent, no request sent), and goes out once the slot is free.
func TestMaxInFlightSnoozesWhileFull(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	release := make(chan struct{})
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{Respond: func(ctx context.Context, d observertest.Delivery) observertest.Response {
		if d.Path == "/hang" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return observertest.Response{}
	}})
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	cfg := webhookConfig("concurrency: {max_in_flight: 1}\n", map[string]string{
		"hang": fmt.Sprintf("entity: Hang\nevents: [INSERT]\nactions:\n  - type: webhook\n    url: %s/hang\n    timeout: 40s\n", recv.URL()),
		"ok":   fmt.Sprintf("entity: Ok\nevents: [INSERT]\nactions:\n  - type: webhook\n    url: %s/ok\n", recv.URL()),
	})
	p := observertest.StartProcess(t, runOptions(url, cfg))
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Hang", ID: "1", Kind: "INSERT", Data: `{}`})
	paths := func() []string {
		var out []string
		for _, d := range recv.All() {
			out = append(out, d.Path)
		}
		return out
	}
	require.Eventually(t, func() bool { return slices.Contains(paths(), "/hang") }, 30*time.Second, 20*time.Millisecond)

	pk := observertest.InsertChange(t, pool, observertest.Change{Entity: "Ok", ID: "1", Kind: "INSERT", Data: `{}`})
	ctx := context.Background()
	require.Eventually(t, func() bool {
		var snoozed bool
		err := pool.QueryRow(ctx, `SELECT bool_or(COALESCE((metadata->>'snoozes')::int, 0) > 0 AND attempt = 0)
			FROM observer_deliveries WHERE seq = $1`, pk).Scan(&snoozed)
		return err == nil && snoozed
	}, 30*time.Second, 50*time.Millisecond, "the delivery is snoozed while the only slot is taken")
	require.NotContains(t, paths(), "/ok", "nothing was sent")
	n, ok := observertest.LookupMetric(t, p.HTTPAddr(), "observer_http_in_flight_snoozed_total")
	require.True(t, ok)
	require.Positive(t, n)

	close(release)
	released = true
	require.Eventually(t, func() bool { return slices.Contains(paths(), "/ok") }, 30*time.Second, 50*time.Millisecond,
		"delivered once the slot is free")
}

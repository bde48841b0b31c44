package integration

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// An endpoint that keeps failing opens its circuit breaker: later jobs are
// snoozed (no attempt spent, no request sent) and the open state is shared
// in observer_circuit_breakers.
func TestCircuitBreakerSnoozesJobsWhileOpen(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	down := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(context.Context, observertest.Delivery) observertest.Response {
			return observertest.Response{Status: http.StatusServiceUnavailable}
		},
	})
	cfg := webhookConfig("circuit_breaker: {min_requests: 3, sample_size: 10, failure_threshold: 0.5, timeout: 30s}\n",
		map[string]string{"down": fmt.Sprintf("entity: Down\nevents: [INSERT]\nactions:\n  - type: webhook\n    url: %s\n"+
			"retry: {max_attempts: 10, initial_delay: 50ms, max_delay: 100ms}\n", down.URL())})
	p := observertest.StartProcess(t, runOptions(url, cfg))
	for i := range 5 {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Down", ID: fmt.Sprint(i), Kind: "INSERT", Data: `{}`})
	}
	ctx := context.Background()
	endpoint := down.URL() // http://127.0.0.1:port: the breaker's name

	require.Eventually(t, func() bool {
		var state string
		err := pool.QueryRow(ctx, `SELECT state FROM observer_circuit_breakers WHERE name = $1`, endpoint).Scan(&state)
		return err == nil && state == "open"
	}, 60*time.Second, 50*time.Millisecond, "the breaker opens")

	// Every job ends up snoozed: scheduled about 30s ahead, still short of
	// its attempts.
	require.Eventually(t, func() bool {
		var snoozed, total int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'scheduled'
				AND (metadata->>'snoozes')::int > 0 AND attempt < max_attempts AND scheduled_at > now() + interval '10 seconds'),
			count(*) FROM observer_deliveries`).Scan(&snoozed, &total))
		return total == 5 && snoozed == 5
	}, 60*time.Second, 50*time.Millisecond, "every job is snoozed")
	hits := len(down.All())
	require.GreaterOrEqual(t, hits, 3)

	// A new job is snoozed on its first run without a request.
	pk := observertest.InsertChange(t, pool, observertest.Change{Entity: "Down", ID: "new", Kind: "INSERT", Data: `{}`})
	require.Eventually(t, func() bool {
		var state string
		var attempt, snoozes int
		err := pool.QueryRow(ctx, `SELECT state, attempt, COALESCE((metadata->>'snoozes')::int, 0)
			FROM observer_deliveries WHERE seq = $1`, pk).Scan(&state, &attempt, &snoozes)
		return err == nil && state == "scheduled" && attempt == 0 && snoozes == 1
	}, 60*time.Second, 50*time.Millisecond, "the new job is snoozed without spending an attempt")
	require.Equal(t, hits, len(down.All()), "no request reached the receiver while the breaker was open")

	var rejections float64
	require.Eventually(t, func() bool {
		var ok bool
		rejections, ok = observertest.LookupMetric(t, p.HTTPAddr(), `observer_circuit_breaker_rejections_total{endpoint="`+endpoint+`"}`)
		return ok && rejections >= 6
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, 2.0, observertest.Metric(t, p.HTTPAddr(), `observer_circuit_breaker_state{endpoint="`+endpoint+`"}`))
}

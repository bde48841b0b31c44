package integration

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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
	endpoint := down.URL() + "/" // http://127.0.0.1:port/: the breaker's name (its endpoint URL)

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

// sharedHostConfig has two observers whose webhooks share a host: Down
// posts to /down, which always answers 503, and Up to /up, which is healthy.
func sharedHostConfig(recv *observertest.Receiver, breaker string) string {
	return webhookConfig("circuit_breaker: {min_requests: 3, sample_size: 10, failure_threshold: 0.5, timeout: 30s"+breaker+"}\n",
		map[string]string{
			"down": fmt.Sprintf("entity: Down\nevents: [INSERT]\nactions:\n  - type: webhook\n    url: %s/down\n"+
				"retry: {max_attempts: 10, initial_delay: 50ms, max_delay: 100ms}\n", recv.URL()),
			"up": fmt.Sprintf("entity: Up\nevents: [INSERT]\nactions:\n  - type: webhook\n    url: %s/up\n", recv.URL()),
		})
}

func downOnly() observertest.ReceiverOptions {
	return observertest.ReceiverOptions{Respond: func(_ context.Context, d observertest.Delivery) observertest.Response {
		if d.Path == "/down" {
			return observertest.Response{Status: http.StatusServiceUnavailable}
		}
		return observertest.Response{}
	}}
}

// openBreaker waits until a breaker is open and returns its name.
func openBreaker(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var name string
	require.Eventually(t, func() bool {
		err := pool.QueryRow(context.Background(), `SELECT name FROM observer_circuit_breakers WHERE state = 'open'`).Scan(&name)
		return err == nil
	}, 60*time.Second, 50*time.Millisecond, "a breaker opens")
	return name
}

// One failing path does not pause the other paths of its host: breakers are
// per endpoint URL (scheme, host, port and path) by default, so a delivery
// to a healthy path of the host goes out while the failing path's breaker is
// open.
func TestCircuitBreakerOpenPathLeavesOtherPathsOfHost(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, downOnly())
	observertest.StartProcess(t, runOptions(url, sharedHostConfig(recv, "")))
	for i := range 5 {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Down", ID: fmt.Sprint(i), Kind: "INSERT", Data: `{}`})
	}
	name := openBreaker(t, pool)

	pk := observertest.InsertChange(t, pool, observertest.Change{Entity: "Up", ID: "1", Kind: "INSERT", Data: `{}`})
	ctx := context.Background()
	require.Eventually(t, func() bool {
		var state string
		err := pool.QueryRow(ctx, `SELECT state FROM observer_deliveries WHERE seq = $1`, pk).Scan(&state)
		return err == nil && state == "completed"
	}, 15*time.Second, 50*time.Millisecond, "the healthy path is delivered while /down's breaker is open (30s)")
	var snoozes int
	require.NoError(t, pool.QueryRow(ctx, `SELECT COALESCE((metadata->>'snoozes')::int, 0) FROM observer_deliveries WHERE seq = $1`,
		pk).Scan(&snoozes))
	require.Zero(t, snoozes, "the healthy path was never snoozed")
	require.Equal(t, recv.URL()+"/down", name, "the open breaker is the failing path's")
	var names []string
	rows, err := pool.Query(ctx, `SELECT name FROM observer_circuit_breakers ORDER BY name`)
	require.NoError(t, err)
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	require.NotContains(t, names, recv.URL(), "no breaker is named by the host alone")
}

// circuit_breaker.scope: host keeps one breaker per host: a failing path
// pauses every path of its host, as before breakers were per endpoint.
func TestCircuitBreakerScopeHostPausesEveryPath(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	recv := observertest.NewReceiver(t, downOnly())
	observertest.StartProcess(t, runOptions(url, sharedHostConfig(recv, ", scope: host")))
	for i := range 5 {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Down", ID: fmt.Sprint(i), Kind: "INSERT", Data: `{}`})
	}
	require.Equal(t, recv.URL(), openBreaker(t, pool), "the breaker is the host's")

	pk := observertest.InsertChange(t, pool, observertest.Change{Entity: "Up", ID: "1", Kind: "INSERT", Data: `{}`})
	require.Eventually(t, func() bool {
		var state string
		var attempt, snoozes int
		err := pool.QueryRow(context.Background(), `SELECT state, attempt, COALESCE((metadata->>'snoozes')::int, 0)
			FROM observer_deliveries WHERE seq = $1`, pk).Scan(&state, &attempt, &snoozes)
		return err == nil && state == "scheduled" && attempt == 0 && snoozes == 1
	}, 60*time.Second, 50*time.Millisecond, "the healthy path of the host is snoozed with it")
	for _, d := range recv.All() {
		require.Equal(t, "/down", d.Path, "nothing reached /up")
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers/status"
	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// grepLines is `grep PATTERN`: the lines of text that match re.
func grepLines(text string, re *regexp.Regexp) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// status against a running observer: three deliveries hang at their
// receiver (three River jobs running in the webhook queue), and an endpoint
// that answers 503 opens its circuit breaker. The Workers line shows
// running/limit per queue (`status | grep workers`), each breaker has a line
// with its endpoint and state (`status | grep -i circuit`), and the JSON
// has the same.
func TestStatusWorkersAndBreakersLive(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	release := make(chan struct{})
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(ctx context.Context, d observertest.Delivery) observertest.Response {
			if d.Path == "/down" {
				return observertest.Response{Status: http.StatusServiceUnavailable}
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return observertest.Response{}
		},
	})
	cfg := fmt.Sprintf(`listener: {poll_interval: 200ms}
allow_private_targets: true
concurrency: {deliveries_per_job: 1, max_parallelism: 6}
circuit_breaker: {min_requests: 3, sample_size: 10, failure_threshold: 0.5, timeout: 60s}
observers:
  slow:
    entity: Slow
    events: [INSERT]
    actions: [{type: webhook, url: "%[1]s/slow", timeout: 60s}]
  down:
    entity: Down
    events: [INSERT]
    actions: [{type: webhook, url: "%[1]s/down"}]
    retry: {max_attempts: 10, initial_delay: 50ms, max_delay: 100ms}
`, recv.URL())
	obs := observertest.Run(t, observertest.Options{DatabaseURL: url, Config: cfg})
	t.Cleanup(func() { close(release) }) // before the observer stops (cleanups run last first)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, obs.WaitLeader(ctx))
	for i := range 3 {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Slow", ID: fmt.Sprint(i), Kind: "INSERT", Data: `{}`})
	}
	for i := range 5 {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Down", ID: fmt.Sprint(i), Kind: "INSERT", Data: `{}`})
	}
	endpoint := recv.URL() + "/down"

	var st status.Status
	require.Eventually(t, func() bool {
		code, out, _ := runStatusCLI(t, "--database-url", url, "--format", "json")
		if code != exitFailure || json.Unmarshal([]byte(out), &st) != nil { // an open breaker: degraded
			return false
		}
		webhook := workersOf(st, "fraiseql_observers_webhook")
		return webhook != nil && webhook.Running == 3 && breakerOf(st, endpoint) != nil && breakerOf(st, endpoint).Open
	}, time.Minute, 100*time.Millisecond, "three jobs running and the breaker open")
	require.Equal(t, status.QueueWorkers{Queue: "fraiseql_observers_webhook", Running: 3, Limit: 6, Instances: 1},
		*workersOf(st, "fraiseql_observers_webhook"))
	legacy := workersOf(st, "fraiseql_observers")
	require.NotNil(t, legacy, "the pre-upgrade queue is worked too")
	require.Equal(t, int64(6), legacy.Limit)
	cb := breakerOf(st, endpoint)
	require.Equal(t, "open", cb.State)
	require.NotNil(t, cb.Expiry)
	require.Contains(t, st.Problems, "1 circuit breaker(s) open: "+endpoint)
	code, out, errOut := runStatusCLI(t, "--database-url", url, "--format", "json")
	require.Equal(t, exitFailure, code, errOut)
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &raw))
	var webhook map[string]any
	for _, w := range raw["workers"].([]any) {
		if w.(map[string]any)["queue"] == "fraiseql_observers_webhook" {
			webhook = w.(map[string]any)
		}
	}
	require.Equal(t, 6.0, webhook["limit"])
	require.Equal(t, 1.0, webhook["instances"])
	require.Contains(t, webhook, "running")

	// A delivery to the failing endpoint may be running for a moment (then
	// snoozed by the breaker), and the periodic cleanup in the legacy queue.
	workersLine := regexp.MustCompile(`^Workers:\s+fraiseql_observers [01]/6, fraiseql_observers_webhook 3/6 \(running/max workers, 1 healthy instance\)$`)
	require.Eventually(t, func() bool {
		code, out, errOut = runStatusCLI(t, "--database-url", url)
		workers := grepLines(out, regexp.MustCompile(`workers`))
		return code == exitFailure && len(workers) == 1 && workersLine.MatchString(workers[0])
	}, 30*time.Second, 100*time.Millisecond, "status | grep workers")
	circuit := grepLines(out, regexp.MustCompile(`(?i)circuit`))
	require.Contains(t, circuit, "Problem:           1 circuit breaker(s) open: "+endpoint)
	require.Regexp(t, `^Circuit breakers:\s+\d+, 1 open$`, circuit[1])
	var open string
	for _, l := range circuit[2:] {
		require.True(t, strings.HasPrefix(l, "Circuit breaker:   "), l)
		if strings.Contains(l, endpoint+" ") {
			open = l
		}
	}
	require.Regexp(t, `^Circuit breaker:\s+`+regexp.QuoteMeta(endpoint)+`\s+open until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in [\dms]+\)$`, open)
}

func workersOf(st status.Status, queue string) *status.QueueWorkers {
	for i := range st.Workers {
		if st.Workers[i].Queue == queue {
			return &st.Workers[i]
		}
	}
	return nil
}

func breakerOf(st status.Status, name string) *status.BreakerStatus {
	for i := range st.CircuitBreakers {
		if st.CircuitBreakers[i].Name == name {
			return &st.CircuitBreakers[i]
		}
	}
	return nil
}

// With nothing running the Workers line still answers `grep workers`.
func TestStatusWorkersLineWithoutInstances(t *testing.T) {
	t.Parallel()
	_, url := sqltest.NewDB(t)
	_, out, _ := runStatusCLI(t, "--database-url", url)
	require.Equal(t, []string{"Workers:           none: no healthy instance reports its queues' workers, and no job runs"},
		grepLines(out, regexp.MustCompile(`workers`)))
	require.Equal(t, []string{"Circuit breakers:  none"}, grepLines(out, regexp.MustCompile(`(?i)circuit`)))
}

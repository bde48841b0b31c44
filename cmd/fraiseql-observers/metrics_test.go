package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers/scrape"
	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

func runMetricsCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(append([]string{"metrics"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// twoObservers runs two observers on one database, each with one webhook
// worker, and delivers five changes so that both executed some: the first
// two deliveries are held at the receiver until both arrived, which only
// two instances with one worker each can do.
func twoObservers(t *testing.T) (url string, a, b *observertest.Observer) {
	t.Helper()
	pool, url := sqltest.NewDB(t)
	var mu sync.Mutex
	arrived := 0
	both := make(chan struct{})
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(ctx context.Context, _ observertest.Delivery) observertest.Response {
			mu.Lock()
			arrived++
			if arrived == 2 {
				close(both)
			}
			mu.Unlock()
			select {
			case <-both:
			case <-ctx.Done():
			}
			return observertest.Response{}
		},
	})
	cfg := fmt.Sprintf(`listener: {poll_interval: 200ms}
allow_private_targets: true
concurrency: {deliveries_per_job: 1, max_parallelism: 1}
observers:
  o:
    entity: Order
    events: [INSERT]
    actions: [{type: webhook, url: "%s/hook"}]
`, recv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a = observertest.Run(t, observertest.Options{DatabaseURL: url, Config: cfg, GaugeInterval: 100 * time.Millisecond})
	require.NoError(t, a.WaitLeader(ctx)) // a leads, b stands by
	b = observertest.Run(t, observertest.Options{DatabaseURL: url, Config: cfg, GaugeInterval: 100 * time.Millisecond})
	for i := range 5 {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: fmt.Sprint(i), Kind: "INSERT", Data: `{}`})
	}
	recv.WaitN(t, 5, time.Minute)
	return url, a, b
}

// metrics scrapes both registered instances: counters are summed (each
// instance executed some of the five deliveries, the sum is five), gauges
// are printed per instance, the database-wide queue depth once; --metric
// prints one metric, or the value of a single series; --url scrapes the
// endpoints given; an unreachable one is reported and the rest printed.
func TestMetricsTwoInstances(t *testing.T) {
	t.Parallel()
	url, a, b := twoObservers(t)
	executed := `observer_actions_executed_total{action_type="webhook",observer="o"}`
	var inA, inB float64
	durations := `observer_action_duration_seconds_count{action_type="webhook"}`
	running := `observer_job_queue_depth{queue="fraiseql_observers_webhook",state="running"}`
	require.Eventually(t, func() bool { // the counters move just after the receiver answered
		inA, _ = observertest.LookupMetric(t, a.HTTPAddr(), executed)
		inB, _ = observertest.LookupMetric(t, b.HTTPAddr(), executed)
		dA, _ := observertest.LookupMetric(t, a.HTTPAddr(), durations)
		dB, _ := observertest.LookupMetric(t, b.HTTPAddr(), durations)
		_, ok := observertest.LookupMetric(t, a.HTTPAddr(), running) // the leader's first refresh
		return inA+inB == 5 && dA+dB == 5 && ok
	}, 30*time.Second, 20*time.Millisecond)
	_, ok := observertest.LookupMetric(t, b.HTTPAddr(), running)
	require.False(t, ok, "the standby does not export the database-wide gauges")
	require.NotZero(t, inA, "each instance executed some")
	require.NotZero(t, inB, "each instance executed some")

	code, out, errOut := runMetricsCLI(t, "--database-url", url)
	require.Equal(t, exitOK, code, errOut)
	require.Empty(t, errOut)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	seen := map[string]bool{}
	prev := ""
	for _, l := range lines { // one line per series, sorted by name
		key, _, _ := strings.Cut(l, " ")
		name, _, _ := strings.Cut(key, "{")
		require.False(t, seen[key], "one line per series: %s", l)
		require.LessOrEqual(t, prev, name, "sorted by name")
		seen[key], prev = true, name
	}
	require.Contains(t, lines, executed+" 5")
	require.Contains(t, lines, `observer_events_processed_total 5`)
	require.Contains(t, lines, fmt.Sprintf(`observer_listener_is_leader{instance=%q} 1`, a.HTTPAddr()))
	require.Contains(t, lines, fmt.Sprintf(`observer_listener_is_leader{instance=%q} 0`, b.HTTPAddr()))
	require.True(t, seen[`observer_job_queue_depth{queue="fraiseql_observers_webhook",state="available"}`], "once, no instance label")
	require.Contains(t, lines, `observer_dlq_size 0`)
	require.Contains(t, lines, `observer_action_duration_seconds_count{action_type="webhook"} 5`, "histogram counts summed")
	require.Contains(t, lines, `observer_action_duration_seconds_bucket{action_type="webhook",le="+Inf"} 5`)

	code, out, errOut = runMetricsCLI(t, "--database-url", url, "--metric", "observer_actions_executed_total")
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "5\n", out, "one series: its value alone")
	code, out, _ = runMetricsCLI(t, "--database-url", url, "--metric", "observer_listener_is_leader")
	require.Equal(t, exitOK, code)
	require.Equal(t, fmt.Sprintf("observer_listener_is_leader{instance=%q} 1\nobserver_listener_is_leader{instance=%q} 0\n",
		a.HTTPAddr(), b.HTTPAddr()), sortedByInstance(out, a.HTTPAddr()))
	// The periodic cleanup may wait in the legacy queue for a moment; the
	// webhook jobs' completion reaches river_job a moment after the
	// receiver answered, and the leader's next refresh after that.
	depth := regexp.MustCompile(`^observer_job_queue_depth\{queue="fraiseql_observers",state="available"\} [01]
observer_job_queue_depth\{queue="fraiseql_observers",state="retryable"\} 0
observer_job_queue_depth\{queue="fraiseql_observers",state="running"\} [01]
observer_job_queue_depth\{queue="fraiseql_observers",state="scheduled"\} [01]
observer_job_queue_depth\{queue="fraiseql_observers_webhook",state="available"\} 0
observer_job_queue_depth\{queue="fraiseql_observers_webhook",state="retryable"\} 0
observer_job_queue_depth\{queue="fraiseql_observers_webhook",state="running"\} 0
observer_job_queue_depth\{queue="fraiseql_observers_webhook",state="scheduled"\} 0
$`)
	require.Eventually(t, func() bool {
		code, out, _ = runMetricsCLI(t, "--database-url", url, "--metric", "observer_job_queue_depth")
		return code == exitOK && depth.MatchString(out)
	}, 30*time.Second, 50*time.Millisecond, "the queue depth once, by queue and state")

	code, out, errOut = runMetricsCLI(t, "--database-url", url, "--metric", "observer_job_queue")
	require.Equal(t, exitFailure, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "error: metrics: no instance exposes observer_job_queue")
	require.Contains(t, errOut, "hint: did you mean observer_job_queue_depth?")

	// JSON: the instances read and every series with how it was combined.
	code, out, errOut = runMetricsCLI(t, "--database-url", url, "--format", "json", "--metric", "observer_actions_executed_total")
	require.Equal(t, exitOK, code, errOut)
	var rep metricsReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Instances, 2)
	for _, in := range rep.Instances {
		require.True(t, in.OK)
		require.NotEmpty(t, in.ID)
		require.Equal(t, "default", in.ListenerID)
		require.Equal(t, "http://"+in.Instance+"/metrics", in.URL)
	}
	require.Equal(t, []scrape.Series{{Name: "observer_actions_executed_total", Metric: "observer_actions_executed_total", Type: "counter",
		Labels: map[string]string{"action_type": "webhook", "observer": "o"}, Value: 5, Combined: scrape.CombinedSum, Instances: 2}}, rep.Series)

	// --url: only the endpoints given, with or without the /metrics path.
	code, out, errOut = runMetricsCLI(t, "--url", "http://"+a.HTTPAddr()+"/metrics", "--metric", "observer_actions_executed_total")
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, strconv.FormatFloat(inA, 'f', -1, 64)+"\n", out)
	code, out, errOut = runMetricsCLI(t, "--url", a.HTTPAddr(), "--url", "http://"+b.HTTPAddr(), "--metric", "observer_actions_executed_total")
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "5\n", out)

	// One unreachable among several: reported on stderr, the rest printed.
	code, out, errOut = runMetricsCLI(t, "--url", a.HTTPAddr(), "--url", "127.0.0.1:1", "--metric", "observer_listener_is_leader")
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "1\n", out)
	require.Contains(t, errOut, "unreachable: scrape http://127.0.0.1:1/metrics")
	require.Contains(t, errOut, "connection refused")
}

// sortedByInstance puts the line of instance first (the instances' order
// in the output is by address).
func sortedByInstance(out, first string) string {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 2 && !strings.Contains(lines[0], first) {
		lines[0], lines[1] = lines[1], lines[0]
	}
	return strings.Join(lines, "\n") + "\n"
}

// No instance to read: exit 1 with a hint to start `run` or pass --url.
// Stale rows are named on stderr and not scraped.
func TestMetricsNoInstance(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	code, out, errOut := runMetricsCLI(t, "--database-url", url)
	require.Equal(t, exitFailure, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "no running instance is registered in observer_listeners")
	require.Contains(t, errOut, "hint: is `fraiseql-observers run` running with --http-addr")
	require.Contains(t, errOut, "--url http://HOST:PORT/metrics")

	statusSeed(t, pool, `INSERT INTO observer_listeners (id, listener_id, host, pid, http_addr, role, heartbeat_at)
		VALUES ('gone-1', 'default', 'node-a', 11, '127.0.0.1:1', 'leader', now() - interval '2 minutes')`)
	code, _, errOut = runMetricsCLI(t, "--database-url", url)
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "skipped: instance gone-1 (127.0.0.1:1): heartbeat 120s old (stale after 15s)")
	require.Contains(t, errOut, "have stale heartbeats")

	statusSeed(t, pool, `UPDATE observer_listeners SET heartbeat_at = now()`) // registered, fresh, but not listening
	code, _, errOut = runMetricsCLI(t, "--database-url", url, "--format", "json")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "unreachable: scrape http://127.0.0.1:1/metrics")
	require.Contains(t, errOut, "none of the 1 instance(s) could be read")

	code, _, errOut = runMetricsCLI(t, "--url", "http://u:hunter2@127.0.0.1:1/metrics?token=s3cret")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "check that each --url")
	require.NotContains(t, errOut, "hunter2")
	require.NotContains(t, errOut, "s3cret")
}

func TestMetricsBadUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--url", "ftp://x/metrics"},
		{"--url", "http://"},
		{"--url", "127.0.0.1:1", "--format", "yaml"},
		{"--url", "127.0.0.1:1", "--timeout", "0s"},
		{"--database-url", "postgres://127.0.0.1:1/x"}, // unreachable database
		{"extra-arg"},
	} {
		code, _, errOut := runMetricsCLI(t, args...)
		require.Equal(t, exitUsage, code, "%v: %s", args, errOut)
	}
}

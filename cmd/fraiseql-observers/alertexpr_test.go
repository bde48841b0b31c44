package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// failureRateAlert is the seed guide's HighActionFailureRate expression,
// exactly as the guide writes it.
const failureRateAlert = `rate(observer_actions_failed_total[5m]) / rate(observer_actions_executed_total[5m]) > 0.05`

// The guide's failure-rate alert returns a series for an observer whose
// receiver answers 500, evaluated by Prometheus's PromQL engine on three
// scrapes of a running daemon (loaded a minute apart): the failed and
// executed counters carry the same labels, so the division matches. The
// healthy observer's deliveries succeed: no series for it, and the
// delivery latency histogram counts exactly its deliveries. Each failed
// delivery ends in the DLQ, which observer_dlq_size counts.
func TestFailureRateAlertFiresOnARunningDaemon(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	down := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(context.Context, observertest.Delivery) observertest.Response {
			return observertest.Response{Status: http.StatusInternalServerError}
		},
	})
	up := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	cfg := fmt.Sprintf(`listener: {poll_interval: 100ms}
allow_private_targets: true
circuit_breaker: {enabled: false}
observers:
  down:
    entity: Down
    events: [INSERT]
    actions: [{type: webhook, url: "%s/down"}]
    retry: {max_attempts: 2, initial_delay: 10ms, max_delay: 20ms}
  up:
    entity: Up
    events: [INSERT]
    actions: [{type: webhook, url: "%s/up"}]
`, down.URL(), up.URL())
	o := observertest.Run(t, observertest.Options{DatabaseURL: url, Config: cfg, GaugeInterval: 50 * time.Millisecond})
	failed := `observer_actions_failed_total{action_type="webhook",observer="down"}`
	var scrapes []string
	for round := range 3 {
		for i := range 2 {
			observertest.InsertChange(t, pool, observertest.Change{Entity: "Down", ID: fmt.Sprint(round, i), Kind: "INSERT", Data: `{}`})
			observertest.InsertChange(t, pool, observertest.Change{Entity: "Up", ID: fmt.Sprint(round, i), Kind: "INSERT", Data: `{}`})
		}
		want := float64(4 * (round + 1)) // two changes, two attempts each
		require.Eventually(t, func() bool {
			v, _ := observertest.LookupMetric(t, o.HTTPAddr(), failed)
			return v == want
		}, 30*time.Second, 10*time.Millisecond, "round %d: the down observer's attempts fail", round)
		up.WaitN(t, 2, 30*time.Second) // this round's (Wait returns each delivery once)
		require.Eventually(t, func() bool {
			v, _ := observertest.LookupMetric(t, o.HTTPAddr(), `observer_event_delivery_latency_seconds_count{action_type="webhook"}`)
			return v == float64(2*(round+1))
		}, 30*time.Second, 10*time.Millisecond, "round %d: one latency observation per successful delivery", round)
		scrapes = append(scrapes, observertest.Metrics(t, o.HTTPAddr()))
	}

	got := evalAtLastScrape(t, scrapes, failureRateAlert)
	require.Len(t, got, 1, "one series: the failing observer; got %v", got)
	require.Equal(t, `{action_type="webhook", observer="down"}`, got[0].Metric.String())
	require.InDelta(t, 1.0, got[0].F, 1e-9, "every attempt of the down observer failed")

	// The failures by class are kept, in their own counter.
	require.Equal(t, 12.0, observertest.Metric(t, o.HTTPAddr(), `observer_actions_failed_by_class_total{action_type="webhook",class="transient",observer="down"}`))
	// The latency histogram: every successful delivery within its +Inf bucket, none of the failures.
	require.Equal(t, 6.0, observertest.Metric(t, o.HTTPAddr(), `observer_event_delivery_latency_seconds_bucket{action_type="webhook",le="+Inf"}`))
	// Each of the six failed deliveries ran out of attempts: six dead.
	require.Eventually(t, func() bool {
		v, _ := observertest.LookupMetric(t, o.HTTPAddr(), `observer_dlq_size`)
		return v == 6
	}, 30*time.Second, 10*time.Millisecond, "observer_dlq_size counts the dead deliveries")
}

// evalAtLastScrape loads the counters of each scrape into a PromQL test
// storage, one minute apart, and evaluates expr at the last.
func evalAtLastScrape(t *testing.T, scrapes []string, expr string) promql.Vector {
	t.Helper()
	values := map[string][]string{} // series → one value per scrape, "_" when absent
	for i, text := range scrapes {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(strings.NewReader(text))
		require.NoError(t, err)
		for name, mf := range mfs {
			if !strings.HasPrefix(name, "observer_actions_") {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := make([]string, 0, len(m.GetLabel()))
				for _, lp := range m.GetLabel() {
					labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
				}
				key := name + "{" + strings.Join(labels, ",") + "}"
				if values[key] == nil {
					values[key] = slices.Repeat([]string{"_"}, len(scrapes))
				}
				values[key][i] = fmt.Sprint(m.GetCounter().GetValue())
			}
		}
	}
	var load strings.Builder
	load.WriteString("load 1m\n")
	for key, vs := range values {
		load.WriteString("  " + key + " " + strings.Join(vs, " ") + "\n")
	}
	storage := promqltest.LoadedStorage(t, load.String())
	t.Cleanup(func() { _ = storage.Close() })
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	at := time.Unix(0, 0).Add(time.Duration(len(scrapes)-1) * time.Minute)
	q, err := engine.NewInstantQuery(context.Background(), storage, nil, expr, at)
	require.NoError(t, err)
	defer q.Close()
	res := q.Exec(context.Background())
	require.NoError(t, res.Err)
	vec, err := res.Vector()
	require.NoError(t, err)
	return vec
}

package scrape

import (
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func parsePage(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err)
	return fams
}

const pageA = `# TYPE observer_events_processed_total counter
observer_events_processed_total 10
# TYPE observer_jobs_enqueued_total counter
observer_jobs_enqueued_total{action_type="webhook"} 4
# TYPE observer_listener_is_leader gauge
observer_listener_is_leader 1
# TYPE observer_job_queue_depth gauge
observer_job_queue_depth{queue="fraiseql_observers_webhook"} 7
# TYPE observer_batch_duration_seconds histogram
observer_batch_duration_seconds_bucket{le="0.5"} 2
observer_batch_duration_seconds_bucket{le="10"} 3
observer_batch_duration_seconds_bucket{le="+Inf"} 3
observer_batch_duration_seconds_sum 1.5
observer_batch_duration_seconds_count 3
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 0.001
go_gc_duration_seconds_sum 0.25
go_gc_duration_seconds_count 5
# TYPE odd untyped
odd{x="a\"b"} 2
`

const pageB = `# TYPE observer_events_processed_total counter
observer_events_processed_total 1234567
# TYPE observer_jobs_enqueued_total counter
observer_jobs_enqueued_total{action_type="webhook"} 6
observer_jobs_enqueued_total{action_type="email"} 1
# TYPE observer_listener_is_leader gauge
observer_listener_is_leader 0
# TYPE observer_job_queue_depth gauge
observer_job_queue_depth{queue="fraiseql_observers_webhook"} 9
# TYPE observer_batch_duration_seconds histogram
observer_batch_duration_seconds_bucket{le="0.5"} 1
observer_batch_duration_seconds_bucket{le="10"} 1
observer_batch_duration_seconds_bucket{le="+Inf"} 2
observer_batch_duration_seconds_sum 20.25
observer_batch_duration_seconds_count 2
`

// Counters, histogram buckets, sums and counts add up; gauges stay per
// instance with an instance label; the database-wide queue depth is
// reported once; a failed instance contributes nothing.
func TestCombine(t *testing.T) {
	t.Parallel()
	got := Combine([]Result{
		{Target: Target{Instance: "a:1"}, Families: parsePage(t, pageA)},
		{Target: Target{Instance: "b:2"}, Families: parsePage(t, pageB)},
		{Target: Target{Instance: "down:3"}, Err: errTest},
	})
	var lines []string
	for _, s := range got {
		lines = append(lines, s.Line())
	}
	require.Equal(t, []string{
		`go_gc_duration_seconds{instance="a:1",quantile="0.5"} 0.001`,
		`go_gc_duration_seconds_count 5`,
		`go_gc_duration_seconds_sum 0.25`,
		`observer_batch_duration_seconds_bucket{le="0.5"} 3`,
		`observer_batch_duration_seconds_bucket{le="10"} 4`,
		`observer_batch_duration_seconds_bucket{le="+Inf"} 5`,
		`observer_batch_duration_seconds_count 5`,
		`observer_batch_duration_seconds_sum 21.75`,
		`observer_events_processed_total 1234577`,
		`observer_job_queue_depth{queue="fraiseql_observers_webhook"} 9`,
		`observer_jobs_enqueued_total{action_type="email"} 1`,
		`observer_jobs_enqueued_total{action_type="webhook"} 10`,
		`observer_listener_is_leader{instance="a:1"} 1`,
		`observer_listener_is_leader{instance="b:2"} 0`,
		`odd{instance="a:1",x="a\"b"} 2`,
	}, lines)
	byKey := map[string]Series{}
	for _, s := range got {
		byKey[s.Key()] = s
	}
	ev := byKey["observer_events_processed_total"]
	require.Equal(t, Series{Name: "observer_events_processed_total", Metric: "observer_events_processed_total", Type: "counter",
		Labels: map[string]string{}, Value: 1234577, Combined: CombinedSum, Instances: 2}, ev)
	qd := byKey[`observer_job_queue_depth{queue="fraiseql_observers_webhook"}`]
	require.Equal(t, CombinedDatabase, qd.Combined)
	require.Equal(t, 2, qd.Instances)
	require.Equal(t, CombinedPerInstance, byKey[`observer_listener_is_leader{instance="b:2"}`].Combined)
	require.Equal(t, "histogram", byKey[`observer_batch_duration_seconds_count`].Type)
	require.Equal(t, "observer_batch_duration_seconds", byKey[`observer_batch_duration_seconds_count`].Metric)
}

func TestFormatValue(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{0: "0", 1234567: "1234567", 0.25: "0.25", 1e20: "1e+20", -3: "-3", 1.5e-7: "1.5e-07"} {
		require.Equal(t, want, FormatValue(v))
	}
}

func TestReachable(t *testing.T) {
	t.Parallel()
	require.Equal(t, "127.0.0.1:8000", reachable("127.0.0.1:8000", "node-a"))
	require.Equal(t, "node-a:8000", reachable("0.0.0.0:8000", "node-a"))
	require.Equal(t, "node-a:8000", reachable("[::]:8000", "node-a"))
	require.Equal(t, "node-a:8000", reachable(":8000", "node-a"))
	require.Equal(t, "127.0.0.1:8000", reachable(":8000", ""))
}

var errTest = &testError{}

type testError struct{}

func (*testError) Error() string { return "unreachable" }

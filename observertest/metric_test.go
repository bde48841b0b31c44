package observertest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
)

const exposition = `# HELP observer_cache_hits_total Cache hits.
# TYPE observer_cache_hits_total counter
observer_cache_hits_total 0
observer_cache_errors_total{backend="redis"} 4
observer_cache_hit_rate 0.4 1700000000000
`

// A missing series is reported as missing, not as 0; Metric fails on it and
// names the series the process has under that name.
func TestMetricTellsMissingFromZero(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(exposition))
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	v, ok := observertest.LookupMetric(t, addr, "observer_cache_hits_total")
	require.True(t, ok)
	require.Zero(t, v)
	_, ok = observertest.LookupMetric(t, addr, "observer_cache_misses_total")
	require.False(t, ok, "absent is not 0")
	require.Equal(t, 4.0, observertest.Metric(t, addr, `observer_cache_errors_total{backend="redis"}`))
	require.Equal(t, 0.4, observertest.Metric(t, addr, "observer_cache_hit_rate"), "a timestamp after the value is ignored")

	msg := fatal(t, func(tb testing.TB) { observertest.Metric(tb, addr, `observer_cache_errors_total{backend="postgres"}`) })
	require.Contains(t, msg, `does not expose observer_cache_errors_total{backend="postgres"}`)
	require.Contains(t, msg, `observer_cache_errors_total{backend="redis"} 4`)

	_, ok, err := observertest.ReadMetric(context.Background(), addr, "observer_cache_misses_total")
	require.NoError(t, err)
	require.False(t, ok)
	_, _, err = observertest.ReadMetric(context.Background(), "127.0.0.1:1", "x")
	require.Error(t, err)
}

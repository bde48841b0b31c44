package resultcache

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

// Identical requests in flight at once wait for the first: it misses and
// sends; once it has saved, the other is a hit. The reads feed the metrics.
func TestLookupWaitsForInflight(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	rc, err := New(Config{Store: postgres.NewCache(pool), Registerer: reg})
	require.NoError(t, err)
	hit, release := rc.Lookup(ctx, "k")
	require.False(t, hit)

	second := make(chan bool)
	go func() {
		hit, release := rc.Lookup(ctx, "k")
		release()
		second <- hit
	}()
	select {
	case <-second:
		t.Fatal("the second lookup must wait for the first sender")
	case <-time.After(50 * time.Millisecond):
	}
	rc.Save(ctx, "k", 200, time.Minute)
	release()
	require.True(t, <-second)

	// A failed send (nothing saved) lets the next one send.
	hit, release = rc.Lookup(ctx, "other")
	require.False(t, hit)
	release()
	hit, release = rc.Lookup(ctx, "other")
	require.False(t, hit)
	release()

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	hit, release = rc.Lookup(cctx, "")
	require.False(t, hit, "cache off")
	release()

	got := map[string]float64{}
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[f.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	require.Equal(t, map[string]float64{
		"observer_cache_hits_total": 1, "observer_cache_misses_total": 3, "observer_cache_hit_rate": 0.25,
	}, got)
}

func TestNewNeedsAStore(t *testing.T) {
	t.Parallel()
	_, err := New(Config{})
	require.ErrorContains(t, err, "store is required")
}

package resultcache

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// Metrics are the cache's Prometheus metrics.
type Metrics struct {
	Hits    prometheus.Counter     // cache reads that found a value
	Misses  prometheus.Counter     // cache reads that found none
	HitRate prometheus.Gauge       // hits / (hits + misses) since start
	Errors  *prometheus.CounterVec // cache backend failures, by backend

	hits, reads atomic.Int64
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_cache_hits_total", Help: "Cache reads that found a value (count). No labels.",
		}),
		Misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_cache_misses_total", Help: "Cache reads that found no value (count). No labels.",
		}),
		HitRate: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_cache_hit_rate", Help: "Cache hits over cache reads since the process started (a ratio, 0 to 1). No labels.",
		}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_cache_errors_total", Help: "Failures of the cache backend (count), by backend.",
		}, []string{"backend"}),
	}
	if reg != nil {
		reg.MustRegister(m.Hits, m.Misses, m.HitRate, m.Errors)
	}
	return m
}

// read records one cache read for the hit counters and the hit rate.
func (m *Metrics) read(hit bool) {
	reads := m.reads.Add(1)
	hits := m.hits.Load()
	if hit {
		hits = m.hits.Add(1)
		m.Hits.Inc()
	} else {
		m.Misses.Inc()
	}
	m.HitRate.Set(float64(hits) / float64(reads))
}

// Instrument wraps c so that its reads feed observer_cache_hits_total,
// observer_cache_misses_total and observer_cache_hit_rate, and its failures
// observer_cache_errors_total{backend}.
func Instrument(c storage.Cache, m *Metrics) storage.Cache {
	return &instrumented{Cache: c, m: m}
}

type instrumented struct {
	storage.Cache
	m *Metrics
}

func (c *instrumented) fail(err error) error {
	if err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, context.Canceled) {
		c.m.Errors.WithLabelValues(c.Backend()).Inc()
	}
	return err
}

func (c *instrumented) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := c.Cache.Get(ctx, key)
	switch {
	case err == nil:
		c.m.read(true)
	case errors.Is(err, storage.ErrNotFound):
		c.m.read(false)
	}
	return v, c.fail(err)
}

func (c *instrumented) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return c.fail(c.Cache.Set(ctx, key, value, ttl))
}

func (c *instrumented) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	ok, err := c.Cache.SetNX(ctx, key, value, ttl)
	return ok, c.fail(err)
}

func (c *instrumented) Delete(ctx context.Context, keys ...string) error {
	return c.fail(c.Cache.Delete(ctx, keys...))
}

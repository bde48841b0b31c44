package breaker

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

// breakerName is the breaker of https://hooks.example.com/orders?token=x
// (observers.EndpointName).
const breakerName = "https://hooks.example.com:443/orders"

var (
	errTransient = &observers.DeliveryError{StatusCode: 503, Err: errors.New("503")}
	errPermanent = &observers.DeliveryError{StatusCode: 404, Permanent: true, Err: errors.New("404")}
)

func newTestRegistry(t *testing.T, store *postgres.BreakerStore) (*Registry, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	r, err := New(Config{Store: store, Metrics: m, CacheTTL: 20 * time.Millisecond})
	require.NoError(t, err)
	return r, m
}

func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	require.NoError(t, m.Write(&d))
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

func newTestStore(t *testing.T) *postgres.BreakerStore {
	t.Helper()
	pool, _ := sqltest.NewDB(t)
	return postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{})
}

// send asks for a permit and, when given one, records outcome.
func send(t *testing.T, r *Registry, cfg observers.CircuitBreakerConfig, outcome error) error {
	t.Helper()
	p, err := r.Allow(context.Background(), breakerName, cfg)
	if err != nil {
		return err
	}
	p.Done(context.Background(), outcome)
	return nil
}

func testBreakerConfig() observers.CircuitBreakerConfig {
	return observers.CircuitBreakerConfig{FailureThreshold: 0.5, SuccessThreshold: 0.8, Timeout: 200 * time.Millisecond,
		SampleSize: 20, MinRequests: 4}.WithDefaults()
}

// Through observers.Env, each path of a host has its own breaker by default
// (scope: endpoint), and all of them share the host's with scope: host.
func TestBreakerScope(t *testing.T) {
	t.Parallel()
	r, _ := newTestRegistry(t, newTestStore(t))
	env := &observers.Env{Breakers: r}
	ctx := context.Background()
	fail := func(cfg observers.CircuitBreakerConfig, url string) {
		t.Helper()
		for range cfg.MinRequests {
			p, err := env.Allow(ctx, url, cfg)
			require.NoError(t, err)
			p.Done(ctx, errTransient)
		}
	}
	endpoint := testBreakerConfig()
	require.Equal(t, observers.ScopeEndpoint, endpoint.Scope, "the default scope")
	fail(endpoint, "https://Hooks.example.com/down?x=1")
	_, err := env.Allow(ctx, "https://hooks.example.com:443/down", endpoint)
	var open *OpenError
	require.ErrorAs(t, err, &open, "the failing path is open")
	require.Equal(t, "https://hooks.example.com:443/down", open.Endpoint)
	_, err = env.Allow(ctx, "https://hooks.example.com/up", endpoint)
	require.NoError(t, err, "another path of the host is not")

	host := endpoint
	host.Scope = observers.ScopeHost
	fail(host, "https://other.example.com/down")
	_, err = env.Allow(ctx, "https://other.example.com/up", host)
	require.ErrorAs(t, err, &open, "with scope: host every path of the host is open")
	require.Equal(t, "https://other.example.com:443", open.Endpoint)
}

// A request snoozed after its breaker admitted it (a rate limit, no free
// in-flight slot) was not sent: it counts neither as a failure nor as a
// success, and a half-open probe's slot is freed.
func TestBreakerIgnoresSnoozedRequests(t *testing.T) {
	t.Parallel()
	r, _ := newTestRegistry(t, newTestStore(t))
	cfg := testBreakerConfig()
	ctx := context.Background()
	snoozed := &observers.SnoozeError{Until: time.Now().Add(time.Second)}
	for range 3 * cfg.MinRequests {
		require.NoError(t, send(t, r, cfg, snoozed))
	}
	for range cfg.MinRequests {
		require.NoError(t, send(t, r, cfg, errTransient))
	}
	_, err := r.Allow(ctx, breakerName, cfg)
	var open *OpenError
	require.ErrorAs(t, err, &open, "the snoozes did not dilute the failures")
	require.Eventually(t, func() bool {
		p, err := r.Allow(ctx, breakerName, cfg)
		if err != nil {
			return false
		}
		p.Done(ctx, snoozed) // a probe that was snoozed frees its slot
		return true
	}, 5*time.Second, 10*time.Millisecond, "half-open")
	for range r.breaker(breakerName, cfg).maxProbes {
		p, err := r.Allow(ctx, breakerName, cfg)
		require.NoError(t, err, "every probe slot is free again")
		p.Done(ctx, nil)
	}
}

func TestBreakerTripsHalfOpensAndCloses(t *testing.T) {
	t.Parallel()
	store := newTestStore(t)
	r, m := newTestRegistry(t, store)
	cfg := testBreakerConfig()
	endpoint := breakerName

	// Below min_requests nothing trips, however many fail.
	for range 3 {
		require.NoError(t, send(t, r, cfg, errTransient))
	}
	// The fourth request reaches min_requests at a ratio of 1 >= 0.5.
	require.NoError(t, send(t, r, cfg, errTransient))

	start := time.Now()
	_, err := r.Allow(context.Background(), breakerName, cfg)
	var open *OpenError
	require.ErrorAs(t, err, &open)
	require.Equal(t, endpoint, open.Endpoint)
	require.WithinDuration(t, start.Add(cfg.Timeout), open.Until, cfg.Timeout)
	require.InDelta(t, 2, value(t, m.State.WithLabelValues(endpoint)), 0)
	require.InDelta(t, 1, value(t, m.Transitions.WithLabelValues(endpoint, "open")), 0)
	require.InDelta(t, 1, value(t, m.Rejections.WithLabelValues(endpoint)), 0)

	// After the timeout it lets probes through (min_requests/2 = 2 of them) ...
	var probes []observers.BreakerPermit
	require.Eventually(t, func() bool {
		p, err := r.Allow(context.Background(), breakerName, cfg)
		if err == nil {
			probes = append(probes, p)
		}
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	p, err := r.Allow(context.Background(), breakerName, cfg)
	require.NoError(t, err)
	probes = append(probes, p)
	_, err = r.Allow(context.Background(), breakerName, cfg)
	require.ErrorAs(t, err, &open, "a third concurrent probe is refused")

	// ... and closes when they succeed (a permanent 4xx is a success).
	probes[0].Done(context.Background(), nil)
	probes[1].Done(context.Background(), errPermanent)
	require.NoError(t, send(t, r, cfg, nil))
	require.InDelta(t, 0, value(t, m.State.WithLabelValues(endpoint)), 0)
	require.InDelta(t, 1, value(t, m.Transitions.WithLabelValues(endpoint, "half-open")), 0)
	require.InDelta(t, 1, value(t, m.Transitions.WithLabelValues(endpoint, "closed")), 0)
}

func TestBreakerPermanentErrorsAreSuccesses(t *testing.T) {
	t.Parallel()
	r, _ := newTestRegistry(t, newTestStore(t))
	cfg := testBreakerConfig()
	for range 20 {
		require.NoError(t, send(t, r, cfg, errPermanent))
	}
	// Three transient failures against many 4xx stay below the ratio.
	for range 3 {
		require.NoError(t, send(t, r, cfg, errTransient))
	}
	require.NoError(t, send(t, r, cfg, nil))
}

func TestBreakerRatioBelowThresholdStaysClosed(t *testing.T) {
	t.Parallel()
	r, _ := newTestRegistry(t, newTestStore(t))
	cfg := testBreakerConfig()
	for range 10 {
		require.NoError(t, send(t, r, cfg, nil))
		require.NoError(t, send(t, r, cfg, nil))
		require.NoError(t, send(t, r, cfg, errTransient)) // 1/3 < 0.5
	}
}

func TestBreakerFailedProbeReopens(t *testing.T) {
	t.Parallel()
	r, m := newTestRegistry(t, newTestStore(t))
	cfg := testBreakerConfig()
	cfg.SuccessThreshold = 1 // no failed probe is excused
	for range 4 {
		require.NoError(t, send(t, r, cfg, errTransient))
	}
	require.Eventually(t, func() bool { return send(t, r, cfg, errTransient) == nil }, 5*time.Second, 10*time.Millisecond)
	_, err := r.Allow(context.Background(), breakerName, cfg)
	var open *OpenError
	require.ErrorAs(t, err, &open)
	require.InDelta(t, 2, value(t, m.Transitions.WithLabelValues(breakerName, "open")), 0)
}

func TestBreakerExcusesFailedProbesWithinSuccessThreshold(t *testing.T) {
	t.Parallel()
	r, _ := newTestRegistry(t, newTestStore(t))
	cfg := testBreakerConfig()
	cfg.MinRequests, cfg.SuccessThreshold = 8, 0.75 // 4 probes, 1 failure excused
	for range 8 {
		require.NoError(t, send(t, r, cfg, errTransient))
	}
	require.Eventually(t, func() bool { return send(t, r, cfg, errTransient) == nil }, 5*time.Second, 10*time.Millisecond)
	for range 4 {
		require.NoError(t, send(t, r, cfg, nil), "one failed probe is excused")
	}
	b := r.breaker(breakerName, cfg)
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Equal(t, "closed", b.state.State.String())
}

func TestBreakerSharedAcrossInstances(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	a, _ := newTestRegistry(t, postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{}))
	b, _ := newTestRegistry(t, postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{}))
	cfg := testBreakerConfig()
	cfg.Timeout = time.Minute

	_, err := b.Allow(context.Background(), breakerName, cfg) // b has read the state: closed
	require.NoError(t, err)
	for range 4 {
		require.NoError(t, send(t, a, cfg, errTransient))
	}
	require.Eventually(t, func() bool {
		_, err := b.Allow(context.Background(), breakerName, cfg)
		var open *OpenError
		return errors.As(err, &open)
	}, 5*time.Second, 5*time.Millisecond, "b sees the breaker that a opened")

	var state string
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT state FROM observer_circuit_breakers WHERE name = $1`, breakerName).Scan(&state))
	require.Equal(t, "open", state)
}

func TestBreakerSharedCountsAcrossInstances(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	a, _ := newTestRegistry(t, postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{}))
	b, _ := newTestRegistry(t, postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{}))
	cfg := testBreakerConfig()
	cfg.Timeout = time.Minute
	// Two failures each: neither instance alone reaches min_requests.
	for range 2 {
		require.NoError(t, send(t, a, cfg, errTransient))
		require.NoError(t, send(t, b, cfg, errTransient))
	}
	// b recorded the fourth failure; a learns it within its cache TTL.
	require.Eventually(t, func() bool {
		_, err := a.Allow(context.Background(), breakerName, cfg)
		var open *OpenError
		return errors.As(err, &open)
	}, 5*time.Second, 5*time.Millisecond)
}

func TestBreakerDisabledAndUncounted(t *testing.T) {
	t.Parallel()
	r, _ := newTestRegistry(t, newTestStore(t))
	cfg := testBreakerConfig()
	off := cfg
	off.Disabled = true
	p, err := r.Allow(context.Background(), breakerName, off)
	require.NoError(t, err)
	require.Nil(t, p)
	p.Done(context.Background(), errTransient) // nil permit: no-op

	refused := &observers.DeliveryError{Permanent: true, Err: errors.Mark(errors.New("refusing to dial 127.0.0.1"), observers.ErrPrivateTarget)}
	for range 10 {
		require.NoError(t, send(t, r, cfg, refused))
		require.NoError(t, send(t, r, cfg, context.Canceled))
	}
	b := r.breaker(breakerName, cfg)
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Zero(t, b.state.Counts.Requests, "SSRF refusals and cancellations never reach the breaker")
}

func TestBreakerConcurrentOutcomes(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	r, _ := newTestRegistry(t, postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{}))
	cfg := testBreakerConfig()
	cfg.SampleSize, cfg.MinRequests = 1000, 1000
	done := make(chan struct{})
	for range 20 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 10 {
				p, err := r.Allow(context.Background(), breakerName, cfg)
				if err == nil {
					p.Done(context.Background(), nil)
				}
			}
		}()
	}
	for range 20 {
		<-done
	}
	// Successes of a healthy endpoint wait (no write each); the next failure
	// writes them ahead of itself.
	require.NoError(t, send(t, r, cfg, errTransient))
	var requests, failures int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT (counts->>'Requests')::int, (counts->>'TotalFailures')::int FROM observer_circuit_breakers`).Scan(&requests, &failures))
	require.Equal(t, 201, requests, "every outcome is recorded once")
	require.Equal(t, 1, failures)
}

// The rejection of an open breaker is a cached read (no I/O).
func BenchmarkBreakerAllowOpen(b *testing.B) {
	pool, _ := sqltest.NewDB(b)
	r, err := New(Config{Store: postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{})})
	require.NoError(b, err)
	cfg := testBreakerConfig()
	cfg.Timeout = time.Hour
	for range 4 {
		p, err := r.Allow(context.Background(), breakerName, cfg)
		require.NoError(b, err)
		p.Done(context.Background(), errTransient)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Allow(context.Background(), breakerName, cfg); err == nil {
			b.Fatal("allowed")
		}
	}
}

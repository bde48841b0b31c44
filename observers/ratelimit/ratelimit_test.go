package ratelimit

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
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	require.NoError(t, m.Write(&d))
	return d.Counter.GetValue()
}

func newTestLimiter(t *testing.T, store storage.RateLimitStore) (*Limiter, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	l, err := New(Config{Store: store, Metrics: m})
	require.NoError(t, err)
	return l, m
}

// Over its limit a delivery is snoozed until its turn, with no request
// made; the limit is the endpoint's, whichever instance asks.
func TestLimiterSnoozesOverTheLimit(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	a, m := newTestLimiter(t, postgres.NewRateLimitStore(pool))
	b, _ := newTestLimiter(t, postgres.NewRateLimitStore(pool)) // another instance
	ctx := context.Background()
	rate := observers.RateLimitConfig{Limit: 2, Per: time.Minute, Scope: observers.ScopeEndpoint}
	const ep = "https://hooks.example.com:443/orders"
	require.NoError(t, a.Take(ctx, ep, rate))
	require.NoError(t, b.Take(ctx, ep, rate))
	start := time.Now()
	err := a.Take(ctx, ep, rate)
	var snooze *observers.SnoozeError
	require.ErrorAs(t, err, &snooze)
	var limited *LimitedError
	require.ErrorAs(t, err, &limited)
	require.Equal(t, ep, limited.Endpoint)
	require.Equal(t, "2/m", limited.Rate)
	require.WithinDuration(t, start.Add(30*time.Second), snooze.Until, 2*time.Second, "a token comes back every 30s")
	require.ErrorContains(t, err, "rate limit 2/m of "+ep+" reached")
	require.InDelta(t, 1, value(t, m.Limited.WithLabelValues(ep)), 0)

	require.NoError(t, a.Take(ctx, "https://hooks.example.com:443/other", rate), "another endpoint has its own bucket")
	require.NoError(t, a.Take(ctx, ep, observers.RateLimitConfig{}), "no limit")
}

type failingStore struct{}

func (failingStore) Take(context.Context, string, time.Duration, int) (time.Duration, error) {
	return 0, errors.Mark(errors.New("redis: connection refused"), storage.ErrUnavailable)
}
func (failingStore) Backend() string { return "redis" }

// A store that cannot be reached snoozes the delivery (never drops it, never
// lets it through unchecked) and is counted.
func TestLimiterStoreDown(t *testing.T) {
	t.Parallel()
	l, m := newTestLimiter(t, failingStore{})
	start := time.Now()
	err := l.Take(context.Background(), "https://a.example:443/", observers.RateLimitConfig{Limit: 5, Per: time.Second})
	var snooze *observers.SnoozeError
	require.ErrorAs(t, err, &snooze)
	require.WithinDuration(t, start.Add(ErrorSnoozeDefault), snooze.Until, time.Second)
	require.True(t, errors.Is(err, storage.ErrUnavailable), "the cause is kept: %v", err)
	require.InDelta(t, 1, value(t, m.Errors), 0)
}

type countingPermit struct{ outcomes *[]error }

func (p countingPermit) Done(_ context.Context, err error) { *p.outcomes = append(*p.outcomes, err) }

type fakeBreakers struct{ outcomes []error }

func (b *fakeBreakers) Allow(context.Context, string, observers.CircuitBreakerConfig) (observers.BreakerPermit, error) {
	return countingPermit{&b.outcomes}, nil
}

// Env.Admit asks the breaker first and the rate limit second; a request the
// rate limit snoozes hands its breaker permit back with the snooze, which
// the breaker counts neither way.
func TestAdmitRateLimit(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	l, _ := newTestLimiter(t, postgres.NewRateLimitStore(pool))
	breakers := &fakeBreakers{}
	env := &observers.Env{Breakers: breakers, RateLimits: l}
	target := observers.HTTPTarget{URL: "https://hooks.slack.com/services/T/B/SECRET", SecretPath: true,
		Breaker:   observers.CircuitBreakerConfig{}.WithDefaults(),
		RateLimit: observers.RateLimitConfig{Limit: 1, Per: time.Hour, Scope: observers.ScopeEndpoint}}
	ctx := context.Background()
	p, err := env.Admit(ctx, target)
	require.NoError(t, err)
	p.Done(ctx, nil)
	_, err = env.Admit(ctx, target)
	var limited *LimitedError
	require.ErrorAs(t, err, &limited)
	require.Regexp(t, `^https://hooks\.slack\.com:443/services/sha256-[0-9a-f]{16}$`, limited.Endpoint, "the secret path is hashed")
	require.Len(t, breakers.outcomes, 2)
	require.NoError(t, breakers.outcomes[0])
	var snooze *observers.SnoozeError
	require.ErrorAs(t, breakers.outcomes[1], &snooze, "the permit learns it was not sent")

	target.RateLimit.Scope = observers.ScopeHost
	_, err = env.Admit(ctx, target)
	require.NoError(t, err, "the host's bucket is another one")
	target.URL = "https://hooks.slack.com/services/T/B/OTHER"
	_, err = env.Admit(ctx, target)
	require.ErrorAs(t, err, &limited, "with scope: host every path of the host shares it")
	require.Equal(t, "https://hooks.slack.com:443", limited.Endpoint)
}

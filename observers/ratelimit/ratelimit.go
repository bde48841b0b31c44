package ratelimit

import (
	"cmp"
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Defaults of Config.
const (
	ErrorSnoozeDefault = time.Second
	// errorLogEvery bounds the warnings about a failing store.
	errorLogEvery = 10 * time.Second
)

// Config configures a Limiter.
type Config struct {
	Store   storage.RateLimitStore // shared buckets; required
	Metrics *Metrics               // default: unregistered metrics
	Logger  *slog.Logger           // default: discard
	// ErrorSnooze is how long a delivery waits when the store cannot be
	// reached. Default 1s.
	ErrorSnooze time.Duration
}

// Limiter keeps the rate limits of one process's deliveries in a shared
// store. It implements observers.RateLimiter and is safe for concurrent use.
type Limiter struct {
	cfg      Config
	loggedAt atomic.Int64 // unix nanoseconds of the last store warning
}

var _ observers.RateLimiter = (*Limiter)(nil)

// New returns a limiter on cfg.Store.
func New(cfg Config) (*Limiter, error) {
	if cfg.Store == nil {
		return nil, errors.New("ratelimit: a store is required")
	}
	cfg.Metrics = cmp.Or(cfg.Metrics, NewMetrics(nil))
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	cfg.ErrorSnooze = cmp.Or(cfg.ErrorSnooze, ErrorSnoozeDefault)
	return &Limiter{cfg: cfg}, nil
}

// LimitedError says that an endpoint is at its rate limit until Until, the
// request's turn.
type LimitedError struct {
	Endpoint string
	Rate     string // as written: 50/s
	Until    time.Time
}

func (e *LimitedError) Error() string {
	return "rate limit " + e.Rate + " of " + e.Endpoint + " reached; next turn at " + e.Until.UTC().Format(time.RFC3339Nano)
}

// Take implements observers.RateLimiter: nil when the request may go, an
// *observers.SnoozeError (wrapping a *LimitedError, or the store's error)
// when it must wait.
func (l *Limiter) Take(ctx context.Context, endpoint string, cfg observers.RateLimitConfig) error {
	if l == nil || !cfg.Enabled() || endpoint == "" {
		return nil
	}
	wait, err := l.cfg.Store.Take(ctx, endpoint, cfg.Interval(), cfg.Limit)
	now := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			l.cfg.Metrics.Errors.Inc()
			l.warn(ctx, endpoint, err)
		}
		return &observers.SnoozeError{Until: now.Add(l.cfg.ErrorSnooze), Err: errors.WithHint(
			errors.Wrapf(err, "rate limit of %s cannot be checked; the delivery waits", endpoint),
			"check the rate_limit.backend store (Postgres, or Redis with backend: redis)")}
	}
	if wait <= 0 {
		return nil
	}
	l.cfg.Metrics.Limited.WithLabelValues(endpoint).Inc()
	until := now.Add(wait)
	return &observers.SnoozeError{Until: until, Err: &LimitedError{Endpoint: endpoint, Rate: cfg.String(), Until: until}}
}

// warn logs a store failure, at most once every errorLogEvery.
func (l *Limiter) warn(ctx context.Context, endpoint string, err error) {
	now := time.Now().UnixNano()
	last := l.loggedAt.Load()
	if now-last < int64(errorLogEvery) || !l.loggedAt.CompareAndSwap(last, now) {
		return
	}
	l.cfg.Logger.WarnContext(ctx, "ratelimit: cannot reach the store; rate-limited deliveries wait until it answers",
		slog.String("endpoint", endpoint), slog.String("backend", l.cfg.Store.Backend()), slog.String("error", err.Error()))
}

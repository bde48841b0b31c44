package postgres

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// RateLimitOpTimeoutDefault bounds each Take unless the caller's context
// ends sooner.
const RateLimitOpTimeoutDefault = 2 * time.Second

// RateLimitStore keeps rate limits in observer_rate_limits, one row per
// bucket, taken by observers.rate_limit_take in one round trip under the
// row's lock (migration 00014 describes the algorithm). It implements
// storage.RateLimitStore and is safe for concurrent use.
type RateLimitStore struct {
	q *dbsqlc.Queries
}

var _ storage.RateLimitStore = (*RateLimitStore)(nil)

// NewRateLimitStore returns a store on pool.
func NewRateLimitStore(pool *pgxpool.Pool) *RateLimitStore {
	return &RateLimitStore{q: dbsqlc.New(pool)}
}

// Backend returns "postgres".
func (s *RateLimitStore) Backend() string { return "postgres" }

// Take implements storage.RateLimitStore.
func (s *RateLimitStore) Take(ctx context.Context, key string, interval time.Duration, burst int) (time.Duration, error) {
	if interval <= 0 || burst < 1 {
		return 0, errors.Newf("rate limit %s: interval and burst must be positive", key)
	}
	ctx, cancel := context.WithTimeout(ctx, RateLimitOpTimeoutDefault)
	defer cancel()
	secs, err := s.q.RateLimitTake(ctx, dbsqlc.RateLimitTakeParams{
		Name: key, IntervalSeconds: interval.Seconds(), Burst: int32(min(burst, 1<<31-1)),
	})
	if err != nil {
		return 0, errors.Wrapf(interpretError(err), "rate limit %s", key)
	}
	if secs <= 0 {
		return 0, nil
	}
	return max(time.Duration(secs*float64(time.Second)), time.Microsecond), nil
}

// Cleanup deletes the buckets that are full again and have no wait line
// (they hold nothing a fresh row would not); run it periodically.
func (s *RateLimitStore) Cleanup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := s.q.RateLimitCleanup(ctx)
	return errors.Wrap(interpretError(err), "rate limit cleanup")
}

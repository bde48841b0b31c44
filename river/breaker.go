package river

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/riverqueue/river"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// breakerSnoozeJitterMax bounds the jitter added to a snooze, so the jobs
// held by an open breaker do not all wake at the instant it may half-open.
const breakerSnoozeJitterMax = time.Second

// breakerAllow asks the circuit breaker of url's endpoint for a request. When
// the breaker is open it returns a River snooze until the breaker may let the
// job through: the job is put back without spending an attempt (River undoes
// the attempt's increment on a snooze) and no request is sent. Without a
// registry (nil) every request is allowed.
func (w *ActionWorker) breakerAllow(ctx context.Context, url string, cfg observers.CircuitBreakerConfig) (*observers.BreakerPermit, error) {
	permit, err := w.breakers.Allow(ctx, url, cfg)
	var open *observers.BreakerOpenError
	if errors.As(err, &open) {
		d := max(time.Until(open.Until), 0)
		if j := min(d/10, breakerSnoozeJitterMax); j > 0 {
			d += rand.N(j)
		}
		return nil, river.JobSnooze(d)
	}
	return permit, err
}

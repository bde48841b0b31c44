package observers

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"
)

// HTTPTarget is one HTTP request of a delivery (webhook, Slack), as the
// limits that guard its endpoint see it.
type HTTPTarget struct {
	URL string
	// SecretPath says that the URL's path is a credential (Slack incoming
	// webhooks): the endpoint's names hide it (EndpointName).
	SecretPath bool
	// Breaker configures the endpoint's circuit breaker; its Scope names
	// the breaker.
	Breaker CircuitBreakerConfig
	// RateLimit is the endpoint's rate limit (zero: none); its Scope names
	// the limit.
	RateLimit RateLimitConfig
}

// Admit asks the limits of t's endpoint for one request: its circuit
// breaker (e.Breakers), then its rate limit (e.RateLimits), so that a
// request an open breaker refuses takes no token. It returns a permit to
// report the outcome to (never nil), or a *SnoozeError when the request
// must wait (an open breaker, the rate limit reached): nothing was sent and
// no attempt is spent. Without those services, or for a URL that names no
// endpoint (the request itself refuses it), every request is admitted.
func (e *Env) Admit(ctx context.Context, t HTTPTarget) (BreakerPermit, error) {
	if e == nil {
		return noPermit{}, nil
	}
	var permit BreakerPermit = noPermit{}
	if e.Breakers != nil && !t.Breaker.Disabled {
		if name, err := EndpointName(t.URL, t.Breaker.Scope, t.SecretPath); err == nil {
			p, err := e.Breakers.Allow(ctx, name, t.Breaker)
			if err != nil {
				return noPermit{}, err
			}
			if p != nil {
				permit = p
			}
		}
	}
	if e.RateLimits != nil && t.RateLimit.Enabled() {
		if name, err := EndpointName(t.URL, t.RateLimit.Scope, t.SecretPath); err == nil {
			if err := e.RateLimits.Take(ctx, name, t.RateLimit); err != nil {
				var snooze *SnoozeError
				if !errors.As(err, &snooze) { // the contract's snooze, should a limiter return anything else
					snooze = &SnoozeError{Until: time.Now().Add(time.Second), Err: err}
				}
				permit.Done(ctx, snooze) // not sent: counts neither way
				return noPermit{}, snooze
			}
		}
	}
	return permit, nil
}

// HTTPLimits is the http: block of the delivery's configuration, defaults
// applied (the defaults alone when the delivery has none).
func (d *Delivery) HTTPLimits() HTTPConfig {
	if d == nil || d.Config == nil {
		return HTTPConfig{}.WithDefaults()
	}
	return d.Config.HTTP.WithDefaults()
}

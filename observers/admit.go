package observers

import "context"

// HTTPTarget is one HTTP request of a delivery (webhook, Slack), as the
// limits that guard its endpoint see it.
type HTTPTarget struct {
	URL string
	// SecretPath says that the URL's path is a credential (Slack incoming
	// webhooks): the endpoint's name hides it (EndpointName).
	SecretPath bool
	// Breaker configures the endpoint's circuit breaker; its Scope names
	// the breaker.
	Breaker CircuitBreakerConfig
}

// Admit asks the limits of t's endpoint for one request: its circuit
// breaker (e.Breakers). It returns a permit to report the outcome to (never
// nil), or a *SnoozeError when the request must wait (an open breaker):
// nothing was sent and no attempt is spent. Without e.Breakers, or for a
// URL that names no endpoint (the request refuses it), every request is
// admitted.
func (e *Env) Admit(ctx context.Context, t HTTPTarget) (BreakerPermit, error) {
	if e == nil || e.Breakers == nil || t.Breaker.Disabled {
		return noPermit{}, nil
	}
	name, err := EndpointName(t.URL, t.Breaker.Scope, t.SecretPath)
	if err != nil {
		return noPermit{}, nil // the request itself reports the invalid URL
	}
	p, err := e.Breakers.Allow(ctx, name, t.Breaker)
	if err != nil {
		return noPermit{}, err
	}
	if p == nil {
		p = noPermit{}
	}
	return p, nil
}

package ratelimit

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the rate limits' Prometheus metrics.
type Metrics struct {
	Limited *prometheus.CounterVec // deliveries snoozed at their endpoint's limit, by endpoint
	Errors  prometheus.Counter     // takes that failed because the store could not be reached
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_rate_limited_total", Help: "Deliveries snoozed without a request (count) because their endpoint's rate limit was reached, by endpoint.",
		}, []string{"endpoint"}),
		Errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_rate_limit_errors_total", Help: "Rate limit checks that failed (count) because the store could not be reached (the delivery is snoozed). No labels.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Limited, m.Errors)
	}
	return m
}

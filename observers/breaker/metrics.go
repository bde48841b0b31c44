package breaker

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the circuit breakers' Prometheus metrics.
type Metrics struct {
	State       *prometheus.GaugeVec   // 0 closed, 1 half-open, 2 open, by endpoint
	Transitions *prometheus.CounterVec // state changes made by this instance, by endpoint and new state
	Rejections  *prometheus.CounterVec // jobs snoozed because the breaker was open, by endpoint
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		State: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "observer_circuit_breaker_state", Help: "Circuit breaker state (an enum, not a count) by endpoint: 0 closed, 1 half-open, 2 open.",
		}, []string{"endpoint"}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_circuit_breaker_transitions_total", Help: "Circuit breaker state changes (count) made by this instance, by endpoint and the state changed to (to: closed, half-open, open).",
		}, []string{"endpoint", "to"}),
		Rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_circuit_breaker_rejections_total", Help: "Jobs snoozed without a request (count) because the endpoint's circuit breaker was open, by endpoint.",
		}, []string{"endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.State, m.Transitions, m.Rejections)
	}
	return m
}

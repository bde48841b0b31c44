package webhook

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the HTTP client's Prometheus metrics (NewHTTPClient).
type Metrics struct {
	InFlight prometheus.Gauge       // requests in flight through the client
	Snoozed  prometheus.Counter     // deliveries snoozed for want of an in-flight slot
	Cut      *prometheus.CounterVec // response bodies cut short, by reason: size or time
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_http_requests_in_flight", Help: "HTTP requests (count) of webhook and Slack deliveries in flight in this process (at most concurrency.max_in_flight). No labels.",
		}),
		Snoozed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_http_in_flight_snoozed_total", Help: "Deliveries snoozed without a request (count) because every in-flight slot (concurrency.max_in_flight) stayed taken. No labels.",
		}),
		Cut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_http_responses_cut_total", Help: "Response bodies not read to their end (count), by reason: size (longer than http.max_response_bytes) or time (slower than http.response_read_timeout); the connection is dropped.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.InFlight, m.Snoozed, m.Cut)
	}
	return m
}

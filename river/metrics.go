package river

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the workers' Prometheus metrics. Names follow the dashboards
// (observer_*) and never change.
type Metrics struct {
	ActionsExecuted *prometheus.CounterVec   // delivery attempts, by action type and observer
	ActionsFailed   *prometheus.CounterVec   // failed attempts, by action type, observer and class (transient|permanent)
	ActionDuration  *prometheus.HistogramVec // duration of one attempt, by action type
	BatchFollowUps  *prometheus.CounterVec   // batch deliveries continued as their own job, by action type and the state it starts in
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ActionsExecuted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_actions_executed_total", Help: "Action attempts executed.",
		}, []string{"action_type", "observer"}),
		ActionsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_actions_failed_total", Help: "Action attempts that failed.",
		}, []string{"action_type", "observer", "class"}),
		ActionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "observer_action_duration_seconds", Help: "Duration of one action attempt.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"action_type"}),
		BatchFollowUps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_batch_followups_total",
			Help: "Deliveries of batch jobs that continue as a River job of their own, by the state it starts in: retryable (failed, will retry), cancelled (permanent failure, DLQ), discarded (failed, no attempts left, DLQ), scheduled (circuit breaker open), available (not started in time).",
		}, []string{"action_type", "state"}),
	}
	if reg != nil {
		reg.MustRegister(m.ActionsExecuted, m.ActionsFailed, m.ActionDuration, m.BatchFollowUps)
	}
	return m
}

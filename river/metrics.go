package river

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the workers' Prometheus metrics. Names follow the dashboards
// (observer_*) and never change.
type Metrics struct {
	ActionsExecuted *prometheus.CounterVec   // delivery attempts, by action type and observer
	ActionsFailed   *prometheus.CounterVec   // failed attempts, by action type and observer (the labels of ActionsExecuted, so the two divide)
	FailedByClass   *prometheus.CounterVec   // failed attempts, by action type, observer and class (transient|permanent)
	ActionDuration  *prometheus.HistogramVec // duration of one attempt, by action type
	DeliveryLatency *prometheus.HistogramVec // change committed to action succeeded, by action type
	BatchFollowUps  *prometheus.CounterVec   // batch deliveries continued as their own job, by action type and the state it starts in
}

// DeliveryLatencyBuckets resolve 1 ms to about 16 s: 1, 2, 4 … 16384 ms.
var DeliveryLatencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ActionsExecuted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_actions_executed_total",
			Help: "Action attempts executed (count), by action_type and observer. Attempts not made (open circuit breaker, rate limit, cached result) are not counted.",
		}, []string{"action_type", "observer"}),
		ActionsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_actions_failed_total",
			Help: "Action attempts that failed (count), by action_type and observer: the labels of observer_actions_executed_total, so rate(failed)/rate(executed) is the failure ratio. By class: observer_actions_failed_by_class_total.",
		}, []string{"action_type", "observer"}),
		FailedByClass: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_actions_failed_by_class_total",
			Help: "Action attempts that failed (count), by action_type, observer and class: transient (retried) or permanent (cancelled to the DLQ).",
		}, []string{"action_type", "observer", "class"}),
		ActionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "observer_action_duration_seconds", Help: "Duration of one action attempt (seconds), by action_type.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"action_type"}),
		DeliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "observer_event_delivery_latency_seconds",
			Help:    "Time from a change's created_at in the change log to its action succeeding (seconds), by action_type; includes queueing and retries. Observed by the worker that succeeded.",
			Buckets: DeliveryLatencyBuckets,
		}, []string{"action_type"}),
		BatchFollowUps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_batch_followups_total",
			Help: "Deliveries of batch jobs that continue as a River job of their own (count), by action_type and the state it starts in: retryable (failed, will retry), cancelled (permanent failure, DLQ), discarded (failed, no attempts left, DLQ), scheduled (circuit breaker open), available (not started in time).",
		}, []string{"action_type", "state"}),
	}
	if reg != nil {
		reg.MustRegister(m.ActionsExecuted, m.ActionsFailed, m.FailedByClass, m.ActionDuration, m.DeliveryLatency, m.BatchFollowUps)
	}
	return m
}

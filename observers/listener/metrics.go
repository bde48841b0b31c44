package listener

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the listener's Prometheus metrics. Names follow the
// dashboards (observer_*) and never change.
type Metrics struct {
	EventsProcessed   prometheus.Counter     // change-log rows read and checkpointed
	EventsSkipped     *prometheus.CounterVec // rows recorded in observer_skipped_events, by reason
	EventsMatched     prometheus.Counter     // rows that matched at least one observer
	ConditionErrors   *prometheus.CounterVec // condition runtime errors, by observer
	JobsEnqueued      *prometheus.CounterVec // deliveries enqueued, by action type
	Batches           prometheus.Counter     // enqueue transactions committed
	BatchDuration     prometheus.Histogram   // time of one enqueue transaction
	BatchErrors       prometheus.Counter     // enqueue transactions that failed (and will be replayed)
	IsLeader          prometheus.Gauge       // 1 while this instance leads its listener group
	Leader            prometheus.Gauge       // observer_is_leader: the same, under the name the dashboards and alerts use
	CheckpointSeq     prometheus.Gauge       // pk of the last checkpointed change
	CheckpointTxID    prometheus.Gauge       // txid of the last checkpointed change
	LeaderChanges     prometheus.Counter     // times this instance became leader
	HorizonHeldEvents prometheus.Gauge       // rows committed after the checkpoint that the horizon still holds back (sampled)
	DedupSkips        prometheus.Counter     // matched events not enqueued: their content key was seen within the window
	DedupErrors       *prometheus.CounterVec // dedup backend failures, by backend
	Gauges            *Gauges                // database-wide gauges, refreshed by the leader
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsProcessed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_events_processed_total", Help: "Change-log rows (count) read and checkpointed by the leader. No labels.",
		}),
		EventsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_events_skipped_total", Help: "Change-log rows (count) that could not be processed and were recorded in observer_skipped_events, by reason.",
		}, []string{"reason"}),
		EventsMatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_events_matched_total", Help: "Change-log rows (count) that matched at least one observer. No labels.",
		}),
		ConditionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_condition_errors_total", Help: "Conditions that failed at run time (count; treated as no match), by observer.",
		}, []string{"observer"}),
		JobsEnqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_jobs_enqueued_total", Help: "Deliveries enqueued (count; an action of an observer for one change), in a batch job or a River job of their own, by action_type.",
		}, []string{"action_type"}),
		Batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_batches_total", Help: "Enqueue transactions committed (count). No labels.",
		}),
		BatchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "observer_batch_duration_seconds", Help: "Duration of one enqueue transaction (seconds). No labels.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		BatchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_batch_errors_total", Help: "Enqueue transactions that failed and will be replayed (count). No labels.",
		}),
		IsLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_listener_is_leader", Help: "1 while this instance leads its listener group, else 0. No labels. Same as observer_is_leader.",
		}),
		CheckpointSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_checkpoint_event_id", Help: "pk_entity_change_log of the last checkpointed change (an id, not a count). No labels.",
		}),
		CheckpointTxID: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_checkpoint_txid", Help: "Transaction id of the last checkpointed change (an id, not a count). No labels.",
		}),
		LeaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_leader_acquired_total", Help: "Times (count) this instance became the leader of its listener group. No labels.",
		}),
		HorizonHeldEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_horizon_held_events", Help: "Committed change-log rows (count) after the checkpoint that the transaction horizon still holds back (a long-open transaction); sampled whenever the leader finds nothing to read. No labels.",
		}),
		DedupSkips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "observer_dedup_skips_total", Help: "Matched events (count) not enqueued because the same content was seen within the dedup window. No labels.",
		}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "observer_is_leader", Help: "1 while this instance leads its listener group (reads the change log, enqueues deliveries and refreshes the database-wide gauges), else 0. No labels. Same as observer_listener_is_leader.",
		}),
		Gauges: newGauges(),
		DedupErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_dedup_errors_total", Help: "Failures of the dedup backend (count; handled per dedup.on_error), by backend.",
		}, []string{"backend"}),
	}
	if reg != nil {
		reg.MustRegister(m.EventsProcessed, m.EventsSkipped, m.EventsMatched, m.ConditionErrors, m.JobsEnqueued,
			m.Batches, m.BatchDuration, m.BatchErrors, m.IsLeader, m.CheckpointSeq, m.CheckpointTxID,
			m.LeaderChanges, m.HorizonHeldEvents, m.DedupSkips, m.DedupErrors, m.Leader, m.Gauges.Lag, m.Gauges.Healthy)
	}
	return m
}

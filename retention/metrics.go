package retention

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Metrics are retention's Prometheus metrics. Names follow the dashboards
// (observer_*) and never change.
type Metrics struct {
	// Deleted counts the rows deleted, by table: change_log,
	// completed_jobs, dead_letters, skipped_events, audit,
	// search_tombstones.
	Deleted *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered). Every table's series starts at 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "observer_retention_deleted_total",
			Help: "Rows deleted by retention (count), by table: change_log, completed_jobs, dead_letters (cancelled and discarded jobs), skipped_events, audit (observer_audit), search_tombstones (deleted search documents).",
		}, []string{"table"}),
	}
	for _, p := range (observers.RetentionConfig{}).Periods() {
		m.Deleted.WithLabelValues(p.Table)
	}
	if reg != nil {
		reg.MustRegister(m.Deleted)
	}
	return m
}

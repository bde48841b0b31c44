package listener

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
)

// HeartbeatFactor: an instance is healthy while its heartbeat is younger
// than this many heartbeat intervals (`status` and
// observer_listeners_healthy).
const HeartbeatFactor = 3

// LagRowsLimit bounds the change-log rows the lag gauge looks at past the
// checkpoint (the oldest of them is the one read first).
const LagRowsLimit = 100_000

// gaugesTimeout bounds one refresh of the database-wide gauges.
const gaugesTimeout = 2 * time.Second

// Gauges are the listener group's database-wide gauges:
// observer_listener_lag_seconds and observer_listeners_healthy. Like the
// workers' (river.Gauges), one instance refreshes them (RefreshGauges on
// the leader) and the others export none of their series (ClearGauges).
type Gauges struct {
	Lag     *prometheus.GaugeVec // no labels: vecs so that Clear removes the series
	Healthy *prometheus.GaugeVec
}

func newGauges() *Gauges {
	return &Gauges{
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "observer_listener_lag_seconds",
			Help: "Age (seconds) of the oldest change-log row committed after the checkpoint, not yet enqueued; 0 when caught up. No labels; same figure as `status`'s lag. Database-wide: exported only by the listener leader, refreshed every 5s.",
		}, nil),
		Healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "observer_listeners_healthy",
			Help: "Instances (count) of this listener group whose heartbeat is fresh (younger than 3 heartbeat intervals), the leader included. No labels. Database-wide: exported only by the listener leader, refreshed every 5s.",
		}, nil),
	}
}

// RefreshGauges reads the listener group's gauges from the database. On
// failure the series are removed (absent, not stale).
func (l *Listener) RefreshGauges(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, gaugesTimeout)
	defer cancel()
	cfg := l.active.Load().cfg
	lag, healthy, err := l.readGauges(ctx, cfg.Listener.ID, cfg.Listener.Table)
	if err != nil {
		l.ClearGauges()
		return err
	}
	l.p.Metrics.Gauges.Lag.WithLabelValues().Set(lag)
	l.p.Metrics.Gauges.Healthy.WithLabelValues().Set(float64(healthy))
	return nil
}

// ClearGauges removes the series: this instance does not report them.
func (l *Listener) ClearGauges() {
	l.p.Metrics.Gauges.Lag.Reset()
	l.p.Metrics.Gauges.Healthy.Reset()
}

func (l *Listener) readGauges(ctx context.Context, listenerID, table string) (lag float64, healthy int, err error) {
	ident, err := observers.ParseTableName(table)
	if err != nil {
		return 0, 0, err
	}
	q := dbsqlc.New(l.p.Pool)
	limit := (HeartbeatFactor * l.p.HeartbeatInterval).Seconds()
	rows, err := q.StatusInstances(ctx, dbsqlc.StatusInstancesParams{ListenerID: listenerID, OmitAfterSeconds: limit})
	if err != nil {
		return 0, 0, errors.Wrap(err, "listener gauges: list instances")
	}
	for _, r := range rows {
		if r.HeartbeatAgeSeconds < limit {
			healthy++
		}
	}
	var pos changelog.Position
	cp, err := q.CheckpointGet(ctx, listenerID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return 0, 0, errors.Wrap(err, "listener gauges: read checkpoint")
	default:
		pos = changelog.Position{TxID: uint64(cp.Txid), Seq: cp.EventID}
	}
	_, lag, err = changelog.Lag(ctx, l.p.Pool, ident, pos, LagRowsLimit)
	if err != nil {
		return 0, 0, errors.Wrap(err, "listener gauges")
	}
	return lag, healthy, nil
}

package observers

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
)

// Status defaults.
const (
	// StatusLagDegradedDefault: a change older than this still waiting after
	// the checkpoint makes the status degraded.
	StatusLagDegradedDefault = 5 * time.Minute
	// StatusOmitAfterDefault: instance rows whose heartbeat is older than this
	// (left behind by killed processes) are not shown.
	StatusOmitAfterDefault = time.Hour
	// StatusLagEventsLimitDefault bounds the count of rows after the checkpoint.
	StatusLagEventsLimitDefault = 100_000
	// StatusHeartbeatFactor: an instance is healthy while its heartbeat is
	// younger than this many heartbeat intervals.
	StatusHeartbeatFactor = 3
)

// Health values of Status.Status.
const (
	StatusHealthy  = "healthy"
	StatusDegraded = "degraded"
)

// StatusParams selects what GatherStatus reports on.
type StatusParams struct {
	// ListenerID is the listener group; default: the first listener id in
	// observer_checkpoints, else "default".
	ListenerID string
	// Table is the change log; default core.tb_entity_change_log.
	Table string
	// JobKinds are the River job kinds of observer deliveries (river.Kinds:
	// a delivery's own job and batch jobs). Required.
	JobKinds []string
	// HeartbeatInterval of the instances; default HeartbeatIntervalDefault.
	HeartbeatInterval time.Duration
	// LagDegraded; default StatusLagDegradedDefault.
	LagDegraded time.Duration
	// OmitAfter; default StatusOmitAfterDefault.
	OmitAfter time.Duration
	// LagEventsLimit; default StatusLagEventsLimitDefault.
	LagEventsLimit int
}

// WithDefaults returns a copy of p with every zero field set to its default.
func (p StatusParams) WithDefaults() StatusParams {
	p.Table = cmp.Or(p.Table, "core.tb_entity_change_log")
	p.HeartbeatInterval = cmp.Or(p.HeartbeatInterval, HeartbeatIntervalDefault)
	p.LagDegraded = cmp.Or(p.LagDegraded, StatusLagDegradedDefault)
	p.OmitAfter = cmp.Or(p.OmitAfter, StatusOmitAfterDefault)
	p.LagEventsLimit = cmp.Or(p.LagEventsLimit, StatusLagEventsLimitDefault)
	return p
}

// Status is a snapshot of one listener group, its queue and its dependencies.
// It is the JSON output of `fraiseql-observers status`.
type Status struct {
	ListenerID string `json:"listener_id"`
	// OtherListenerIDs are the other groups found in observer_checkpoints.
	OtherListenerIDs []string `json:"other_listener_ids"`
	Status           string   `json:"status"` // healthy or degraded
	Healthy          bool     `json:"healthy"`
	// Problems says why the status is degraded; empty when healthy.
	Problems []string `json:"problems"`
	// Leader is the instance leading with a fresh heartbeat; nil if none.
	Leader           *StatusLeader    `json:"leader"`
	HealthyListeners int              `json:"healthy_listeners"`
	Listeners        []StatusInstance `json:"listeners"`
	// Checkpoint is nil when the group has never run.
	Checkpoint *StatusCheckpoint `json:"checkpoint"`
	// Table is the change log the lag is measured on.
	Table string `json:"table"`
	// LagSeconds is the age of the oldest change after the checkpoint; 0 when caught up.
	LagSeconds float64 `json:"lag_seconds"`
	// LagEvents counts the changes after the checkpoint, up to LagEventsLimit.
	LagEvents       int64 `json:"lag_events"`
	LagEventsCapped bool  `json:"lag_events_capped"`
	// HorizonBlocker is the backend whose open transaction holds the
	// committed horizon back; nil when no other transaction has an xid.
	HorizonBlocker  *HorizonBlocker `json:"horizon_blocker"`
	Queue           QueueDepth      `json:"queue"`
	DLQSize         int64           `json:"dlq_size"` // discarded + cancelled
	CircuitBreakers []BreakerStatus `json:"circuit_breakers"`
	// CheckedAt is the database's clock when the status was read.
	CheckedAt time.Time `json:"checked_at"`
	// HeartbeatLimitSeconds is the heartbeat age above which an instance is unhealthy.
	HeartbeatLimitSeconds float64 `json:"heartbeat_limit_seconds"`
}

// StatusLeader identifies the leading instance.
type StatusLeader struct {
	InstanceID          string     `json:"instance_id"`
	Host                string     `json:"host"`
	PID                 int        `json:"pid"`
	Since               *time.Time `json:"since"`
	HeartbeatAgeSeconds float64    `json:"heartbeat_age_seconds"`
}

// StatusInstance is one row of observer_listeners.
type StatusInstance struct {
	ID                  string     `json:"id"`
	Host                string     `json:"host"`
	PID                 int        `json:"pid"`
	Role                Role       `json:"role"`
	HeartbeatAgeSeconds float64    `json:"heartbeat_age_seconds"`
	Healthy             bool       `json:"healthy"`
	HTTPAddr            string     `json:"http_addr"`
	Version             string     `json:"version"`
	StartedAt           *time.Time `json:"started_at"`
	LeaderSince         *time.Time `json:"leader_since"`
}

// StatusCheckpoint is the group's position in the change log.
type StatusCheckpoint struct {
	EventID         int64     `json:"event_id"`
	TxID            int64     `json:"txid"`
	LastProcessedAt time.Time `json:"last_processed_at"`
	EventsProcessed int64     `json:"events_processed"`
}

// HorizonBlocker is the backend running the oldest transaction with an xid.
type HorizonBlocker struct {
	PID        int        `json:"pid"`
	Database   string     `json:"database"`
	Username   string     `json:"username"`
	XactStart  *time.Time `json:"xact_start"`
	QueryStart *time.Time `json:"query_start"`
	State      string     `json:"state"`
	Query      string     `json:"query"` // first 200 characters
	AgeSeconds float64    `json:"age_seconds"`
}

// QueueDepth counts the observer's River jobs by state.
type QueueDepth struct {
	Available int64 `json:"available"`
	Running   int64 `json:"running"`
	Retryable int64 `json:"retryable"`
	Scheduled int64 `json:"scheduled"`
	Completed int64 `json:"completed"`
	Cancelled int64 `json:"cancelled"`
	Discarded int64 `json:"discarded"`
	Pending   int64 `json:"pending"` // River's state before available (unused by the observer)
}

// BreakerStatus is one row of observer_circuit_breakers.
type BreakerStatus struct {
	Name   string     `json:"name"`
	State  string     `json:"state"`
	Expiry *time.Time `json:"expiry"`
	// Open is true while the breaker refuses requests: state open and the
	// open period (expiry) not yet over.
	Open bool `json:"open"`
}

// TxBeginner is a pool or connection that GatherStatus reads through.
type TxBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// GatherStatus reads the status of a listener group in one read-only
// transaction. It writes nothing.
func GatherStatus(ctx context.Context, db TxBeginner, p StatusParams) (*Status, error) {
	p = p.WithDefaults()
	if len(p.JobKinds) == 0 {
		return nil, errors.New("status: JobKinds is required")
	}
	ident, err := parseTableName(p.Table)
	if err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return nil, errors.Wrap(err, "status: begin")
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := dbsqlc.New(tx)

	st := &Status{
		Table:                 p.Table,
		OtherListenerIDs:      []string{},
		Problems:              []string{},
		Listeners:             []StatusInstance{},
		CircuitBreakers:       []BreakerStatus{},
		HeartbeatLimitSeconds: (StatusHeartbeatFactor * p.HeartbeatInterval).Seconds(),
	}
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&st.CheckedAt); err != nil {
		return nil, errors.Wrap(err, "status: read clock")
	}
	ids, err := q.StatusListenerIDs(ctx)
	if err != nil {
		return nil, errors.Wrap(err, "status: list listener ids")
	}
	st.ListenerID = p.ListenerID
	if st.ListenerID == "" {
		st.ListenerID = "default"
		if len(ids) > 0 {
			st.ListenerID = ids[0]
		}
	}
	for _, id := range ids {
		if id != st.ListenerID {
			st.OtherListenerIDs = append(st.OtherListenerIDs, id)
		}
	}

	if err := gatherInstances(ctx, q, p, st); err != nil {
		return nil, err
	}
	pos := Position{}
	cp, err := q.CheckpointGet(ctx, st.ListenerID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Never run: no leader either, which is the problem reported.
	case err != nil:
		return nil, errors.Wrap(err, "status: read checkpoint")
	default:
		st.Checkpoint = &StatusCheckpoint{EventID: cp.EventID, TxID: cp.Txid, LastProcessedAt: cp.LastProcessedAt, EventsProcessed: cp.EventsProcessed}
		pos = Position{TxID: uint64(cp.Txid), Seq: cp.EventID}
	}
	if err := gatherLag(ctx, tx, ident, pos, p, st); err != nil {
		return nil, err
	}
	blockers, err := q.StatusHorizonBlocker(ctx)
	if err != nil {
		return nil, errors.Wrap(err, "status: read pg_stat_activity")
	}
	if len(blockers) > 0 {
		b := blockers[0]
		st.HorizonBlocker = &HorizonBlocker{
			PID: int(statusValue(b.Pid)), Database: b.Database, Username: b.Username, XactStart: b.XactStart,
			QueryStart: b.QueryStart, State: b.State, Query: b.Query, AgeSeconds: roundMillis(b.AgeSeconds),
		}
	}
	if err := gatherQueue(ctx, tx, p.JobKinds, st); err != nil {
		return nil, err
	}
	if err := gatherBreakers(ctx, tx, st); err != nil {
		return nil, err
	}

	st.Healthy = len(st.Problems) == 0
	st.Status = StatusHealthy
	if !st.Healthy {
		st.Status = StatusDegraded
	}
	return st, nil
}

func gatherInstances(ctx context.Context, q *dbsqlc.Queries, p StatusParams, st *Status) error {
	rows, err := q.StatusInstances(ctx, dbsqlc.StatusInstancesParams{
		ListenerID: st.ListenerID, OmitAfterSeconds: p.OmitAfter.Seconds(),
	})
	if err != nil {
		return errors.Wrap(err, "status: list instances")
	}
	var fresh, stale []StatusInstance
	for _, r := range rows {
		in := StatusInstance{
			ID: r.ID, Host: statusValue(r.Host), PID: int(statusValue(r.Pid)), Role: Role(r.Role),
			HeartbeatAgeSeconds: roundMillis(max(r.HeartbeatAgeSeconds, 0)),
			Healthy:             r.HeartbeatAgeSeconds < st.HeartbeatLimitSeconds,
			HTTPAddr:            statusValue(r.HttpAddr), Version: statusValue(r.Version), StartedAt: r.StartedAt, LeaderSince: r.LeaderSince,
		}
		st.Listeners = append(st.Listeners, in)
		if in.Healthy {
			st.HealthyListeners++
		}
		if in.Role == RoleLeader {
			if in.Healthy {
				fresh = append(fresh, in)
			} else {
				stale = append(stale, in)
			}
		}
	}
	switch {
	case len(fresh) == 1:
		l := fresh[0]
		st.Leader = &StatusLeader{InstanceID: l.ID, Host: l.Host, PID: l.PID, Since: l.LeaderSince, HeartbeatAgeSeconds: l.HeartbeatAgeSeconds}
	case len(fresh) > 1:
		names := make([]string, len(fresh))
		for i, l := range fresh {
			names[i] = l.ID
		}
		st.Problems = append(st.Problems, fmt.Sprintf("%d instances claim leadership: %s", len(fresh), strings.Join(names, ", ")))
	case len(stale) > 0:
		st.Problems = append(st.Problems, fmt.Sprintf("no leader: the last leader %s has not sent a heartbeat for %.1fs (limit %.0fs)",
			stale[0].ID, stale[0].HeartbeatAgeSeconds, st.HeartbeatLimitSeconds))
	default:
		st.Problems = append(st.Problems, "no leader: no instance of this listener is leading")
	}
	return nil
}

func gatherLag(ctx context.Context, tx pgx.Tx, ident pgx.Identifier, pos Position, p StatusParams, st *Status) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, ident.Sanitize()).Scan(&exists); err != nil {
		return errors.Wrap(err, "status: look up change log")
	}
	if !exists {
		st.Problems = append(st.Problems, fmt.Sprintf("change log %s does not exist", p.Table))
		return nil
	}
	// The same order the listener reads in, bounded so that a large backlog
	// costs at most LagEventsLimit index entries.
	sql := `WITH pending AS (
	SELECT created_at FROM ` + ident.Sanitize() + `
	WHERE (COALESCE(txid, '0'::xid8), pk_entity_change_log) > ($1::text::xid8, $2::bigint)
	ORDER BY COALESCE(txid, '0'::xid8), pk_entity_change_log
	LIMIT $3)
SELECT count(*), COALESCE(EXTRACT(epoch FROM now() - min(created_at)), 0)::float8 FROM pending`
	var lag float64
	if err := tx.QueryRow(ctx, sql, fmt.Sprint(pos.TxID), pos.Seq, p.LagEventsLimit).Scan(&st.LagEvents, &lag); err != nil {
		return errors.Wrapf(err, "status: measure lag on %s", p.Table)
	}
	st.LagSeconds = roundMillis(max(lag, 0))
	st.LagEventsCapped = st.LagEvents >= int64(p.LagEventsLimit)
	if st.LagSeconds > p.LagDegraded.Seconds() {
		st.Problems = append(st.Problems, fmt.Sprintf("lag: the oldest undelivered change is %.0fs old (limit %.0fs)",
			st.LagSeconds, p.LagDegraded.Seconds()))
	}
	return nil
}

func gatherQueue(ctx context.Context, tx pgx.Tx, kinds []string, st *Status) error {
	// river_job is River's table, outside sqlc's schema.
	rows, err := tx.Query(ctx, `SELECT state::text, count(*) FROM river_job WHERE kind = ANY($1) GROUP BY state`, kinds)
	if err != nil {
		return errors.WithHint(errors.Wrap(err, "status: count jobs"), "run `fraiseql-observers migrate` to create River's tables")
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return errors.Wrap(err, "status: count jobs")
		}
		switch state {
		case "available":
			st.Queue.Available = n
		case "running":
			st.Queue.Running = n
		case "retryable":
			st.Queue.Retryable = n
		case "scheduled":
			st.Queue.Scheduled = n
		case "completed":
			st.Queue.Completed = n
		case "cancelled":
			st.Queue.Cancelled = n
		case "discarded":
			st.Queue.Discarded = n
		case "pending":
			st.Queue.Pending = n
		}
	}
	if err := rows.Err(); err != nil {
		return errors.Wrap(err, "status: count jobs")
	}
	st.DLQSize = st.Queue.Discarded + st.Queue.Cancelled
	return nil
}

func gatherBreakers(ctx context.Context, tx pgx.Tx, st *Status) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('observer_circuit_breakers') IS NOT NULL`).Scan(&exists); err != nil {
		return errors.Wrap(err, "status: look up circuit breakers")
	}
	if !exists {
		return nil
	}
	// Queried directly: the table may be newer than this binary's sqlc schema.
	rows, err := tx.Query(ctx, `SELECT name::text, state::text, expiry,
	lower(state) = 'open' AND (expiry IS NULL OR expiry > now())
FROM observer_circuit_breakers ORDER BY name`)
	if err != nil {
		return errors.Wrap(err, "status: read circuit breakers")
	}
	defer rows.Close()
	var open []string
	for rows.Next() {
		var b BreakerStatus
		if err := rows.Scan(&b.Name, &b.State, &b.Expiry, &b.Open); err != nil {
			return errors.Wrap(err, "status: read circuit breakers")
		}
		st.CircuitBreakers = append(st.CircuitBreakers, b)
		if b.Open {
			open = append(open, b.Name)
		}
	}
	if err := rows.Err(); err != nil {
		return errors.Wrap(err, "status: read circuit breakers")
	}
	if len(open) > 0 {
		st.Problems = append(st.Problems, fmt.Sprintf("%d circuit breaker(s) open: %s", len(open), strings.Join(open, ", ")))
	}
	return nil
}

func statusValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func roundMillis(s float64) float64 { return math.Round(s*1000) / 1000 }

package status

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
)

// Status defaults.
const (
	// LagDegradedDefault: a change older than this still waiting after
	// the checkpoint makes the status degraded.
	LagDegradedDefault = 5 * time.Minute
	// StallAfterDefault: the oldest waiting change older than this while the
	// checkpoint has not moved for as long makes the status degraded.
	StallAfterDefault = listener.StallAfterDefault
	// OmitAfterDefault: instance rows whose heartbeat is older than this
	// (left behind by killed processes) are not shown.
	OmitAfterDefault = time.Hour
	// LagEventsLimitDefault bounds the count of rows after the checkpoint.
	LagEventsLimitDefault = 100_000
	// HeartbeatFactor: an instance is healthy while its heartbeat is
	// younger than this many heartbeat intervals.
	HeartbeatFactor = listener.HeartbeatFactor
)

// Health values of Status.Status.
const (
	Healthy  = "healthy"
	Degraded = "degraded"
)

// Params selects what Gather reports on.
type Params struct {
	// ListenerID is the listener group; default: the first listener id in
	// observer_checkpoints, else "default".
	ListenerID string
	// Table is the change log; default core.tb_entity_change_log.
	Table string
	// JobCounts counts the deliveries' River jobs by state in tx (state
	// name → jobs); river.CountJobs. Required: only the river package knows
	// River's tables.
	JobCounts func(ctx context.Context, tx pgx.Tx) (map[string]int64, error)
	// DeadCounts counts the dead deliveries by state (cancelled,
	// discarded) in tx, as `dlq list` defines them: river.CountDead. nil:
	// the dead-letter queue is counted in jobs, from JobCounts.
	DeadCounts func(ctx context.Context, tx pgx.Tx) (map[string]int64, error)
	// RunningJobs counts the running jobs of each of the observer's River
	// queues in tx (queue → jobs); river.RunningByQueue. nil: the Workers
	// report only the limits.
	RunningJobs func(ctx context.Context, tx pgx.Tx) (map[string]int64, error)
	// HeartbeatInterval of the instances; default HeartbeatIntervalDefault.
	HeartbeatInterval time.Duration
	// LagDegraded; default LagDegradedDefault.
	LagDegraded time.Duration
	// StallAfter; default StallAfterDefault.
	StallAfter time.Duration
	// OmitAfter; default OmitAfterDefault.
	OmitAfter time.Duration
	// LagEventsLimit; default LagEventsLimitDefault.
	LagEventsLimit int
}

// WithDefaults returns a copy of p with every zero field set to its default.
func (p Params) WithDefaults() Params {
	p.Table = cmp.Or(p.Table, "core.tb_entity_change_log")
	p.HeartbeatInterval = cmp.Or(p.HeartbeatInterval, listener.HeartbeatIntervalDefault)
	p.LagDegraded = cmp.Or(p.LagDegraded, LagDegradedDefault)
	p.StallAfter = cmp.Or(p.StallAfter, StallAfterDefault)
	p.OmitAfter = cmp.Or(p.OmitAfter, OmitAfterDefault)
	p.LagEventsLimit = cmp.Or(p.LagEventsLimit, LagEventsLimitDefault)
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
	DLQSize         int64           `json:"dlq_size"` // dead deliveries: discarded + cancelled
	DLQ             DLQCounts       `json:"dlq"`
	CircuitBreakers []BreakerStatus `json:"circuit_breakers"`
	// Workers are the River queues' jobs running and the workers the
	// healthy instances run them with, by queue name.
	Workers []QueueWorkers `json:"workers"`
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
	ID                  string        `json:"id"`
	Host                string        `json:"host"`
	PID                 int           `json:"pid"`
	Role                listener.Role `json:"role"`
	HeartbeatAgeSeconds float64       `json:"heartbeat_age_seconds"`
	Healthy             bool          `json:"healthy"`
	HTTPAddr            string        `json:"http_addr"`
	Version             string        `json:"version"`
	StartedAt           *time.Time    `json:"started_at"`
	LeaderSince         *time.Time    `json:"leader_since"`
	// BatchFailures counts the batches the instance failed in a row (as
	// leader); BatchError is the last one's error.
	BatchFailures int    `json:"batch_failures"`
	BatchError    string `json:"batch_error,omitempty"`
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

// DLQCounts counts the dead deliveries (`dlq list`) by state.
type DLQCounts struct {
	Cancelled int64 `json:"cancelled"` // a permanent failure
	Discarded int64 `json:"discarded"` // attempts exhausted
}

// QueueWorkers is one River queue of the observer: its jobs running now
// (river_job, every listener group's) and the workers the instances whose
// heartbeat is fresh run it with (River keeps MaxWorkers only in the
// process; each heartbeat records its queues in observer_listeners).
type QueueWorkers struct {
	Queue   string `json:"queue"`
	Running int64  `json:"running"`
	// Limit sums the queue's max workers over Instances; 0 when no healthy
	// instance reports the queue (jobs running there belong to an
	// instance that stopped heartbeating, or of an older version).
	Limit     int64 `json:"limit"`
	Instances int   `json:"instances"`
}

// BreakerStatus is one row of observer_circuit_breakers.
type BreakerStatus struct {
	// Name is the breaker's endpoint (scheme://host:port/path, or
	// scheme://host:port with scope: host), credentials and query values
	// redacted.
	Name   string     `json:"name"`
	State  string     `json:"state"`
	Expiry *time.Time `json:"expiry"`
	// Open is true while the breaker refuses requests: state open and the
	// open period (expiry) not yet over.
	Open bool `json:"open"`
}

// Gather reads the status of a listener group in one read-only
// transaction. It writes nothing.
func Gather(ctx context.Context, db observers.TxBeginner, p Params) (*Status, error) {
	p = p.WithDefaults()
	if p.JobCounts == nil {
		return nil, errors.New("status: JobCounts is required")
	}
	ident, err := observers.ParseTableName(p.Table)
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
		Workers:               []QueueWorkers{},
		HeartbeatLimitSeconds: (HeartbeatFactor * p.HeartbeatInterval).Seconds(),
	}
	if st.CheckedAt, err = q.StatusNow(ctx); err != nil {
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
	pos := changelog.Position{}
	cp, err := q.CheckpointGet(ctx, st.ListenerID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Never run: no leader either, which is the problem reported.
	case err != nil:
		return nil, errors.Wrap(err, "status: read checkpoint")
	default:
		st.Checkpoint = &StatusCheckpoint{EventID: cp.EventID, TxID: cp.Txid, LastProcessedAt: cp.LastProcessedAt, EventsProcessed: cp.EventsProcessed}
		pos = changelog.Position{TxID: uint64(cp.Txid), Seq: cp.EventID}
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
	if err := gatherQueue(ctx, tx, p.JobCounts, st); err != nil {
		return nil, err
	}
	if err := gatherDLQ(ctx, tx, p.DeadCounts, st); err != nil {
		return nil, err
	}
	if err := gatherBreakers(ctx, q, st); err != nil {
		return nil, err
	}
	if err := gatherWorkers(ctx, tx, p, st); err != nil {
		return nil, err
	}

	st.Healthy = len(st.Problems) == 0
	st.Status = Healthy
	if !st.Healthy {
		st.Status = Degraded
	}
	return st, nil
}

func gatherInstances(ctx context.Context, q *dbsqlc.Queries, p Params, st *Status) error {
	rows, err := q.StatusInstances(ctx, dbsqlc.StatusInstancesParams{
		ListenerID: st.ListenerID, OmitAfterSeconds: p.OmitAfter.Seconds(),
	})
	if err != nil {
		return errors.Wrap(err, "status: list instances")
	}
	var fresh, stale []StatusInstance
	for _, r := range rows {
		in := StatusInstance{
			ID: r.ID, Host: statusValue(r.Host), PID: int(statusValue(r.Pid)), Role: listener.Role(r.Role),
			HeartbeatAgeSeconds: roundMillis(max(r.HeartbeatAgeSeconds, 0)),
			Healthy:             r.HeartbeatAgeSeconds < st.HeartbeatLimitSeconds,
			HTTPAddr:            statusValue(r.HttpAddr), Version: statusValue(r.Version), StartedAt: r.StartedAt, LeaderSince: r.LeaderSince,
			BatchFailures: int(r.BatchFailures), BatchError: statusValue(r.BatchError),
		}
		st.Listeners = append(st.Listeners, in)
		if in.Healthy {
			st.HealthyListeners++
		}
		if in.Role == listener.RoleLeader {
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
		if l.BatchFailures >= listener.UnhealthyAfterFailures {
			st.Problems = append(st.Problems, fmt.Sprintf("the leader failed %d batches in a row; last error: %s", l.BatchFailures, l.BatchError))
		}
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

func gatherLag(ctx context.Context, tx pgx.Tx, ident pgx.Identifier, pos changelog.Position, p Params, st *Status) error {
	exists, err := dbsqlc.New(tx).StatusRelationExists(ctx, ident.Sanitize())
	if err != nil {
		return errors.Wrap(err, "status: look up change log")
	}
	if !exists {
		st.Problems = append(st.Problems, fmt.Sprintf("change log %s does not exist", p.Table))
		return nil
	}
	n, lag, err := changelog.Lag(ctx, tx, ident, pos, p.LagEventsLimit)
	if err != nil {
		return errors.Wrap(err, "status")
	}
	st.LagEvents = n
	st.LagSeconds = roundMillis(lag)
	st.LagEventsCapped = st.LagEvents >= int64(p.LagEventsLimit)
	stalled := st.Checkpoint == nil || st.CheckedAt.Sub(st.Checkpoint.LastProcessedAt) > p.StallAfter
	if st.LagEvents > 0 && st.LagSeconds > p.StallAfter.Seconds() && stalled && st.LagSeconds <= p.LagDegraded.Seconds() {
		st.Problems = append(st.Problems, fmt.Sprintf("stalled: the checkpoint has not moved for more than %.0fs while %d change(s) wait, the oldest %.0fs old",
			p.StallAfter.Seconds(), st.LagEvents, st.LagSeconds))
	}
	if st.LagSeconds > p.LagDegraded.Seconds() {
		st.Problems = append(st.Problems, fmt.Sprintf("lag: the oldest undelivered change is %.0fs old (limit %.0fs)",
			st.LagSeconds, p.LagDegraded.Seconds()))
	}
	return nil
}

func gatherQueue(ctx context.Context, tx pgx.Tx, count func(context.Context, pgx.Tx) (map[string]int64, error), st *Status) error {
	n, err := count(ctx, tx)
	if err != nil {
		return errors.WithHint(errors.Wrap(err, "status: count jobs"), "run `fraiseql-observers migrate` to create River's tables")
	}
	st.Queue = QueueDepth{
		Available: n["available"], Running: n["running"], Retryable: n["retryable"], Scheduled: n["scheduled"],
		Completed: n["completed"], Cancelled: n["cancelled"], Discarded: n["discarded"], Pending: n["pending"],
	}
	st.DLQ = DLQCounts{Cancelled: st.Queue.Cancelled, Discarded: st.Queue.Discarded}
	st.DLQSize = st.DLQ.Cancelled + st.DLQ.Discarded
	return nil
}

// gatherDLQ counts the dead deliveries with count; nil keeps the job counts.
func gatherDLQ(ctx context.Context, tx pgx.Tx, count func(context.Context, pgx.Tx) (map[string]int64, error), st *Status) error {
	if count == nil {
		return nil
	}
	n, err := count(ctx, tx)
	if err != nil {
		return errors.WithHint(errors.Wrap(err, "status: count dead deliveries"), "run `fraiseql-observers migrate` to bring the schema up to date")
	}
	st.DLQ = DLQCounts{Cancelled: n["cancelled"], Discarded: n["discarded"]}
	st.DLQSize = st.DLQ.Cancelled + st.DLQ.Discarded
	return nil
}

func gatherBreakers(ctx context.Context, q *dbsqlc.Queries, st *Status) error {
	exists, err := q.StatusRelationExists(ctx, "observer_circuit_breakers")
	if err != nil {
		return errors.Wrap(err, "status: look up circuit breakers")
	}
	if !exists {
		return nil
	}
	rows, err := q.StatusCircuitBreakers(ctx)
	if err != nil {
		return errors.Wrap(err, "status: read circuit breakers")
	}
	var open []string
	for _, r := range rows {
		name := observers.RedactURL(r.Name)
		st.CircuitBreakers = append(st.CircuitBreakers, BreakerStatus{Name: name, State: r.State, Expiry: r.Expiry, Open: r.Open})
		if r.Open {
			open = append(open, name)
		}
	}
	if len(open) > 0 {
		st.Problems = append(st.Problems, fmt.Sprintf("%d circuit breaker(s) open: %s", len(open), strings.Join(open, ", ")))
	}
	return nil
}

// gatherWorkers reads, per River queue, the jobs running and the workers
// the healthy instances (of every listener group: the queues are the
// database's) recorded with their last heartbeat.
func gatherWorkers(ctx context.Context, tx pgx.Tx, p Params, st *Status) error {
	rows, err := dbsqlc.New(tx).StatusInstanceQueues(ctx, st.HeartbeatLimitSeconds)
	if err != nil {
		return errors.Wrap(err, "status: read the instances' queues")
	}
	byQueue := map[string]*QueueWorkers{}
	get := func(name string) *QueueWorkers {
		if byQueue[name] == nil {
			byQueue[name] = &QueueWorkers{Queue: name}
		}
		return byQueue[name]
	}
	for _, r := range rows {
		var queues map[string]int64
		if len(r.Queues) == 0 {
			continue // an older version: its queues are unknown
		}
		if err := json.Unmarshal(r.Queues, &queues); err != nil {
			return errors.Wrapf(err, "status: instance %s: read queues", r.ID)
		}
		for name, n := range queues {
			w := get(name)
			w.Limit += n
			w.Instances++
		}
	}
	if p.RunningJobs != nil {
		running, err := p.RunningJobs(ctx, tx)
		if err != nil {
			return errors.Wrap(err, "status: count running jobs")
		}
		for name, n := range running {
			get(name).Running = n
		}
	}
	for _, name := range slices.Sorted(maps.Keys(byQueue)) {
		st.Workers = append(st.Workers, *byQueue[name])
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

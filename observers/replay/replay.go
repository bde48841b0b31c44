package replay

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/fraiseql-observers/observers/changelog"
	"github.com/fraiseql/fraiseql-observers/observers/listener"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// States of a replay.
const (
	StateRunning   = "running" // started and not finished: running now, or interrupted
	StateFinished  = "finished"
	StateCancelled = "cancelled"
)

// LockClass is the first key of the session advisory lock a process holds
// while it runs a replay (the second is the replay's id).
const LockClass = 0x52504C59 // "RPLY"

// Selection is what a replay reads: changes with a pk in [FromPK, ToPK)
// and a created_at in [From, To) (nil: unbounded), of EntityTypes (empty:
// every entity), delivered to the actions of Observers (empty: every
// observer that matches).
type Selection struct {
	FromPK      *int64     `json:"from_pk,omitempty"`
	ToPK        *int64     `json:"to_pk,omitempty"`
	From        *time.Time `json:"from,omitempty"`
	To          *time.Time `json:"to,omitempty"`
	EntityTypes []string   `json:"entity_types,omitempty"`
	Observers   []string   `json:"observers,omitempty"`
}

// Range is the change-log range of s below bound.
func (s Selection) Range(bound changelog.Position) changelog.Range {
	return changelog.Range{Bound: bound, FromPK: s.FromPK, ToPK: s.ToPK, From: s.From, To: s.To, EntityTypes: s.EntityTypes}
}

// Request is a replay as the operator typed it: the same request resumes
// an unfinished replay (Key).
type Request struct {
	ListenerID  string   `json:"listener"`
	Config      string   `json:"config"` // "latest", or "file:" and the file's hash
	From        string   `json:"from"`   // as given: "24h" stays "24h"
	To          string   `json:"to,omitempty"`
	Observers   []string `json:"observers,omitempty"`
	EntityTypes []string `json:"entity_types,omitempty"`
}

// Key identifies the request: its fields, lists sorted.
func (r Request) Key() string {
	r.Observers = slices.Sorted(slices.Values(r.Observers))
	r.EntityTypes = slices.Sorted(slices.Values(r.EntityTypes))
	b, _ := json.Marshal(r) // strings only: cannot fail
	return string(b)
}

// Position is a place in the change log's (txid, pk) order.
type Position struct {
	TxID int64 `json:"txid"`
	PK   int64 `json:"pk"`
}

func (p Position) log() changelog.Position {
	return changelog.Position{TxID: uint64(p.TxID), Seq: p.PK}
}

func position(p changelog.Position) Position { return Position{TxID: int64(p.TxID), PK: p.Seq} }

// Parameters are a replay's selection, resolved when it started.
type Parameters struct {
	Selection
	// Request is the replay as the operator typed it.
	Request Request `json:"request"`
	// Beyond is how many changes of the selection the listener had not
	// passed when the replay started: they are not replayed.
	Beyond int64 `json:"beyond"`
}

// Replay is one row of observer_replays.
type Replay struct {
	ID            int64      `json:"id"`
	ListenerID    string     `json:"listener_id"`
	Parameters    Parameters `json:"parameters"`
	ConfigVersion int64      `json:"config_version"`
	// Bound is the listener's checkpoint when the replay started: the last
	// change it may read.
	Bound Position `json:"bound"`
	// Position is the last change read.
	Position Position `json:"position"`
	// Total is the changes selected when the replay started.
	Total      int64      `json:"total"`
	Counts     Counts     `json:"counts"`
	State      string     `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Active is true while a process runs the replay (List only).
	Active bool `json:"active"`
	key    string
}

// Counts are what a replay (or a dry run) did.
type Counts struct {
	EventsRead      int64 `json:"events_read"`      // change-log rows read, skipped ones included
	EventsSkipped   int64 `json:"events_skipped"`   // rows that could not be decoded or were too large
	EventsMatched   int64 `json:"events_matched"`   // events that matched a selected observer
	ConditionErrors int64 `json:"condition_errors"` // conditions that failed (no match)
	Deliveries      int64 `json:"deliveries"`       // deliveries enqueued (would be, in a dry run)
	// ByAction are the deliveries per observer and action, sorted.
	ByAction []ActionCount `json:"by_action"`
}

// ActionCount is the deliveries of one action of one observer.
type ActionCount struct {
	Observer   string `json:"observer"`
	Action     int    `json:"action"`
	ActionType string `json:"action_type"`
	Deliveries int64  `json:"deliveries"`
}

// addDelivery counts one delivery of action idx of observer obs.
func (c *Counts) addDelivery(obs string, idx int, typ string) {
	c.Deliveries++
	i, found := slices.BinarySearchFunc(c.ByAction, ActionCount{Observer: obs, Action: idx}, func(a, b ActionCount) int {
		if a.Observer != b.Observer {
			if a.Observer < b.Observer {
				return -1
			}
			return 1
		}
		return a.Action - b.Action
	})
	if !found {
		c.ByAction = slices.Insert(c.ByAction, i, ActionCount{Observer: obs, Action: idx, ActionType: typ})
	}
	c.ByAction[i].Deliveries++
}

func fromRow(r dbsqlc.ObserverReplay) (*Replay, error) {
	out := &Replay{
		ID: r.ID, ListenerID: r.ListenerID, ConfigVersion: r.ConfigVersion,
		Bound:    Position{TxID: r.BoundTxid, PK: r.BoundPk},
		Position: Position{TxID: r.PositionTxid, PK: r.PositionPk},
		Total:    r.Total, State: r.State, StartedAt: r.StartedAt, UpdatedAt: r.UpdatedAt, FinishedAt: r.FinishedAt,
		key: r.Key,
	}
	if err := json.Unmarshal(r.Parameters, &out.Parameters); err != nil {
		return nil, errors.Wrapf(err, "replay %d: decode parameters", r.ID)
	}
	if err := json.Unmarshal(r.Counts, &out.Counts); err != nil {
		return nil, errors.Wrapf(err, "replay %d: decode counts", r.ID)
	}
	return out, nil
}

// Get returns replay id; the error is marked storage.ErrNotFound when there
// is none.
func Get(ctx context.Context, db dbsqlc.DBTX, id int64) (*Replay, error) {
	row, err := dbsqlc.New(db).ReplayGet(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errors.WithHint(errors.Mark(errors.Newf("replay %d does not exist", id), storage.ErrNotFound),
			"`fraiseql-observers replay --list` shows the replays")
	}
	if err != nil {
		return nil, errors.Wrapf(err, "read replay %d", id)
	}
	return fromRow(row)
}

// FindUnfinished returns the unfinished replay of req, or nil.
func FindUnfinished(ctx context.Context, db dbsqlc.DBTX, req Request) (*Replay, error) {
	id, err := dbsqlc.New(db).ReplayFindRunning(ctx, req.Key())
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, errors.Wrap(err, "look for an unfinished replay")
	}
	return Get(ctx, db, id)
}

// List returns the latest limit replays, newest first.
func List(ctx context.Context, db dbsqlc.DBTX, limit int) ([]*Replay, error) {
	rows, err := dbsqlc.New(db).ReplayList(ctx, dbsqlc.ReplayListParams{LockClass: LockClass, MaxRows: int32(min(limit, 1<<20))})
	if err != nil {
		return nil, errors.Wrap(err, "list replays")
	}
	out := make([]*Replay, 0, len(rows))
	for _, r := range rows {
		rep, err := fromRow(r.ObserverReplay)
		if err != nil {
			return nil, err
		}
		rep.Active = r.Active
		out = append(out, rep)
	}
	return out, nil
}

// Cancel marks an unfinished replay cancelled: it is not resumed, and a
// process running it stops after its current batch. It reports whether
// the replay was unfinished.
func Cancel(ctx context.Context, db dbsqlc.DBTX, id int64) (bool, error) {
	n, err := dbsqlc.New(db).ReplayCancel(ctx, id)
	if err != nil {
		return false, errors.Wrapf(err, "cancel replay %d", id)
	}
	return n > 0, nil
}

// LiveInstances counts the `run` processes (of any listener group) whose
// heartbeat is fresh (younger than three heartbeat intervals): their
// workers deliver the replayed jobs.
func LiveInstances(ctx context.Context, db dbsqlc.DBTX) (int64, error) {
	n, err := dbsqlc.New(db).ReplayLiveInstances(ctx, (3 * listener.HeartbeatIntervalDefault).Seconds())
	return n, errors.Wrap(err, "count running instances")
}

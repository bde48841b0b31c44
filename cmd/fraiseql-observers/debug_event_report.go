package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// debugReport is the --format json output of debug-event --event-id.
type debugReport struct {
	Table       string          `json:"table"`
	Event       eventView       `json:"event"`
	Outcome     outcomeView     `json:"outcome"`
	Config      configRef       `json:"config"`
	Read        readView        `json:"read"`
	Skipped     []skipView      `json:"skipped"`
	Observers   []verdictView   `json:"observers"`
	Deliveries  []deliveryView  `json:"deliveries"`
	Dedup       dedupView       `json:"dedup"`
	ResultCache resultCacheView `json:"result_cache"`
}

// eventView is the change as stored; data and before are whole.
type eventView struct {
	PK               int64           `json:"pk"`
	ID               string          `json:"id"`
	TxID             uint64          `json:"txid"`
	EntityType       string          `json:"entity_type"`
	EntityID         string          `json:"entity_id"`
	Kind             string          `json:"kind"`              // INSERT, UPDATE, DELETE, CUSTOM; "" when unknown
	ModificationType string          `json:"modification_type"` // as stored
	CreatedAt        time.Time       `json:"created_at"`
	TenantID         string          `json:"tenant_id,omitempty"`
	UserID           string          `json:"user_id,omitempty"`
	UpdatedFields    []string        `json:"updated_fields,omitempty"`
	DataBytes        int             `json:"data_bytes"`
	Data             json.RawMessage `json:"data"`
	Before           json.RawMessage `json:"before,omitempty"`
	// Undecodable says why the listener cannot turn the row into an event.
	Undecodable string `json:"undecodable,omitempty"`
}

func viewEvent(f changelog.Found) eventView {
	ev := f.Event
	v := eventView{PK: ev.Seq, ID: ev.ID, TxID: ev.TxID, EntityType: ev.EntityType, EntityID: ev.EntityID,
		Kind: string(ev.Kind), ModificationType: ev.RawKind, CreatedAt: ev.CreatedAt, TenantID: ev.TenantID,
		UserID: ev.UserID, UpdatedFields: ev.UpdatedFields, DataBytes: len(ev.RawData), Undecodable: f.Reason}
	if len(ev.RawData) > 0 {
		v.Data = json.RawMessage(ev.RawData)
	}
	if len(f.Before) > 0 && ev.Kind != observers.KindDelete { // a delete's data is its before image
		v.Before = json.RawMessage(f.Before)
	}
	return v
}

// verdictView is one observer and whether it matched the change.
type verdictView struct {
	Observer  string   `json:"observer"`
	Entity    string   `json:"entity"`
	Events    []string `json:"events"`
	Condition string   `json:"condition,omitempty"`
	Actions   []string `json:"actions"` // the action types, in order
	Matched   bool     `json:"matched"`
	// Reason is why not: entity, kind, condition_false, condition_error
	// or unknown_kind (observers.Miss).
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func viewVerdict(x observers.Explanation, ev *observers.Event) verdictView {
	o := x.Observer
	v := verdictView{Observer: o.Name, Entity: o.Entity, Matched: x.Matched(), Reason: string(x.Miss), Actions: []string{}}
	for _, k := range o.Events {
		v.Events = append(v.Events, string(k))
	}
	if o.Condition != nil {
		v.Condition = o.Condition.Source()
	}
	for _, a := range o.Actions {
		v.Actions = append(v.Actions, a.Type())
	}
	switch x.Miss {
	case observers.MissEntity:
		v.Detail = fmt.Sprintf("watches entity %q, the change is %q", o.Entity, ev.EntityType)
	case observers.MissKind:
		v.Detail = fmt.Sprintf("watches %s, the change is %s", strings.Join(v.Events, ", "), ev.Kind)
	case observers.MissConditionFalse:
		v.Detail = "condition is false"
	case observers.MissConditionError:
		v.Detail = x.Err.Error()
	case observers.MissUnknownKind:
		v.Detail = fmt.Sprintf("modification_type %q is not a kind the observers know", ev.RawKind)
	}
	return v
}

// deliveryView is one delivery the change produced.
type deliveryView struct {
	obsriver.EventDelivery
	// Status is delivered, pending, failed (will be retried) or dead.
	Status    string `json:"status"`
	MessageID string `json:"message_id"` // sent as webhook-id (email: Message-ID)
}

// deliveryStatus maps River's job state to the delivery's status.
func deliveryStatus(state string) string {
	switch state {
	case "completed":
		return "delivered"
	case "cancelled", "discarded":
		return "dead"
	case "retryable":
		return "failed"
	default: // available, scheduled, pending, running
		return "pending"
	}
}

// viewDeliveries shows dels; a delivery whose only attempt ran in a batch
// job shows its observer's max_attempts, not the batch job's.
func (e *debugEnv) viewDeliveries(ctx context.Context, ev *observers.Event, dels []obsriver.EventDelivery) []deliveryView {
	out := make([]deliveryView, 0, len(dels))
	for _, d := range dels {
		if d.Errors == nil {
			d.Errors = []obsriver.AttemptError{}
		}
		if d.InBatch {
			if v, err := e.versions.Get(ctx, d.ConfigVersion); err == nil {
				if o := v.Config.Observer(d.Observer); o != nil {
					d.MaxAttempts = o.Retry.MaxAttempts
				}
			}
		}
		out = append(out, deliveryView{EventDelivery: d, Status: deliveryStatus(d.State),
			MessageID: observers.MessageID(ev.ID, d.Observer, d.Action)})
	}
	return out
}

// eventFacts is what is known about one change; the report and the
// history line are both made from it.
type eventFacts struct {
	found    changelog.Found
	choice   configChoice
	read     readView
	skips    []skipView // by the change's listener group
	verdicts []observers.Explanation
	dels     []obsriver.EventDelivery
}

// facts gathers what is known of found, given its deliveries and skip
// records and the listener's position.
func (e *debugEnv) facts(ctx context.Context, found changelog.Found, dels []obsriver.EventDelivery,
	skips []skipView, pos func(listenerID string) (position, error),
) (*eventFacts, error) {
	f := &eventFacts{found: found, dels: dels}
	var err error
	if f.choice, err = e.choose(ctx, dels); err != nil {
		return nil, err
	}
	p, err := pos(f.choice.ref.ListenerID)
	if err != nil {
		return nil, err
	}
	f.read = p.read(f.choice.ref.ListenerID, found.Event)
	for _, s := range skips {
		if s.ListenerID == f.choice.ref.ListenerID {
			f.skips = append(f.skips, s)
		}
	}
	// A row of unknown kind matches nothing (Explain says so); one whose
	// data cannot be decoded is not matched at all.
	if f.choice.cfg != nil && (found.Reason == "" || found.Event.Kind == "") {
		f.verdicts = f.choice.cfg.Explain(found.Event)
	}
	return f, nil
}

// matched counts the observers the change matched (those of its
// deliveries when there is no configuration).
func (f *eventFacts) matched() int {
	if f.choice.cfg == nil {
		seen := map[string]bool{}
		for _, d := range f.dels {
			seen[d.Observer] = true
		}
		return len(seen)
	}
	n := 0
	for _, x := range f.verdicts {
		if x.Matched() {
			n++
		}
	}
	return n
}

// report explains the change key (uuid or pk).
func (e *debugEnv) report(ctx context.Context, key string) (*debugReport, error) {
	found, err := e.log.Find(ctx, e.pool, key)
	if err != nil {
		return nil, e.findError(err, key)
	}
	ev := found.Event
	dels, err := e.deliveries(ctx, []int64{ev.Seq})
	if err != nil {
		return nil, err
	}
	skips, err := e.skipped(ctx, []int64{ev.Seq})
	if err != nil {
		return nil, err
	}
	f, err := e.facts(ctx, found, dels, skips[ev.Seq], func(id string) (position, error) { return e.position(ctx, id) })
	if err != nil {
		return nil, err
	}
	r := &debugReport{Table: e.table, Event: viewEvent(found), Config: f.choice.ref, Read: f.read,
		Skipped: skips[ev.Seq], Observers: []verdictView{}, Deliveries: e.viewDeliveries(ctx, ev, dels)}
	if r.Skipped == nil {
		r.Skipped = []skipView{}
	}
	for _, x := range f.verdicts {
		r.Observers = append(r.Observers, viewVerdict(x, ev))
	}
	if r.Dedup, err = e.dedup(ctx, f); err != nil {
		return nil, err
	}
	if r.ResultCache, err = e.resultCache(ctx, f); err != nil {
		return nil, err
	}
	r.Outcome = f.outcome(r.Dedup)
	return r, nil
}

// findError turns a failed lookup into the command's error and exit code.
func (e *debugEnv) findError(err error, key string) error {
	switch {
	case errors.Is(err, changelog.ErrBadKey):
		return withExitCode(exitUsage, errors.WithHint(errors.Wrap(err, "--event-id"),
			"pass the change's uuid (the id column) or its pk (pk_entity_change_log)"))
	case errors.Is(err, context.DeadlineExceeded):
		return withExitCode(exitFailure, errors.WithHint(err,
			"a uuid is looked up by scanning the table unless its id column is indexed: pass the change's pk, or CREATE INDEX ON "+e.table+" (id)"))
	case errors.Is(err, storage.ErrNotFound):
		hint := "is it the change's uuid (id) or its pk (pk_entity_change_log)? is --table right? (read " + e.table + ")"
		return withExitCode(exitFailure, errors.WithHint(errors.Newf("change %s not found in %s", key, e.table), hint))
	}
	return withExitCode(exitFailure, errors.WithHint(err, "is --table right? (read "+e.table+")"))
}

package observers

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
)

// Kind is the kind of change an event records. The change log's
// modification_type column holds it.
type Kind string

const (
	KindInsert Kind = "INSERT"
	KindUpdate Kind = "UPDATE"
	KindDelete Kind = "DELETE"
	KindCustom Kind = "CUSTOM"
)

// kindBySpelling maps every spelling ParseKind accepts, upper case, to its
// Kind: the change log's INSERT/UPDATE/DELETE/CUSTOM and FraiseQL's
// created/updated/deleted.
var kindBySpelling = map[string]Kind{
	"INSERT": KindInsert, "CREATED": KindInsert, "CREATE": KindInsert,
	"UPDATE": KindUpdate, "UPDATED": KindUpdate,
	"DELETE": KindDelete, "DELETED": KindDelete,
	"CUSTOM": KindCustom,
}

// ParseKind maps a modification_type (or a config `events:` entry) to a Kind.
// It is case-insensitive and accepts FraiseQL's created/updated/deleted
// spellings. ok is false for anything else.
func ParseKind(s string) (k Kind, ok bool) {
	k, ok = kindBySpelling[strings.ToUpper(strings.TrimSpace(s))]
	return k, ok
}

// Spellings returns, upper case and sorted, every modification_type that
// ParseKind reads as k: what a query over the change log compares
// upper(modification_type) with.
func (k Kind) Spellings() []string {
	var out []string
	for s, kk := range kindBySpelling {
		if kk == k {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Event is one row of the change log, decoded.
type Event struct {
	Seq           int64          // pk_entity_change_log: position in the log
	TxID          uint64         // writing transaction (xid8); 0 for rows older than the txid column
	ID            string         // id (uuid) of the change
	Kind          Kind           // parsed modification_type; "" when unknown
	RawKind       string         // modification_type as stored
	EntityType    string         // object_type
	EntityID      string         // object_id, read as text
	Data          map[string]any // object_data (after image), numbers as float64 for conditions
	RawData       []byte         // object_data as stored, for bodies: keeps big integers exact
	Before        map[string]any // object_data_before (before image), nil when absent
	UpdatedFields []string       // updated_fields
	Metadata      map[string]any // extra_metadata
	UserID        string         // fk_contact, as text
	TenantID      string         // tenant_id (or fk_customer_org when tenant_id is empty), as text
	CreatedAt     time.Time      // created_at
	// Size is the JSON text the event was decoded from (data, before image
	// and metadata), in bytes: what bounds batches and caches.
	Size int64

	// envelope caches EnvelopeJSON's encoding up to the observer name:
	// every delivery of the event shares it. Events are shared by pointer.
	envelope atomic.Pointer[[]byte]
}

// FieldChange is one entry of an event's `changes` map.
type FieldChange struct {
	Old any `json:"old"`
	New any `json:"new"`
}

// Changes returns the fields whose values differ between the before and after
// images. When updated_fields is set it limits the result to those fields.
// For an INSERT every field is "changed" from nil; for a DELETE every field of
// the before image changes to nil.
func (e *Event) Changes() map[string]FieldChange {
	out := map[string]FieldChange{}
	consider := func(k string) {
		oldV, hadOld := e.Before[k]
		newV, hasNew := e.Data[k]
		if !hadOld && !hasNew {
			return
		}
		if hadOld && hasNew && jsonEqual(oldV, newV) {
			return
		}
		out[k] = FieldChange{Old: oldV, New: newV}
	}
	if len(e.UpdatedFields) > 0 {
		for _, f := range e.UpdatedFields {
			consider(f)
		}
		return out
	}
	for k := range e.Data {
		consider(k)
	}
	for k := range e.Before {
		if _, ok := e.Data[k]; !ok {
			consider(k)
		}
	}
	return out
}

func jsonEqual(a, b any) bool {
	ab, err1 := json.Marshal(a)
	bb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ab) == string(bb)
}

// Envelope is the default JSON body of a delivery. Field names follow
// FraiseQL's EntityEvent.
type Envelope struct {
	ID         string                 `json:"id"`
	EventType  Kind                   `json:"event_type"`
	EntityType string                 `json:"entity_type"`
	EntityID   string                 `json:"entity_id"`
	Data       json.RawMessage        `json:"data"`
	Changes    map[string]FieldChange `json:"changes,omitempty"`
	UserID     *string                `json:"user_id"`
	TenantID   *string                `json:"tenant_id"`
	Timestamp  time.Time              `json:"timestamp"`
	Observer   string                 `json:"observer"`
}

// EnvelopeJSON returns json.Marshal(e.Envelope(observer)), encoding the
// event's part once for all its deliveries: Observer is the envelope's last
// field, so only the name differs between observers.
func (e *Event) EnvelopeJSON(observer string) ([]byte, error) {
	head := e.envelope.Load()
	if head == nil {
		b, err := json.Marshal(e.Envelope(""))
		if err != nil {
			return nil, err
		}
		const tail = `""}` // the empty observer name and the closing brace
		if !bytes.HasSuffix(b, []byte(tail)) {
			return nil, errors.Newf("envelope encoding ends %q, not with the observer field", b[max(0, len(b)-16):])
		}
		b = b[:len(b)-len(tail)]
		head = &b
		e.envelope.Store(head)
	}
	name, err := json.Marshal(observer)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(*head)+len(name)+1)
	out = append(append(append(out, *head...), name...), '}')
	return out, nil
}

// Envelope builds the delivery envelope of the event for one observer.
func (e *Event) Envelope(observer string) Envelope {
	env := Envelope{
		ID:         e.ID,
		EventType:  e.Kind,
		EntityType: e.EntityType,
		EntityID:   e.EntityID,
		Data:       json.RawMessage(e.RawData),
		Timestamp:  e.CreatedAt.UTC(),
		Observer:   observer,
	}
	if len(env.Data) == 0 || e.Data == nil {
		env.Data = json.RawMessage("{}")
	}
	if e.Kind == KindUpdate {
		env.Changes = e.Changes()
	}
	if e.UserID != "" {
		env.UserID = &e.UserID
	}
	if e.TenantID != "" {
		env.TenantID = &e.TenantID
	}
	return env
}

package search

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Name is the search action's type:.
const Name = "search"

func init() { observers.RegisterActionType(Type{}) }

//go:embed schema.json
var schema []byte

// indexRE is a valid index name: it fits every search backend (Postgres,
// Meilisearch uids, Elasticsearch/OpenSearch once lower-cased).
var indexRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$`)

// Type is the search action type: keep a search index in step with an
// entity.
type Type struct{}

// Name implements observers.ActionType.
func (Type) Name() string { return Name }

// Schema implements observers.ActionType.
func (Type) Schema() []byte { return schema }

// Action keeps a search index in step with an entity: INSERT, UPDATE and
// CUSTOM events index the entity's document (Document) under its entity
// type and id; DELETE events delete it. Each write carries the change's
// version (txid, pk), so an older change delivered late (a retry) never
// overwrites or revives a newer document.
type Action struct {
	// Index names the index; default the event's entity type, lower-cased.
	Index string
}

// Type implements observers.Action.
func (*Action) Type() string { return Name }

// AttemptTimeout implements observers.Action: the store bounds each call.
func (*Action) AttemptTimeout() time.Duration { return 0 }

// IndexName returns the index of ev's document.
func (s *Action) IndexName(ev *observers.Event) string {
	if s.Index != "" {
		return s.Index
	}
	return strings.ToLower(ev.EntityType)
}

// Document is the document indexed for an event: the entity's data
// (numbers exact, as stored) plus the event's metadata.
type Document struct {
	EntityType string          `json:"entity_type"`
	EntityID   string          `json:"entity_id"`
	Kind       observers.Kind  `json:"kind"`
	EventID    string          `json:"event_id"`
	Timestamp  time.Time       `json:"timestamp"`
	Data       json.RawMessage `json:"data"`
}

// Document encodes ev's Document. An event without an entity id cannot be
// indexed.
func (s *Action) Document(ev *observers.Event) ([]byte, error) {
	if ev.EntityID == "" {
		return nil, errors.WithHint(errors.New("search action: the event has no entity id"),
			"the change log's object_id names the document")
	}
	data := json.RawMessage(ev.RawData)
	if len(data) == 0 || !json.Valid(data) {
		b, err := json.Marshal(ev.Data)
		if err != nil {
			return nil, errors.Wrap(err, "search action: encode data")
		}
		data = b
	}
	if string(data) == "null" {
		data = json.RawMessage(`{}`)
	}
	b, err := json.Marshal(Document{
		EntityType: ev.EntityType, EntityID: ev.EntityID, Kind: ev.Kind, EventID: ev.ID,
		Timestamp: ev.CreatedAt.UTC(), Data: data,
	})
	return b, errors.Wrap(err, "search action: encode document")
}

// Run implements observers.Action: index the entity's document, or delete
// it on a DELETE event, through the process's search store. Errors the
// store marks storage.ErrRejected are permanent; the others transient.
func (s *Action) Run(ctx context.Context, d *observers.Delivery) error {
	if d.Env == nil || d.Env.Search == nil {
		return observers.Permanent(errors.New("search action: no search store"))
	}
	ev := d.Event
	index := s.IndexName(ev)
	if index == "" || ev.EntityID == "" {
		return observers.Permanent(errors.Newf("search action: event %d has no entity type or id to name the document", ev.Seq))
	}
	key := storage.DocKey{Index: index, EntityType: ev.EntityType, EntityID: ev.EntityID}
	v := storage.Version{TxID: ev.TxID, Seq: ev.Seq}
	var err error
	if ev.Kind == observers.KindDelete {
		err = d.Env.Search.Delete(ctx, key, v)
	} else {
		var doc []byte
		if doc, err = s.Document(ev); err != nil {
			return observers.Permanent(err)
		}
		err = d.Env.Search.Index(ctx, key, v, doc)
	}
	if err == nil {
		return nil
	}
	return &observers.DeliveryError{Permanent: errors.Is(err, storage.ErrRejected), Err: err}
}

// Settings implements observers.Action.
func (s *Action) Settings() []observers.Setting {
	index := s.Index
	if index == "" {
		index = "(the entity type, lower-cased)"
	}
	return []observers.Setting{{Key: "index", Value: index}}
}

// Decode implements observers.ActionType.
func (Type) Decode(b *observers.ActionBlock) observers.Action {
	s := &Action{}
	for _, f := range b.Fields() {
		if f.Key() == "index" {
			s.Index = strings.TrimSpace(f.String())
			if s.Index != "" && !indexRE.MatchString(s.Index) {
				f.Errorf(fmt.Sprintf("%s.index %q is not an index name", b.Where(), s.Index),
					"use letters, digits, _, - and . (up to 200), starting with a letter or digit, e.g. orders")
			}
		}
	}
	return s
}

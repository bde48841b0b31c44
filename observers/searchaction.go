package observers

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/goccy/go-yaml/ast"
)

var searchKeys = []string{"type", "index"}

// searchIndexRE is a valid index name: it fits every search backend
// (Postgres, Meilisearch uids, Elasticsearch/OpenSearch once lower-cased).
var searchIndexRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$`)

// SearchAction keeps a search index in step with an entity: INSERT, UPDATE
// and CUSTOM events index the entity's document (SearchDocument) under its
// entity id; DELETE events delete it.
type SearchAction struct {
	// Index names the index; default the event's entity type, lower-cased.
	Index string
}

// IndexName returns the index of ev's document.
func (s *SearchAction) IndexName(ev *Event) string {
	if s.Index != "" {
		return s.Index
	}
	return strings.ToLower(ev.EntityType)
}

// SearchDocument is the document indexed for an event: the entity's data
// (numbers exact, as stored) plus the event's metadata.
type SearchDocument struct {
	EntityType string          `json:"entity_type"`
	EntityID   string          `json:"entity_id"`
	Kind       Kind            `json:"kind"`
	EventID    string          `json:"event_id"`
	Timestamp  time.Time       `json:"timestamp"`
	Data       json.RawMessage `json:"data"`
}

// Document encodes ev's SearchDocument. An event without an entity id
// cannot be indexed.
func (s *SearchAction) Document(ev *Event) ([]byte, error) {
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
	b, err := json.Marshal(SearchDocument{
		EntityType: ev.EntityType, EntityID: ev.EntityID, Kind: ev.Kind, EventID: ev.ID,
		Timestamp: ev.CreatedAt.UTC(), Data: data,
	})
	return b, errors.Wrap(err, "search action: encode document")
}

func (l *loader) searchAction(fields []entry, _ ast.Node, where string) (*SearchAction, bool) {
	s := &SearchAction{}
	ok := true
	for _, f := range l.actionFields(fields, searchKeys, where) {
		if f.key == "index" {
			s.Index = strings.TrimSpace(l.str(f, where+".index"))
			if s.Index != "" && !searchIndexRE.MatchString(s.Index) {
				l.errorf(f.value, fmt.Sprintf("%s.index %q is not an index name", where, s.Index),
					"use letters, digits, _, - and . (up to 200), starting with a letter or digit, e.g. orders")
				ok = false
			}
		}
	}
	return s, ok
}

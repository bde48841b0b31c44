package observers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
)

// TableObserver is one row of FraiseQL's tb_observer table (observers_table:).
// Actions and RetryConfig are the jsonb columns' text; nil when NULL.
type TableObserver struct {
	Name                string          `json:"name"`
	EntityType          *string         `json:"entity_type,omitempty"`          // NULL: every entity
	EventType           *string         `json:"event_type,omitempty"`           // NULL: every kind
	ConditionExpression *string         `json:"condition_expression,omitempty"` // NULL: no condition
	Actions             json.RawMessage `json:"actions,omitempty"`
	RetryConfig         json.RawMessage `json:"retry_config,omitempty"`
	TimeoutMS           *int64          `json:"timeout_ms,omitempty"` // default timeout of its actions
}

// versionRowsMarker starts the generated part of a stored config version: the
// table's rows, one JSON object per line prefixed by versionRowPrefix. The
// lines are YAML comments, so the whole source stays a valid file.
const (
	versionRowsMarker = "#@fraiseql-observers: observers_table rows (generated; do not edit)"
	versionRowPrefix  = "#@row "
)

// ReadTableObservers reads the enabled, not deleted rows of table (FraiseQL's
// tb_observer layout), ordered by name.
func ReadTableObservers(ctx context.Context, q Querier, table string) ([]TableObserver, error) {
	ident, err := ParseTableName(table)
	if err != nil {
		return nil, errors.WithHint(errors.Newf("observers_table %q is not a table name", table), errors.FlattenHints(err))
	}
	rows, err := q.Query(ctx, `SELECT name, entity_type, event_type, condition_expression, actions::text,
		retry_config::text, timeout_ms::bigint FROM `+ident.Sanitize()+`
		WHERE deleted_at IS NULL AND enabled ORDER BY name`)
	if err != nil {
		return nil, errors.WithHint(errors.Wrapf(err, "read observers_table %s", table),
			"the table needs FraiseQL's tb_observer columns: name, entity_type, event_type, condition_expression, actions, enabled, retry_config, timeout_ms, deleted_at")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableObserver, error) {
		var o TableObserver
		var actions, retry *string
		err := r.Scan(&o.Name, &o.EntityType, &o.EventType, &o.ConditionExpression, &actions, &retry, &o.TimeoutMS)
		if actions != nil {
			o.Actions = json.RawMessage(*actions)
		}
		if retry != nil {
			o.RetryConfig = json.RawMessage(*retry)
		}
		return o, err
	})
	return out, errors.Wrapf(err, "read observers_table %s", table)
}

// ParseWithTable parses the file data like Parse, adding the observers of
// the table rows. Each row goes through the same decoder as the file's
// observers; its diagnostics name it "<table>[<name>]". Source is the file
// followed by the rows (see ParseVersion) and Hash covers both.
func ParseWithTable(filename string, data []byte, rows []TableObserver, getenv func(string) (string, bool)) (*Config, Diagnostics, error) {
	return parse(filename, data, parseInput{getenv: getenv, rows: rows, withRows: true})
}

// ParseVersion parses a stored configuration version: a plain file, or a
// file followed by the generated rows of its observers_table.
func ParseVersion(name string, source []byte) (*Config, Diagnostics, error) {
	// A version was accepted once, perhaps with a larger MaxFileBytes: its
	// size is not held against it again (its nesting and expansion are).
	i := bytes.Index(source, []byte("\n"+versionRowsMarker+"\n"))
	if i < 0 {
		return parse(name, source, parseInput{getenv: os.LookupEnv, maxBytes: len(source)})
	}
	var rows []TableObserver
	for _, line := range strings.Split(string(source[i+len(versionRowsMarker)+2:]), "\n") {
		if line == "" {
			continue
		}
		var r TableObserver
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, versionRowPrefix)), &r); err != nil {
			return nil, nil, errors.Wrapf(err, "config version %s: decode table row", name)
		}
		rows = append(rows, r)
	}
	return parse(name, source[:i], parseInput{getenv: os.LookupEnv, rows: rows, withRows: true, source: source, maxBytes: len(source)})
}

// SameFile reports whether data is the file c was loaded from (its table
// rows aside): a reload of the same bytes need not parse them again.
func (c *Config) SameFile(data []byte) bool {
	if !c.tableRead {
		return bytes.Equal(c.Source, data)
	}
	return bytes.HasPrefix(c.Source, append(append([]byte{}, data...), "\n"+versionRowsMarker+"\n"...))
}

// versionSource is the stored source of a file with table rows.
func versionSource(data []byte, rows []TableObserver) ([]byte, error) {
	var b bytes.Buffer
	b.Write(data)
	b.WriteString("\n" + versionRowsMarker + "\n")
	for _, r := range rows {
		j, err := json.Marshal(r)
		if err != nil {
			return nil, errors.Wrapf(err, "encode observers_table row %q", r.Name)
		}
		b.WriteString(versionRowPrefix)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

func sourceHash(src []byte) string {
	sum := sha256.Sum256(src)
	return hex.EncodeToString(sum[:])
}

// rowSourceName names a row in diagnostics: "tb_observer[order_created]".
func rowSourceName(table, name string) string {
	t := table
	if i := strings.LastIndex(t, "."); i >= 0 {
		t = t[i+1:]
	}
	return fmt.Sprintf("%s[%s]", cmpStr(t, "tb_observer"), Shorten(name, quoteMax))
}

func cmpStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// tableObservers decodes the rows as observers, reporting each row's
// problems under its own name; names already in the file are clashes.
func (l *loader) tableObservers(cfg *Config) {
	file := l.file
	defer func() { l.file, l.row = file, false }()
	fromFile := map[string]bool{}
	for _, o := range cfg.Observers {
		fromFile[o.Name] = true
	}
	seen := map[string]bool{}
	for _, r := range l.rows {
		l.file, l.row = rowSourceName(cfg.ObserversTable, r.Name), true
		switch {
		case strings.TrimSpace(r.Name) == "":
			l.diag(SeverityError, 0, 0, "observer name is empty", "set the row's name column")
			continue
		case fromFile[r.Name]:
			l.diag(SeverityError, 0, 0, fmt.Sprintf("observer %s is also defined in %s", QuoteShort(r.Name), file),
				"observer names must be unique across the file and the table; rename or remove one of them")
			continue
		case seen[r.Name]:
			l.diag(SeverityError, 0, 0, fmt.Sprintf("duplicate observer name %s in the table", QuoteShort(r.Name)),
				"soft-delete (deleted_at) or disable one of the rows")
			continue
		}
		seen[r.Name] = true
		src, msg := r.render()
		if msg != "" {
			l.diag(SeverityError, 0, 0, msg, "")
			continue
		}
		f := l.syntaxTree(src, rowNames, l.maxBytes) // the file's limits, for each row
		if f == nil {
			continue
		}
		if len(f.Docs) == 0 || f.Docs[0].Body == nil {
			l.diag(SeverityError, 0, 0, "cannot decode the row", "")
			continue
		}
		body := f.Docs[0].Body
		l.anchorScope(body)
		if o := l.observer(entry{key: r.Name, keyN: body, value: body}); o != nil {
			cfg.Observers = append(cfg.Observers, o)
		}
	}
}

// render turns the row into the loader's input for one observer (JSON, which
// is YAML): entity, events, condition, actions and retry. msg reports a
// column that cannot be rendered.
func (r TableObserver) render() (src []byte, msg string) {
	obs := map[string]any{"entity": "*"}
	if r.EntityType != nil {
		obs["entity"] = *r.EntityType
	}
	obs["events"] = []Kind{KindInsert, KindUpdate, KindDelete, KindCustom}
	if r.EventType != nil {
		obs["events"] = []string{*r.EventType}
	}
	if r.ConditionExpression != nil && strings.TrimSpace(*r.ConditionExpression) != "" {
		obs["condition"] = *r.ConditionExpression
	}
	if r.TimeoutMS != nil && *r.TimeoutMS <= 0 {
		return nil, fmt.Sprintf("timeout_ms must be positive, got %d", *r.TimeoutMS)
	}
	if len(r.Actions) > 0 && string(r.Actions) != "null" {
		actions := json.RawMessage(r.Actions)
		if r.TimeoutMS != nil {
			actions = withDefaultTimeout(actions, *r.TimeoutMS)
		}
		obs["actions"] = actions
	}
	if len(r.RetryConfig) > 0 && string(r.RetryConfig) != "null" {
		obs["retry"] = json.RawMessage(r.RetryConfig)
	}
	b, err := json.Marshal(obs)
	if err != nil {
		return nil, "actions or retry_config is not valid JSON"
	}
	return b, ""
}

// withDefaultTimeout sets timeout to ms on each action object whose type
// has a timeout key (its schema says so) and that sets none. Anything else is left to the decoder.
func withDefaultTimeout(actions json.RawMessage, ms int64) json.RawMessage {
	var list []json.RawMessage
	if json.Unmarshal(actions, &list) != nil {
		return actions
	}
	for i, a := range list {
		var m map[string]json.RawMessage
		if json.Unmarshal(a, &m) != nil {
			continue
		}
		var typ string
		_ = json.Unmarshal(m["type"], &typ)
		if _, set := m["timeout"]; set || !contains(ActionTypeKeys(strings.ToLower(typ)), "timeout") {
			continue
		}
		m["timeout"], _ = json.Marshal(fmt.Sprintf("%dms", ms))
		if b, err := json.Marshal(m); err == nil {
			list[i] = b
		}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return actions
	}
	return b
}

package observers

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DatabaseTimeoutDefault bounds a database action's call (statement_timeout
// and the context).
const DatabaseTimeoutDefault = 30 * time.Second

var databaseKeys = []string{"type", "function_name", "params", "timeout"}

// functionNameRE is an unquoted SQL identifier, optionally schema-qualified.
var functionNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$`)

// DatabaseAction calls a SQL function with the event:
// SELECT fn($1::jsonb) with {"event": <envelope>, "params": <params>}, in
// its own transaction.
type DatabaseAction struct {
	// FunctionName is "fn" or "schema.fn", an unquoted identifier: like SQL,
	// it is folded to lower case.
	FunctionName string
	// Params is passed as "params" ({} when absent).
	Params map[string]any
	// Timeout bounds the call (statement_timeout too); default 30s.
	Timeout time.Duration
}

// QuotedName returns the function name lower-cased and quoted for SQL
// ("schema"."fn"); "" when FunctionName is not a valid name.
func (d *DatabaseAction) QuotedName() string {
	if !validFunctionName(d.FunctionName) {
		return ""
	}
	return pgx.Identifier(strings.Split(strings.ToLower(d.FunctionName), ".")).Sanitize()
}

func validFunctionName(s string) bool {
	if !functionNameRE.MatchString(s) {
		return false
	}
	for _, p := range strings.Split(s, ".") {
		if len(p) > 63 { // NAMEDATALEN-1
			return false
		}
	}
	return true
}

// Payload is the function's argument: {"event": <envelope>, "params": …}.
func (d *DatabaseAction) Payload(ev *Event, observer string) ([]byte, error) {
	params := d.Params
	if params == nil {
		params = map[string]any{}
	}
	b, err := json.Marshal(struct {
		Event  Envelope       `json:"event"`
		Params map[string]any `json:"params"`
	}{ev.Envelope(observer), params})
	return b, errors.Wrap(err, "encode database action payload")
}

// CallDatabaseFunction runs SELECT fn($1::jsonb) with payload in its own
// transaction on db (a pool). SQL errors of class 22 (data exception), 23 (integrity
// constraint violation) and 42 (syntax error or access rule violation, an
// undefined function included) are permanent; every other error (RAISE
// EXCEPTION's default P0001, serialization failures, timeouts, lost
// connections) is transient. Failures are *DeliveryError.
func CallDatabaseFunction(ctx context.Context, db TxBeginner, d *DatabaseAction, payload []byte) error {
	name := d.QuotedName()
	if name == "" {
		return &DeliveryError{Permanent: true, Err: errors.Newf("database action: invalid function_name %q", d.FunctionName)}
	}
	timeout := cmp.Or(d.Timeout, DatabaseTimeoutDefault)
	callCtx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	err := pgx.BeginTxFunc(callCtx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(callCtx, `SELECT set_config('statement_timeout', $1, true)`,
			strconv.FormatInt(timeout.Milliseconds(), 10)); err != nil {
			return err
		}
		_, err := tx.Exec(callCtx, "SELECT "+name+"($1::jsonb)", payload)
		return err
	})
	if err == nil {
		return nil
	}
	return classifyDatabaseError(err, d.FunctionName)
}

// classifyDatabaseError wraps err in a *DeliveryError, permanent for SQL
// states of class 22, 23 and 42.
func classifyDatabaseError(err error, fn string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		class := pgErr.Code[:min(2, len(pgErr.Code))]
		permanent := class == "22" || class == "23" || class == "42"
		e := errors.Wrapf(err, "database action %s", fn)
		if pgErr.Code == "42883" {
			e = errors.WithHint(e, "create the function, or fix function_name; it must take one jsonb argument")
		}
		return &DeliveryError{Permanent: permanent, Err: e}
	}
	return &DeliveryError{Err: errors.Wrapf(err, "database action %s", fn)}
}

func (l *loader) database(fields []entry, at ast.Node, where string) (*DatabaseAction, bool) {
	d := &DatabaseAction{}
	ok := true
	for _, f := range l.actionFields(fields, databaseKeys, where) {
		switch f.key {
		case "function_name":
			d.FunctionName = strings.TrimSpace(l.str(f, where+".function_name"))
			if d.FunctionName != "" && !validFunctionName(d.FunctionName) {
				l.errorf(f.value, fmt.Sprintf("%s.function_name %q is not a function name", where, d.FunctionName),
					"write an unquoted identifier, optionally schema-qualified: notify_order or app.notify_order")
				ok = false
			}
		case "params":
			d.Params = l.params(f, where+".params")
		case "timeout":
			d.Timeout = l.actionTimeout(f, where)
		}
	}
	if d.FunctionName == "" && ok {
		l.errorf(at, where+": database action needs function_name",
			"set function_name: app.on_order_created (a function taking one jsonb argument)")
		ok = false
	}
	d.Timeout = cmpDuration(d.Timeout, DatabaseTimeoutDefault)
	return d, ok
}

// params decodes a mapping of arbitrary YAML values that must encode as JSON.
func (l *loader) params(f entry, where string) map[string]any {
	v := l.resolve(f.value)
	if isNull(v) {
		return nil
	}
	if _, ok := l.mapping(f.value, f.keyN, where, nil); !ok {
		return nil
	}
	var m map[string]any
	if err := yaml.NodeToValue(v, &m); err != nil {
		l.errorf(f.value, fmt.Sprintf("%s: %s", where, firstLineOf(err.Error())), "write params as a mapping of plain values")
		return nil
	}
	if _, err := json.Marshal(m); err != nil {
		l.errorf(f.value, fmt.Sprintf("%s cannot be encoded as JSON: %s", where, err), "use strings, numbers, booleans, lists and mappings")
		return nil
	}
	return m
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

package database

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
)

// Name is the database action's type:.
const Name = "database"

// TimeoutDefault bounds a database action's call (statement_timeout and
// the context).
const TimeoutDefault = 30 * time.Second

func init() { observers.RegisterActionType(Type{}) }

//go:embed schema.json
var schema []byte

// functionNameRE is an unquoted SQL identifier, optionally schema-qualified.
var functionNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$`)

// Type is the database action type: call a SQL function with the event.
type Type struct{}

// Name implements observers.ActionType.
func (Type) Name() string { return Name }

// Schema implements observers.ActionType.
func (Type) Schema() []byte { return schema }

// Action calls a SQL function with the event:
// SELECT fn($1::jsonb) with {"event": <envelope>, "params": <params>}, in
// its own transaction.
type Action struct {
	// FunctionName is "fn" or "schema.fn", an unquoted identifier: like SQL,
	// it is folded to lower case.
	FunctionName string
	// Params is passed as "params" ({} when absent).
	Params map[string]any
	// Timeout bounds the call (statement_timeout too); default 30s.
	Timeout time.Duration
}

// Type implements observers.Action.
func (*Action) Type() string { return Name }

// AttemptTimeout implements observers.Action.
func (d *Action) AttemptTimeout() time.Duration {
	return cmp.Or(d.Timeout, TimeoutDefault) + time.Second
}

// QuotedName returns the function name lower-cased and quoted for SQL
// ("schema"."fn"); "" when FunctionName is not a valid name.
func (d *Action) QuotedName() string {
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
func (d *Action) Payload(ev *observers.Event, observer string) ([]byte, error) {
	params := d.Params
	if params == nil {
		params = map[string]any{}
	}
	b, err := json.Marshal(struct {
		Event  observers.Envelope `json:"event"`
		Params map[string]any     `json:"params"`
	}{ev.Envelope(observer), params})
	return b, errors.Wrap(err, "encode database action payload")
}

// Run implements observers.Action: the function runs in its own
// transaction on the process's pool.
func (d *Action) Run(ctx context.Context, del *observers.Delivery) error {
	payload, err := d.Payload(del.Event, del.Observer.Name)
	if err != nil {
		return observers.Permanent(err)
	}
	if del.Env == nil || del.Env.DB == nil {
		return observers.Permanent(errors.New("database action: no database"))
	}
	return Call(ctx, del.Env.DB, d, payload)
}

// Call runs SELECT fn($1::jsonb) with payload in its own transaction on
// db. An error Postgres rejects for good (postgres.Rejected: data
// exceptions, constraint violations, syntax and access errors, an undefined
// function among them) is permanent; every other one (RAISE EXCEPTION's
// default P0001, serialization failures, timeouts, lost connections) is
// transient. Failures are *observers.DeliveryError.
func Call(ctx context.Context, db observers.TxBeginner, d *Action, payload []byte) error {
	name := d.QuotedName()
	if name == "" {
		return observers.Permanent(errors.Newf("database action: invalid function_name %q", d.FunctionName))
	}
	timeout := cmp.Or(d.Timeout, TimeoutDefault)
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
	e := errors.Wrapf(err, "database action %s", d.FunctionName)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42883" {
		e = errors.WithHint(e, "create the function, or fix function_name; it must take one jsonb argument")
	}
	return &observers.DeliveryError{Permanent: postgres.Rejected(err), Err: e}
}

// Settings implements observers.Action.
func (d *Action) Settings() []observers.Setting {
	return []observers.Setting{
		{Key: "function_name", Value: d.FunctionName}, {Key: "params", Value: d.Params},
		{Key: "timeout", Value: observers.ShortDuration(cmp.Or(d.Timeout, TimeoutDefault))},
	}
}

// Decode implements observers.ActionType.
func (Type) Decode(b *observers.ActionBlock) observers.Action {
	d := &Action{}
	bad := false
	for _, f := range b.Fields() {
		switch f.Key() {
		case "function_name":
			d.FunctionName = strings.TrimSpace(f.String())
			if d.FunctionName != "" && !validFunctionName(d.FunctionName) {
				f.Errorf(fmt.Sprintf("%s.function_name %q is not a function name", b.Where(), d.FunctionName),
					"write an unquoted identifier, optionally schema-qualified: notify_order or app.notify_order")
				bad = true
			}
		case "params":
			d.Params = f.Values()
		case "timeout":
			d.Timeout = f.Timeout()
		}
	}
	if d.FunctionName == "" && !bad {
		b.Errorf(b.Where()+": database action needs function_name",
			"set function_name: app.on_order_created (a function taking one jsonb argument)")
	}
	d.Timeout = cmp.Or(d.Timeout, TimeoutDefault)
	return d
}

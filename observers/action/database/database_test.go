package database

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// One database serves every case: each case uses its own function.
func TestAction(t *testing.T) {
	t.Parallel()
	pool, _ := sqltest.NewDB(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
CREATE SCHEMA app;
CREATE TABLE app.order_audit (id serial PRIMARY KEY, payload jsonb NOT NULL);
CREATE FUNCTION app.record_order(p jsonb) RETURNS void LANGUAGE sql AS
  $$ INSERT INTO app.order_audit (payload) VALUES (p) $$;
CREATE FUNCTION app.record_then_fail(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO app.order_audit (payload) VALUES (p);
  RAISE EXCEPTION 'downstream busy';
END $$;
CREATE FUNCTION app.reject(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'bad order %', p->'event'->>'entity_id' USING ERRCODE = '22023';
END $$;
CREATE FUNCTION app.slow(p jsonb) RETURNS void LANGUAGE sql AS $$ SELECT pg_sleep(5) $$;
`)
	require.NoError(t, err)
	ev := &observers.Event{Seq: 5, ID: "0b5a6c1e-0000-4000-8000-000000000001", Kind: observers.KindInsert, EntityType: "Order", EntityID: "42",
		Data: map[string]any{"total": 10.0}, RawData: []byte(`{"total": 10}`), CreatedAt: time.Unix(1700000000, 0)}

	call := func(d *Action) error {
		payload, err := d.Payload(ev, "order_created")
		require.NoError(t, err)
		return Call(ctx, pool, d, payload)
	}
	audits := func() int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM app.order_audit`).Scan(&n))
		return n
	}

	t.Run("inserts a row with the event and params", func(t *testing.T) {
		require.NoError(t, call(&Action{FunctionName: "App.Record_Order", Params: map[string]any{"priority": "high"}}))
		var raw []byte
		require.NoError(t, pool.QueryRow(ctx, `SELECT payload FROM app.order_audit ORDER BY id DESC LIMIT 1`).Scan(&raw))
		var got struct {
			Event  map[string]any `json:"event"`
			Params map[string]any `json:"params"`
		}
		require.NoError(t, json.Unmarshal(raw, &got))
		require.Equal(t, "Order", got.Event["entity_type"])
		require.Equal(t, "42", got.Event["entity_id"])
		require.Equal(t, "INSERT", got.Event["event_type"])
		require.Equal(t, "order_created", got.Event["observer"])
		require.Equal(t, map[string]any{"total": 10.0}, got.Event["data"])
		require.Equal(t, map[string]any{"priority": "high"}, got.Params)
	})

	t.Run("RAISE EXCEPTION (P0001) is transient and rolls back", func(t *testing.T) {
		before := audits()
		err := call(&Action{FunctionName: "app.record_then_fail"})
		var de *observers.DeliveryError
		require.True(t, errors.As(err, &de), "%v", err)
		require.False(t, de.Permanent)
		require.Contains(t, err.Error(), "downstream busy")
		require.Contains(t, err.Error(), "P0001")
		require.Equal(t, before, audits(), "the function's own transaction is rolled back")
	})

	t.Run("ERRCODE 22023 is permanent", func(t *testing.T) {
		err := call(&Action{FunctionName: "app.reject"})
		var de *observers.DeliveryError
		require.True(t, errors.As(err, &de), "%v", err)
		require.True(t, de.Permanent)
		require.Contains(t, err.Error(), "bad order 42")
	})

	t.Run("undefined function (42883) is permanent", func(t *testing.T) {
		err := call(&Action{FunctionName: "app.nope"})
		var de *observers.DeliveryError
		require.True(t, errors.As(err, &de), "%v", err)
		require.True(t, de.Permanent)
		require.Contains(t, err.Error(), "42883")
		require.NotEmpty(t, errors.GetAllHints(err))
	})

	t.Run("statement timeout is transient", func(t *testing.T) {
		err := call(&Action{FunctionName: "app.slow", Timeout: 200 * time.Millisecond})
		var de *observers.DeliveryError
		require.True(t, errors.As(err, &de), "%v", err)
		require.False(t, de.Permanent)
		require.Contains(t, err.Error(), "57014")
	})

	t.Run("an invalid name is refused without a query", func(t *testing.T) {
		err := call(&Action{FunctionName: "x; DROP TABLE app.order_audit"})
		var de *observers.DeliveryError
		require.True(t, errors.As(err, &de))
		require.True(t, de.Permanent)
		require.Positive(t, audits())
	})
}

func TestDatabaseFunctionNames(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"notify":                `"notify"`,
		"App.On_Order":          `"app"."on_order"`,
		"_x$1":                  `"_x$1"`,
		"a.b.c":                 "",
		"f()":                   "",
		`"f"`:                   "",
		"1f":                    "",
		"a b":                   "",
		"":                      "",
		strings.Repeat("x", 64): "",
	} {
		require.Equal(t, want, (&Action{FunctionName: name}).QuotedName(), "%q", name)
	}
}

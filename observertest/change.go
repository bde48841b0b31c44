package observertest

import (
	"context"
	"testing"
	"time"
)

// ChangeLogTable is the change log `run` reads by default (listener.table).
const ChangeLogTable = "core.tb_entity_change_log"

// Change is one row of the change log, as an application's trigger (or
// observers.track) writes it.
type Change struct {
	Entity string // object_type, e.g. "Order"
	ID     string // object_id
	Kind   string // modification_type: INSERT, UPDATE, DELETE or CUSTOM (FraiseQL's created, updated, deleted too)
	Data   string // object_data, a JSON document; "" is NULL
	Before string // object_data_before, the JSON image before an UPDATE or DELETE; "" is NULL
}

// InsertChange writes c into ChangeLogTable in its own statement (so its own
// transaction, unless db is a pgx.Tx) and returns its pk_entity_change_log;
// it fails the test on error.
func InsertChange(t testing.TB, db Querier, c Change) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pk int64
	err := db.QueryRow(ctx, `INSERT INTO `+ChangeLogTable+`
		(object_type, object_id, modification_type, object_data, object_data_before)
		VALUES ($1, $2, $3, $4::jsonb, $5::jsonb) RETURNING pk_entity_change_log`,
		c.Entity, c.ID, c.Kind, nullable(c.Data), nullable(c.Before)).Scan(&pk)
	if err != nil {
		t.Fatalf("observertest: insert change %+v: %v", c, err)
	}
	return pk
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

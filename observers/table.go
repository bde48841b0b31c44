package observers

import (
	"context"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
)

// ParseTableName parses a table name given as "schema.table" or "table"
// (listener.table, observers_table).
func ParseTableName(table string) (pgx.Identifier, error) {
	parts := strings.Split(strings.TrimSpace(table), ".")
	if len(parts) == 0 || len(parts) > 2 {
		return nil, errors.WithHint(errors.Newf("listener.table %q is not a table name", table),
			`use "schema.table", e.g. core.tb_entity_change_log`)
	}
	for _, p := range parts {
		if p == "" {
			return nil, errors.WithHint(errors.Newf("listener.table %q is not a table name", table),
				`use "schema.table", e.g. core.tb_entity_change_log`)
		}
	}
	return pgx.Identifier(parts), nil
}

// SameTable reports whether two table names (as ParseTableName reads them)
// name the same table as written: a name without a schema equals only a
// name without one.
func SameTable(a, b string) bool {
	ia, erra := ParseTableName(a)
	ib, errb := ParseTableName(b)
	return erra == nil && errb == nil && ia.Sanitize() == ib.Sanitize()
}

// Querier is what a reader of a table needs from a connection, pool or
// transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

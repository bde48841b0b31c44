package daemon

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	obsriver "github.com/fraiseql/fraiseql-observers/river"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers"
	obssql "github.com/fraiseql/fraiseql-observers/sql"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
)

// PoolMaxConnsDefault sizes the pool of `run` unless the URL sets
// pool_max_conns: River's producer and completer, the listener's batches
// and the workers' event reads share it.
const PoolMaxConnsDefault = 20

// ErrUnreachable marks an error of a command that could not reach what it
// needs (the database, the admin address): `fraiseql-observers` exits 2
// for it, 1 for a problem found once running.
var ErrUnreachable = errors.New("unreachable")

// Connect opens and pings a pool on databaseURL (PoolMaxConnsDefault
// connections unless the URL sets pool_max_conns). Errors name the database
// without its password, hint at DATABASE_URL and are marked ErrUnreachable.
func Connect(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	shown := observers.RedactURL(databaseURL)
	pc, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, errors.Mark(errors.WithHint(errors.Newf("--database-url %s is not a valid Postgres URL", shown),
			"use postgres://user@host:5432/dbname, or set DATABASE_URL"), ErrUnreachable)
	}
	if u, perr := url.Parse(databaseURL); perr != nil || u.Query().Get("pool_max_conns") == "" {
		pc.MaxConns = PoolMaxConnsDefault
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, errors.Mark(errors.Wrapf(err, "connect to %s", shown), ErrUnreachable)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, errors.Mark(errors.WithHint(errors.Newf("cannot reach the database at %s: %s", shown, errors.UnwrapAll(err).Error()),
			"check that Postgres is running and that --database-url (or DATABASE_URL) points at it"), ErrUnreachable)
	}
	return pool, nil
}

// CheckSchema fails with a hint when `migrate` has not run.
func CheckSchema(ctx context.Context, pool *pgxpool.Pool) error {
	river, err := obsriver.Migrated(ctx, pool)
	if err != nil {
		return errors.Wrap(err, "check schema")
	}
	ours, err := dbsqlc.New(pool).StatusRelationExists(ctx, "observer_checkpoints")
	if err != nil {
		return errors.Wrap(err, "check schema")
	}
	if !river || !ours {
		return errors.WithHint(errors.New("the database has no fraiseql-observers schema"),
			"run `fraiseql-observers migrate` against the same --database-url first")
	}
	return nil
}

// CheckSchemaCurrent is CheckSchema, and also fails, with a hint, when a
// migration this binary knows is not applied: the operator commands read
// the newest tables and columns, and an upgraded binary on an old schema
// should say so rather than fail on a missing column.
func CheckSchemaCurrent(ctx context.Context, pool *pgxpool.Pool) error {
	if err := CheckSchema(ctx, pool); err != nil {
		return err
	}
	infos, err := obssql.Status(ctx, pool)
	if err != nil {
		return errors.Wrap(err, "check schema")
	}
	var pending []string
	for _, m := range infos {
		if !m.Applied {
			pending = append(pending, m.Component+" "+m.Name)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	shown := pending[:min(len(pending), 3)]
	more := ""
	if len(pending) > len(shown) {
		more = fmt.Sprintf(", and %d more", len(pending)-len(shown))
	}
	return errors.WithHint(errors.Newf("the database schema is older than this binary: %d migration(s) not applied (%s%s)",
		len(pending), strings.Join(shown, ", "), more),
		"run `fraiseql-observers migrate` against the same --database-url (safe while instances run)")
}

// checkChangeLog fails, with a hint, when the configured change log does
// not exist: without it the listener could only fail every batch.
func checkChangeLog(ctx context.Context, pool *pgxpool.Pool, table string) error {
	ident, err := observers.ParseTableName(table)
	if err != nil {
		return err
	}
	exists, err := dbsqlc.New(pool).StatusRelationExists(ctx, ident.Sanitize())
	if err != nil {
		return errors.Wrap(err, "look up the change log")
	}
	if !exists {
		return errors.WithHint(errors.Newf("listener.table %s does not exist", table),
			"set listener.table to your change-log table, or run `fraiseql-observers migrate` to create core.tb_entity_change_log")
	}
	return nil
}

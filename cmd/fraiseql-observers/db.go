package main

import (
	"context"
	"net/url"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgxpool"
)

// poolMaxConnsDefault sizes the pool of `run` unless the URL sets
// pool_max_conns: River's producer and completer, the listener's batches and
// the workers' event reads share it.
const poolMaxConnsDefault = 20

// connectPool opens and pings a pool. Errors name the database without its
// password and hint at DATABASE_URL.
func connectPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, errors.WithHint(errors.Newf("--database-url %s is not a valid Postgres URL", redactURL(databaseURL)),
			"use postgres://user@host:5432/dbname, or set DATABASE_URL")
	}
	if u, perr := url.Parse(databaseURL); perr != nil || u.Query().Get("pool_max_conns") == "" {
		pc.MaxConns = poolMaxConnsDefault
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, errors.Wrapf(err, "connect to %s", redactURL(databaseURL))
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, errors.WithHint(errors.Newf("cannot reach the database at %s: %s", redactURL(databaseURL), errors.UnwrapAll(err).Error()),
			"check that Postgres is running and that --database-url (or DATABASE_URL) points at it")
	}
	return pool, nil
}

// redactURL hides the password of a connection URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "<unparseable database URL>"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// checkSchema fails with a hint when `migrate` has not run.
func checkSchema(ctx context.Context, pool *pgxpool.Pool) error {
	var river, ours bool
	err := pool.QueryRow(ctx, `SELECT to_regclass('river_job') IS NOT NULL, to_regclass('observer_checkpoints') IS NOT NULL`).Scan(&river, &ours)
	if err != nil {
		return errors.Wrap(err, "check schema")
	}
	if !river || !ours {
		return errors.WithHint(errors.New("the database has no fraiseql-observers schema"),
			"run `fraiseql-observers migrate` against the same --database-url first")
	}
	return nil
}

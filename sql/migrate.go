package sql

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// migrationsFS holds the goose SQL migrations, NNNNN_name.sql.
//
//go:embed migrations/*.sql
var migrationsFS embed.FS

// VersionTable is goose's version table for the observer's migrations. It is
// not goose's default so that it never collides with an application's.
const VersionTable = "observer_schema_migrations"

// Components of a migration, as reported in MigrationInfo.Component.
const (
	ComponentRiver     = "river"
	ComponentObservers = "observers"
)

// migrateLockKey is the session advisory lock that serialises concurrent
// migrators (several instances starting at once).
const migrateLockKey = "fraiseql-observers:migrate"

// Migrations returns the observer's migration files (NNNNN_name.sql at the
// root of the returned FS).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// MigrationInfo is one migration, applied by a Migrate run or listed by
// Status.
type MigrationInfo struct {
	// Component is ComponentRiver or ComponentObservers.
	Component string `json:"component"`
	Version   int64  `json:"version"`
	Name      string `json:"name"`
	// Duration is how long the migration took (Migrate only).
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Applied reports whether the migration is in the database (Status only;
	// always true in a MigrateResult).
	Applied bool `json:"applied"`
}

// MigrateResult lists the migrations a Migrate run applied, River's first.
// Both are empty when the schema was already up to date.
type MigrateResult struct {
	River     []MigrationInfo `json:"river"`
	Observers []MigrationInfo `json:"observers"`
}

// Applied returns every migration applied, River's first.
func (r *MigrateResult) Applied() []MigrationInfo {
	return slices.Concat(r.River, r.Observers)
}

// Migrate brings the database behind pool up to date: River's migrations
// (main line, all versions) and then the observer's. It is idempotent, and
// concurrent callers are serialised by a session advisory lock held on a
// dedicated connection, so pool may be small (it needs one free connection).
func Migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) (*MigrateResult, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	unlock, err := lockMigrations(ctx, pool)
	if err != nil {
		return nil, err
	}
	defer unlock()

	res := &MigrateResult{River: []MigrationInfo{}, Observers: []MigrationInfo{}}

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return nil, errors.Wrap(err, "migrate: river migrator")
	}
	riverRes, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, errors.Wrap(err, "migrate: river")
	}
	for _, v := range riverRes.Versions {
		res.River = append(res.River, MigrationInfo{
			Component: ComponentRiver, Version: int64(v.Version), Name: v.Name,
			Duration: v.Duration, Applied: true,
		})
		logger.InfoContext(ctx, "migrate: applied", "component", ComponentRiver,
			"version", v.Version, "name", v.Name, "duration", v.Duration)
	}

	provider, closeProvider, err := newProvider(pool, logger)
	if err != nil {
		return nil, err
	}
	defer closeProvider()
	results, err := provider.Up(ctx)
	if err != nil {
		return nil, errors.Wrap(err, "migrate: observers")
	}
	for _, r := range results {
		name := path.Base(r.Source.Path)
		res.Observers = append(res.Observers, MigrationInfo{
			Component: ComponentObservers, Version: r.Source.Version, Name: name,
			Duration: r.Duration, Applied: true,
		})
		logger.InfoContext(ctx, "migrate: applied", "component", ComponentObservers,
			"version", r.Source.Version, "name", name, "duration", r.Duration)
	}
	return res, nil
}

// Status lists every known migration, River's first, and whether it is
// applied. It creates goose's (empty) version table if it is missing.
func Status(ctx context.Context, pool *pgxpool.Pool) ([]MigrationInfo, error) {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, errors.Wrap(err, "migration status: river migrator")
	}
	existing, err := migrator.ExistingVersions(ctx)
	if err != nil {
		return nil, errors.Wrap(err, "migration status: river")
	}
	applied := make(map[int]bool, len(existing))
	for _, m := range existing {
		applied[m.Version] = true
	}
	var out []MigrationInfo
	for _, m := range migrator.AllVersions() {
		out = append(out, MigrationInfo{
			Component: ComponentRiver, Version: int64(m.Version), Name: m.Name, Applied: applied[m.Version],
		})
	}

	provider, closeProvider, err := newProvider(pool, nil)
	if err != nil {
		return nil, err
	}
	defer closeProvider()
	statuses, err := provider.Status(ctx)
	if err != nil {
		return nil, errors.Wrap(err, "migration status: observers")
	}
	for _, s := range statuses {
		out = append(out, MigrationInfo{
			Component: ComponentObservers, Version: s.Source.Version, Name: path.Base(s.Source.Path),
			Applied: s.State == goose.StateApplied,
		})
	}
	return out, nil
}

// newProvider builds the goose provider for the observer's migrations on a
// database/sql view of pool. The returned func closes that view (not pool).
func newProvider(pool *pgxpool.Pool, logger *slog.Logger) (*goose.Provider, func(), error) {
	db := stdlib.OpenDBFromPool(pool)
	opts := []goose.ProviderOption{
		goose.WithTableName(VersionTable),
		goose.WithDisableGlobalRegistry(true),
	}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, Migrations(), opts...)
	if err != nil {
		_ = db.Close()
		return nil, nil, errors.Wrap(err, "migrate: goose provider")
	}
	return provider, func() { _ = db.Close() }, nil
}

// lockMigrations takes the migration advisory lock on a connection of its
// own, outside pool, and returns the func that releases it.
func lockMigrations(ctx context.Context, pool *pgxpool.Pool) (func(), error) {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig)
	if err != nil {
		return nil, errors.Wrap(err, "migrate: connect")
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended($1, 0))", migrateLockKey); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, errors.Wrap(err, "migrate: take advisory lock")
	}
	return func() {
		ctx := context.WithoutCancel(ctx)
		// Closing the session releases the lock even if the unlock fails.
		_, _ = conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", migrateLockKey)
		_ = conn.Close(ctx)
	}, nil
}

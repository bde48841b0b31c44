package sqltest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	obsql "github.com/fraiseql/fraiseql-observers/sql"
)

// DefaultAdminURL is used when TEST_DATABASE_URL is unset. The role must be
// allowed to create databases.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

const (
	// testPrefix starts every per-test database name; the Unix time follows,
	// so that StaleAfter can sweep leftovers of killed runs.
	testPrefix = "fraiseql_observers_test_"
	// templatePrefix starts template database names; a hash follows.
	templatePrefix = "fraiseql_observers_tmpl_"
	// StaleAfter is the age after which a test database is presumed leaked.
	StaleAfter = time.Hour
	// MaxConns is the size of each test's pool: Postgres's connection limit is
	// shared with every test package running in parallel.
	MaxConns = 4
)

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// AdminURL returns TEST_DATABASE_URL or DefaultAdminURL.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// NewDB creates a database migrated with sql.Migrate, returns a pool on it
// (MaxConns 4) and its URL (usable by a subprocess). Cleanup closes the pool
// and drops the database.
func NewDB(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx) })
	if templateErr != nil {
		t.Fatalf("sqltest: template database: %+v", templateErr)
	}
	return newDB(t, templateName)
}

// NewEmptyDB creates a database with nothing in it (not migrated), for tests
// of the migrations themselves. It returns its URL; cleanup drops it.
func NewEmptyDB(t testing.TB) string {
	t.Helper()
	name := uniqueName()
	if err := adminExec(context.Background(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("sqltest: create database: %v", err)
	}
	t.Cleanup(func() { dropDB(t, name) })
	u, err := DatabaseURL(name)
	if err != nil {
		t.Fatalf("sqltest: %v", err)
	}
	return u
}

// NewPool opens a pool of MaxConns on url; cleanup closes it.
func NewPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := openPool(context.Background(), url)
	if err != nil {
		t.Fatalf("sqltest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// DatabaseURL returns the admin URL pointed at database name.
func DatabaseURL(name string) (string, error) {
	u, err := url.Parse(AdminURL())
	if err != nil || u.Scheme == "" {
		return "", errors.Newf("TEST_DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

func newDB(t testing.TB, template string) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	name := uniqueName()
	err := adminExec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize()))
	if err != nil {
		t.Fatalf("sqltest: create database from template: %v", err)
	}
	t.Cleanup(func() { dropDB(t, name) })
	u, err := DatabaseURL(name)
	if err != nil {
		t.Fatalf("sqltest: %v", err)
	}
	// Registered after dropDB, so it runs before it.
	return NewPool(t, u), u
}

func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.Wrap(err, "parse database URL")
	}
	cfg.MaxConns = MaxConns
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, errors.Wrap(err, "open pool")
	}
	return pool, nil
}

func uniqueName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return testPrefix + strconv.FormatInt(time.Now().Unix(), 10) + "_" + hex.EncodeToString(b[:])
}

func dropDB(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := adminExec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("sqltest: drop database %s: %v", name, err)
	}
}

// adminExec runs sql on a short-lived admin connection.
func adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return errors.WithHint(errors.Wrap(err, "connect to admin database"),
			"set TEST_DATABASE_URL to a role that may create databases")
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// migrationsHash identifies the schema a template holds: the observer's
// migration files and River's migrations.
func migrationsHash() (string, error) {
	h := sha256.New()
	migrations := obsql.Migrations()
	names, err := fs.Glob(migrations, "*.sql")
	if err != nil {
		return "", err
	}
	slices.Sort(names)
	for _, n := range names {
		b, err := fs.ReadFile(migrations, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(nil), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return "", errors.Wrap(err, "river migrator")
	}
	for _, m := range migrator.AllVersions() {
		fmt.Fprintf(h, "river\x00%d\x00%s\x00%d\x00", m.Version, m.Name, len(m.SQLUp))
		h.Write([]byte(m.SQLUp))
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// ensureTemplate returns the name of the template database for the current
// migrations, building it if absent. An advisory lock on the admin database
// keeps parallel test binaries from building it twice. It also sweeps stale
// test databases.
func ensureTemplate(ctx context.Context) (string, error) {
	hash, err := migrationsHash()
	if err != nil {
		return "", errors.Wrap(err, "hash migrations")
	}
	name := templatePrefix + hash

	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return "", errors.WithHint(errors.Wrap(err, "connect to admin database"),
			"set TEST_DATABASE_URL to a role that may create databases")
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended('fraiseql-observers:sqltest', 0))"); err != nil {
		return "", errors.Wrap(err, "lock")
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtextextended('fraiseql-observers:sqltest', 0))")
	}()

	sweepStale(ctx, conn)

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", errors.Wrap(err, "look up template")
	}
	if exists {
		return name, nil
	}

	// Build under a temporary name and rename when complete, so that a run
	// killed mid-build never leaves a half-migrated template behind.
	building := name + "_building"
	ident := pgx.Identifier{building}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return "", errors.Wrap(err, "drop partial template")
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", errors.Wrap(err, "create template")
	}
	u, err := DatabaseURL(building)
	if err != nil {
		return "", err
	}
	pool, err := openPool(ctx, u)
	if err != nil {
		return "", err
	}
	_, err = obsql.Migrate(ctx, pool, nil)
	pool.Close() // no connection may stay open on a template
	if err != nil {
		return "", errors.Wrap(err, "migrate template")
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", ident, pgx.Identifier{name}.Sanitize())); err != nil {
		return "", errors.Wrap(err, "rename template")
	}
	return name, nil
}

// sweepStale drops test databases older than StaleAfter, left by killed runs.
// Failures are ignored: another process may be dropping the same database.
func sweepStale(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", testPrefix)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-StaleAfter).Unix()
	for _, n := range names {
		ts, _, _ := strings.Cut(strings.TrimPrefix(n, testPrefix), "_")
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || sec >= cutoff {
			continue
		}
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}

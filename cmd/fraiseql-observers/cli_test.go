package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
	"github.com/stretchr/testify/require"
)

func TestProgressPlainLines(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	p := newProgress(&b, 10, "retrying")
	p.Add(3)
	require.Empty(t, b.String(), "no line before progressLineEvery")
	p.last = time.Now().Add(-progressLineEvery)
	p.Add(2)
	p.Add(5)
	p.Finish()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 2)
	require.True(t, strings.HasPrefix(lines[0], "retrying: 5 of 10 (50%)"), lines[0])
	require.True(t, strings.HasPrefix(lines[1], "retrying: 10 of 10 (100%)"), lines[1])
}

func TestParseAge(t *testing.T) {
	t.Parallel()
	d, err := parseAge("older-than", "30d")
	require.NoError(t, err)
	require.Equal(t, 30*24*time.Hour, d)
	for _, bad := range []string{"0s", "-1h", "soon", ""} {
		_, err := parseAge("since", bad)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "--since")
	}
}

// $DATABASE_URL is every command's default; --help shows it without its
// password.
func TestHelpRedactsDatabaseURL(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://app:hunter2secret@db.internal:5432/app")
	for _, cmd := range []string{"status", "run", "migrate", "validate-config", "replay", "debug-event"} {
		var out, errb bytes.Buffer
		require.Equal(t, 0, execute([]string{cmd, "--help"}, &out, &errb), cmd)
		require.Contains(t, out.String(), "db.internal", cmd)
		require.NotContains(t, out.String()+errb.String(), "hunter2secret", cmd)
	}
}

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/ from the output")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run `go test ./cmd/fraiseql-observers -run %s -update` to write %s", t.Name(), path)
	require.Equal(t, string(want), got, "run `go test ./cmd/fraiseql-observers -run %s -update` if the change is meant", t.Name())
}

// A database migrated by an older binary: the operator commands say so and
// how to fix it, instead of failing on a missing column.
func TestOperatorCommandsNeedTheCurrentSchema(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	_, err := pool.Exec(context.Background(), `DELETE FROM observer_schema_migrations
		WHERE version_id = (SELECT max(version_id) FROM observer_schema_migrations)`)
	require.NoError(t, err)
	for _, args := range [][]string{{"dlq", "list"}, {"debug-event", "--event-id", "1"}, {"replay", "--list"}, {"retention", "--dry-run"}} {
		var out, errb bytes.Buffer
		code := execute(append(args, "--database-url", url), &out, &errb)
		require.Equal(t, 1, code, "%v: %s", args, errb.String())
		require.Contains(t, errb.String(), "the database schema is older than this binary: 1 migration(s) not applied", args)
		require.Contains(t, errb.String(), "hint: run `fraiseql-observers migrate`", args)
	}
}

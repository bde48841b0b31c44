package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
)

// binary is the fraiseql-observers binary under test, built once by TestMain
// with the faultinject tag (fault hooks are inert unless their variable is
// set), or FRAISEQL_OBSERVERS_BINARY.
var binary string

// stopTimeout bounds a clean shutdown after SIGTERM.
const stopTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fraiseql-observers-it-")
	if err != nil {
		panic(err)
	}
	// FRAISEQL_OBSERVERS_BINARY runs the suite against another build (an
	// older one, to see a new test fail before its fix).
	binary = os.Getenv("FRAISEQL_OBSERVERS_BINARY")
	if binary == "" {
		binary, err = observertest.BuildBinary(dir, "-race", "-tags", "faultinject")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "build fraiseql-observers: %+v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runOptions are the options every test runs `run` with: the binary under
// test against databaseURL with the config text, debug logs, a 10s drain;
// env is added to its environment.
func runOptions(databaseURL, config string, env ...string) observertest.ProcessOptions {
	return observertest.ProcessOptions{Binary: binary, Config: config, DatabaseURL: databaseURL,
		LogLevel: "debug", DrainTimeout: 10 * time.Second, Env: env}
}

// jobCounts returns, per change-log pk, how many River jobs exist.
func jobCounts(t *testing.T, pool *pgxpool.Pool) map[int64]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT seq, count(*) FROM observer_deliveries GROUP BY 1`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var seq int64
		var n int
		require.NoError(t, rows.Scan(&seq, &n))
		out[seq] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// webhookConfig returns a config with one observer per entry of observers
// (name → YAML body), listening on the default change log.
func webhookConfig(extra string, observers map[string]string) string {
	var b strings.Builder
	b.WriteString("listener:\n  id: it\n  batch_size: 100\n  poll_interval: 200ms\nallow_private_targets: true\n")
	b.WriteString(extra)
	b.WriteString("observers:\n")
	for name, body := range observers {
		b.WriteString("  " + name + ":\n")
		for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
			b.WriteString("    " + l + "\n")
		}
	}
	return b.String()
}

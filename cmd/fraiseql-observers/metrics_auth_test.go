package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// With an admin: block the admin server refuses a scrape without
// credentials; `metrics --config` reads them from the variables the block
// names and scrapes as before (the token first, basic auth otherwise).
func TestMetricsWithAdminAuth(t *testing.T) {
	const token, password = "metrics-tok-8c1e", "metrics-pw-5d2a"
	t.Setenv("FQO_TEST_ADMIN_TOKEN", token)
	t.Setenv("FQO_TEST_ADMIN_PASSWORD", password)
	_, url := sqltest.NewDB(t)
	dir := t.TempDir()
	write := func(name, admin string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(admin+`
observers:
  o: {entity: Order, events: [INSERT], actions: [{type: log}]}
`), 0o600))
		return p
	}
	tokenCfg := write("token.yaml", "admin: {token_env: FQO_TEST_ADMIN_TOKEN}")
	basicCfg := write("basic.yaml", "admin: {basic_auth: {username: ops, password_env: FQO_TEST_ADMIN_PASSWORD}}")
	ob := observertest.Run(t, observertest.Options{ConfigPath: tokenCfg, DatabaseURL: url,
		Env: map[string]string{"FQO_TEST_ADMIN_TOKEN": token}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, ob.WaitLeader(ctx))

	code, out, errOut := runMetricsCLI(t, "--url", ob.HTTPAddr(), "--metric", "observer_listener_is_leader")
	require.Equal(t, exitFailure, code)
	require.Empty(t, out)
	require.Contains(t, errOut, "401 Unauthorized")
	require.Contains(t, errOut, "hint: the admin servers ask for credentials: pass --config")

	code, out, errOut = runMetricsCLI(t, "--url", ob.HTTPAddr(), "--config", tokenCfg, "--metric", "observer_listener_is_leader")
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "1\n", out)
	code, out, errOut = runMetricsCLI(t, "--database-url", url, "-c", tokenCfg, "--metric", "observer_listener_is_leader")
	require.Equal(t, exitOK, code, errOut)
	require.Equal(t, "1\n", out, "the instances registered in the database too")
	require.NotContains(t, errOut, token)

	// basic auth against a token-only server: refused.
	code, _, errOut = runMetricsCLI(t, "--url", ob.HTTPAddr(), "--config", basicCfg)
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "401 Unauthorized")

	// A variable that is not set: bad usage, named, its value never shown.
	t.Setenv("FQO_TEST_ADMIN_TOKEN", "")
	code, _, errOut = runMetricsCLI(t, "--url", ob.HTTPAddr(), "--config", tokenCfg)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "environment variable FQO_TEST_ADMIN_TOKEN (admin.token_env) is not set")
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

const testdataDir = "../../observers/testdata"

// runValidate runs validate-config with an injected environment and returns
// the exit code the CLI would use and the output.
func runValidate(t *testing.T, env map[string]string, opts validateConfigOpts) (int, string) {
	t.Helper()
	opts.Getenv = func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
	if opts.Format == "" {
		opts.Format = "text"
	}
	require.NoError(t, opts.Validate())
	var out bytes.Buffer
	err := runValidateConfig(t.Context(), &opts, &out)
	if err == nil {
		return exitOK, out.String()
	}
	var ee *exitError
	require.ErrorAs(t, err, &ee)
	require.ErrorIs(t, err, errSilent, "the report is printed; the error only sets the exit code")
	return ee.code, out.String()
}

func wantLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var wants []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			wants = append(wants, w)
		}
	}
	require.NotEmpty(t, wants)
	return wants
}

func TestValidateConfigInvalidFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(testdataDir, "invalid", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			code, out := runValidate(t, nil, validateConfigOpts{File: path})
			require.Equal(t, exitFailure, code)
			var diagLines []string
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, path+":") && !strings.Contains(line, ": warning: ") && !strings.Contains(line, ": invalid — ") {
					diagLines = append(diagLines, line)
				}
			}
			wants := wantLines(t, path)
			require.Len(t, diagLines, len(wants), out)
			for i, w := range wants {
				require.True(t, strings.HasPrefix(diagLines[i], path+":"+w), "want %q, got %q", path+":"+w, diagLines[i])
			}
			require.Contains(t, out, "\n  hint: ")
			require.Contains(t, out, path+": invalid — ")
		})
	}
}

func TestValidateConfigExitCodeThroughCLI(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := execute([]string{"validate-config", filepath.Join(testdataDir, "invalid", "bad_duration.yaml")}, &out, &errOut)
	require.Equal(t, exitFailure, code)
	require.Contains(t, out.String(), `bad_duration.yaml:3:18: invalid duration "5 minutes" for listener.poll_interval`)
	require.Empty(t, errOut.String(), "errSilent prints nothing more")

	out.Reset()
	code = execute([]string{"validate-config", filepath.Join(testdataDir, "no-such-file.yaml")}, &out, &errOut)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut.String(), "hint:")

	code = execute([]string{"validate-config"}, &out, &errOut)
	require.Equal(t, exitUsage, code, "missing FILE argument")
}

func TestValidateConfigGoodFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(testdataDir, "valid.yaml")
	code, out := runValidate(t, map[string]string{"TEST_HOOK_URL": "https://x.example/"}, validateConfigOpts{File: path})
	require.Equal(t, exitOK, code, out)
	require.Equal(t, path+": OK — 3 observers, 3 entities (*, Order, User), 4 actions (4 webhook)\n"+
		path+":18:29: warning: environment variable TEST_HOOK_SECRET (signing_secret_env) is not set\n"+
		"  hint: export TEST_HOOK_SECRET before `run`, which refuses to start without it\n", out)
}

func TestValidateConfigExample(t *testing.T) {
	t.Parallel()
	path := "../../examples/observers.yaml"
	code, out := runValidate(t, map[string]string{"DEMO_WEBHOOK_URL": "http://127.0.0.1:9999/hook", "DEMO_WEBHOOK_SECRET": "whsec_c2VjcmV0"},
		validateConfigOpts{File: path, Detailed: true})
	require.Equal(t, exitOK, code, out)
	require.True(t, strings.HasPrefix(out, path+": OK — 3 observers, 2 entities (Order, demo_product), 3 actions (3 webhook)\n"), out)
	require.NotContains(t, out, "warning")
	require.NotContains(t, out, "whsec_c2VjcmV0")
	require.Contains(t, out, "condition:  field_changed_to('status', 'shipped')")
}

func TestValidateConfigDetailedRedactsSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`observers:
  o:
    entity: Order
    events: [INSERT]
    actions:
      - type: webhook
        url: https://user:hunter2pass@example.com/hook?token=tok-abc123&x=1
        signing_secret: whsec_SuperSecretValue123
        headers:
          Authorization: Bearer bearer-xyz789
          X-Source: fraiseql
      - type: webhook
        url_env: HOOK_URL
        signing_secret_env: HOOK_SECRET
      - type: slack
        webhook_url: https://hooks.slack.com/services/T000/B000/slackPathSecret42
smtp: {host: 127.0.0.1, from: a@example.com, username_env: SMTP_USER, password_env: SMTP_PASS}
`), 0o600))
	env := map[string]string{"HOOK_URL": "https://env.example/secret-path", "HOOK_SECRET": "whsec_FromEnvSecret456",
		"SMTP_USER": "mailer", "SMTP_PASS": "smtpPassword77"}
	for _, format := range []string{"text", "json"} {
		code, out := runValidate(t, env, validateConfigOpts{File: path, Detailed: true, Format: format})
		require.Equal(t, exitOK, code, out)
		for _, secret := range []string{"SuperSecretValue123", "hunter2pass", "tok-abc123", "bearer-xyz789", "FromEnvSecret456", "secret-path", "slackPathSecret42", "smtpPassword77"} {
			require.NotContains(t, out, secret, format)
		}
		require.Contains(t, out, "<redacted>", format)
		require.Contains(t, out, "HOOK_SECRET", format, "variable names are fine to show")
		require.Contains(t, out, "HOOK_URL", format)
		require.Contains(t, out, "fraiseql", format, "other headers are shown")
	}
	_, out := runValidate(t, env, validateConfigOpts{File: path, Detailed: true})
	require.Contains(t, out, "signing_secret:     <redacted>")
	require.Contains(t, out, "header:             Authorization: <redacted>")
	require.Contains(t, out, "method:             POST")
	require.Contains(t, out, "timeout:            30s")
	require.Contains(t, out, "signature:          standard")
	require.Contains(t, out, "retry:      max_attempts=5 initial_delay=1s max_delay=5m backoff=exponential")
}

func TestValidateConfigJSON(t *testing.T) {
	t.Parallel()
	code, out := runValidate(t, nil, validateConfigOpts{File: filepath.Join(testdataDir, "invalid", "many_errors.yaml"), Format: "json"})
	require.Equal(t, exitFailure, code)
	var report validateReport
	require.NoError(t, json.Unmarshal([]byte(out), &report), out)
	require.False(t, report.Valid)
	require.Empty(t, report.Observers)
	require.Len(t, report.Diagnostics, 5)
	d := report.Diagnostics[0]
	require.Equal(t, diagnosticView{File: filepath.Join(testdataDir, "invalid", "many_errors.yaml"), Line: 7, Column: 3, Severity: "error",
		Message: `unknown key "batch" in listener`, Hint: `did you mean "batch_size"? valid keys: id, table, batch_size, poll_interval, batch_bytes, max_event_bytes, batch_timeout`}, d)

	path := filepath.Join(testdataDir, "valid.yaml")
	code, out = runValidate(t, nil, validateConfigOpts{File: path, Format: "json"})
	require.Equal(t, exitOK, code, out)
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &raw))
	for _, k := range []string{"file", "valid", "observers", "diagnostics"} {
		require.Contains(t, raw, k)
	}
	require.NoError(t, json.Unmarshal([]byte(out), &report))
	require.True(t, report.Valid)
	require.Len(t, report.Observers, 3)
	require.Equal(t, "order_created", report.Observers[1].Name)
	require.Equal(t, []string{"INSERT"}, report.Observers[1].Events)
	actions := raw["observers"].([]any)[1].(map[string]any)["actions"].([]any)
	require.Equal(t, "webhook", actions[0].(map[string]any)["type"])
	require.Equal(t, "<redacted>", actions[0].(map[string]any)["signing_secret"])
	require.Len(t, report.Diagnostics, 2, "both env variables unset: warnings")
	require.Equal(t, "warning", report.Diagnostics[0].Severity)
}

// observers_table rows are checked only with a database URL; without one the
// output says they were not.
func TestValidateConfigTableRows(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "obs.yaml")
	require.NoError(t, os.WriteFile(path, []byte("observers_table: core.tb_observer\n"), 0o600))
	code, out := runValidate(t, nil, validateConfigOpts{File: path})
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, "note: observers in observers_table core.tb_observer were not checked")

	pool, url := sqltest.NewDB(t)
	_, err := pool.Exec(t.Context(), `CREATE TABLE core.tb_observer (id serial, name text, entity_type text, event_type text,
		condition_expression text, actions jsonb, enabled boolean DEFAULT true, retry_config jsonb, timeout_ms int, deleted_at timestamptz);
		INSERT INTO core.tb_observer (name, entity_type, actions) VALUES ('order_created', 'Order', '[{"type": "webhok"}]')`)
	require.NoError(t, err)
	code, out = runValidate(t, nil, validateConfigOpts{File: path, DatabaseURL: url})
	require.Equal(t, exitFailure, code, out)
	require.Contains(t, out, `tb_observer[order_created]: unknown action type "webhok"`+"\n  hint: did you mean \"webhook\"?")
	require.NotContains(t, out, "not checked")
}

// --detailed shows the retention: block with its defaults; JSON has it too.
func TestValidateConfigRetention(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "retention.yaml")
	require.NoError(t, os.WriteFile(path, []byte("retention: {change_log: 2w, dead_letters: off}\n"+
		"observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"), 0o600))
	code, out := runValidate(t, nil, validateConfigOpts{File: path, Detailed: true})
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, "\nretention: change_log=14d completed_jobs=1d dead_letters=off skipped_events=30d\n")

	code, out = runValidate(t, nil, validateConfigOpts{File: path, Format: "json"})
	require.Equal(t, exitOK, code, out)
	var report validateReport
	require.NoError(t, json.Unmarshal([]byte(out), &report))
	require.Equal(t, &retentionView{ChangeLog: "14d", CompletedJobs: "1d", DeadLetters: "off", SkippedEvents: "30d"}, report.Retention)

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("retention:\n  change_log: forever\n"), 0o600))
	code, out = runValidate(t, nil, validateConfigOpts{File: bad})
	require.Equal(t, exitFailure, code)
	require.Contains(t, out, `bad.yaml:2:15: invalid period "forever" for retention.change_log`)
	require.Contains(t, out, "hint: use a period such as 30d, 1w or 24h, or off to keep the rows forever")
}

// --detailed and JSON show the admin: block by variable names, never a
// credential; an unset variable is a warning here (`run` refuses it).
func TestValidateConfigAdmin(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "admin.yaml")
	require.NoError(t, os.WriteFile(path, []byte("admin: {token_env: ADMIN_TOKEN, basic_auth: {username: ops, password_env: ADMIN_PASSWORD}}\n"+
		"observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"), 0o600))
	env := map[string]string{"ADMIN_TOKEN": "tok-never-shown"}
	code, out := runValidate(t, env, validateConfigOpts{File: path, Detailed: true})
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, "\nadmin:    auth=token+basic token_env=ADMIN_TOKEN basic_auth.username=ops "+
		"basic_auth.password_env=ADMIN_PASSWORD riverui=true riverui_write=false\n")
	require.Contains(t, out, "environment variable ADMIN_PASSWORD (admin.basic_auth.password_env) is not set")
	require.NotContains(t, out, "tok-never-shown")

	code, out = runValidate(t, env, validateConfigOpts{File: path, Format: "json"})
	require.Equal(t, exitOK, code, out)
	var report validateReport
	require.NoError(t, json.Unmarshal([]byte(out), &report))
	require.Equal(t, &adminView{Auth: "token+basic", TokenEnv: "ADMIN_TOKEN", BasicAuthUsername: "ops",
		BasicAuthPasswordEnv: "ADMIN_PASSWORD", RiverUI: true}, report.Admin)
	require.NotContains(t, out, "tok-never-shown")
}

package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// logSecrets are the secrets the log test configures; none may appear in
// the process's log, in any of the forms secretForms gives.
var logSecrets = map[string]string{
	"signing secret": "whsec-Sign1ng-7c2e9a41",
	"URL password":   "Url+Pass/w0rd-5d8b",
	"query token":    "Qu3ry tok+en/4f0a",
	"bearer token":   "Bear3r-T0ken-9e17c3",
	"SMTP password":  "Smtp-Pa55w0rd-2b6d",
	"Redis password": "Red1s-Pa55-8a3f",
}

// secretForms are s as it may be logged: raw, URL-encoded (query and path),
// base64 (standard and URL) and, for the URL password, inside basic auth.
func secretForms(s string) []string {
	forms := []string{s, url.QueryEscape(s), url.PathEscape(s),
		base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)),
		base64.StdEncoding.EncodeToString([]byte("hookuser:" + s))}
	return forms
}

// deliveryMessages are the log messages about one delivery: each line
// carries event_id, observer, action_type and attempt.
var deliveryMessages = []string{
	"worker: action delivered", "worker: action failed", "worker: delivery snoozed; no attempt spent",
	"worker: action panicked", "worker: served from the result cache", "worker: result cache read failed; sending the request",
	"worker: result cache write failed", "worker: cache keys invalidated",
}

// A full run with every kind of secret configured (signing secret, URL
// userinfo and query token, bearer header, SMTP and Redis passwords), whose
// deliveries succeed, fail (500, 400), time out and meet an open circuit
// breaker, logs none of them at debug level, in text or JSON; in JSON every
// line about a delivery names its event, observer, action type and attempt.
func TestLogsHoldNoSecretsAndNameDeliveries(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			log := runWithSecrets(t, format)
			for name, s := range logSecrets {
				for _, f := range secretForms(s) {
					require.NotContains(t, log, f, "the %s (as %q) is in the %s log", name, f, format)
				}
			}
			if format == "json" {
				requireDeliveryAttrs(t, log)
			}
		})
	}
}

// runWithSecrets runs the binary with --log-format format through every
// outcome and returns its whole log.
func runWithSecrets(t *testing.T, format string) string {
	pool, dbURL := sqltest.NewDB(t)
	sec := logSecrets
	ok := observertest.NewReceiver(t, observertest.ReceiverOptions{Secret: sec["signing secret"]})
	answer := func(status int) *observertest.Receiver {
		return observertest.NewReceiver(t, observertest.ReceiverOptions{
			Respond: func(context.Context, observertest.Delivery) observertest.Response {
				return observertest.Response{Status: status}
			},
		})
	}
	fail500, fail400, down := answer(http.StatusInternalServerError), answer(http.StatusBadRequest), answer(http.StatusServiceUnavailable)
	hang := observertest.NewReceiver(t, observertest.ReceiverOptions{
		Respond: func(ctx context.Context, _ observertest.Delivery) observertest.Response {
			<-ctx.Done()
			return observertest.Response{Status: http.StatusGatewayTimeout}
		},
	})
	box := observertest.NewSMTPServer(t, observertest.SMTPOptions{})
	secretURL := func(r *observertest.Receiver) string {
		u, err := url.Parse(r.URL())
		require.NoError(t, err)
		u.User = url.UserPassword("hookuser", sec["URL password"])
		u.Path = "/hook"
		u.RawQuery = url.Values{"token": {sec["query token"]}}.Encode()
		return u.String()
	}
	hook := func(env string, timeout string) string {
		return fmt.Sprintf("  - type: webhook\n    url_env: %s\n    signing_secret_env: HOOK_SECRET\n    timeout: %s\n"+
			"    headers: {Authorization: \"Bearer %s\"}\n", env, timeout, sec["bearer token"])
	}
	retry := "retry: {max_attempts: 2, initial_delay: 50ms, max_delay: 100ms}\n"
	extra := fmt.Sprintf("smtp: {host: %s, port: %d, from: a@example.com, tls: none, timeout: 5s, username_env: SMTP_USER, password_env: SMTP_PASS}\n"+
		"redis: {url: 'redis://:%s@127.0.0.1:6379/0', key_prefix: '%s'}\ncache: {backend: redis, ttl: 5m}\n"+
		"circuit_breaker: {min_requests: 3, sample_size: 10, failure_threshold: 0.5, timeout: 30s}\n",
		box.Host(), box.Port(), url.PathEscape(sec["Redis password"]), redisPrefix())
	cfg := webhookConfig(extra, map[string]string{
		"ok":      "entity: Ok\nevents: [INSERT]\nactions:\n" + hook("HOOK_OK", "5s") + retry,
		"fail500": "entity: Fail500\nevents: [INSERT]\nactions:\n" + hook("HOOK_500", "5s") + retry,
		"fail400": "entity: Fail400\nevents: [INSERT]\nactions:\n" + hook("HOOK_400", "5s") + retry,
		"hang":    "entity: Hang\nevents: [INSERT]\nactions:\n" + hook("HOOK_HANG", "300ms") + "retry: {max_attempts: 1}\n",
		"down":    "entity: Down\nevents: [INSERT]\nactions:\n" + hook("HOOK_DOWN", "5s") + "retry: {max_attempts: 10, initial_delay: 50ms, max_delay: 100ms}\n",
		"mail":    "entity: Mail\nevents: [INSERT]\nactions:\n  - {type: email, to: b@example.com, subject_template: s, body_template: b}\n" + retry,
	})
	opts := runOptions(dbURL, cfg, "HOOK_SECRET="+sec["signing secret"], "HOOK_OK="+secretURL(ok), "HOOK_500="+secretURL(fail500),
		"HOOK_400="+secretURL(fail400), "HOOK_HANG="+secretURL(hang), "HOOK_DOWN="+secretURL(down),
		"SMTP_USER=mailer", "SMTP_PASS="+sec["SMTP password"])
	opts.Args = append(opts.Args, "--log-format", format)
	p := observertest.StartProcess(t, opts)

	for _, e := range []string{"Ok", "Fail500", "Fail400", "Hang", "Mail"} {
		observertest.InsertChange(t, pool, observertest.Change{Entity: e, ID: "1", Kind: "INSERT", Data: `{"n": 1}`})
	}
	for i := range 5 {
		observertest.InsertChange(t, pool, observertest.Change{Entity: "Down", ID: fmt.Sprint(i), Kind: "INSERT", Data: `{}`})
	}
	d := ok.WaitN(t, 1, 60*time.Second)[0]
	// The same change again: the result cache (in Redis, reached with the
	// password) answers, and its line names the delivery too.
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Ok", ID: "1", Kind: "INSERT", Data: `{"n": 1}`})
	require.NoError(t, d.SignatureErr, "the receiver checked the signature made with the configured secret")
	require.Equal(t, "Bearer "+sec["bearer token"], d.Header.Get("Authorization"))
	waitJobStates(t, pool, map[string]string{"Fail500": "discarded", "Fail400": "cancelled", "Hang": "discarded"})
	require.Eventually(t, func() bool {
		return strings.Contains(p.Log(), "delivery snoozed") && strings.Contains(p.Log(), "served from the result cache")
	}, 60*time.Second, 50*time.Millisecond, "the open breaker snoozes a delivery and the cache serves the repeated change")
	require.Len(t, ok.All(), 1, "the repeated change was not sent again")
	require.NoError(t, p.Stop(stopTimeout))
	return p.Log()
}

// waitJobStates waits until the job of each entity's change is in its state.
func waitJobStates(t *testing.T, pool *pgxpool.Pool, want map[string]string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for entity, state := range want {
			var n int
			err := pool.QueryRow(context.Background(), `SELECT count(*) FROM observer_deliveries d
				JOIN `+observertest.ChangeLogTable+` c ON c.pk_entity_change_log = d.seq
				WHERE c.object_type = $1 AND d.state = $2`, entity, state).Scan(&n)
			if err != nil || n == 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 50*time.Millisecond, "jobs reach %v", want)
}

// requireDeliveryAttrs parses every JSON line of log and checks that each
// line about a delivery carries the four attributes, and that every kind of
// outcome was logged.
func requireDeliveryAttrs(t *testing.T, log string) {
	t.Helper()
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "a log line is not JSON: %s", line)
		msg, _ := rec["msg"].(string)
		// The log action's own line, the breaker's and River's lines about
		// an action job ("Job errored", "Job snoozed") too.
		about := rec["action_type"] != nil && rec["component"] == nil || rec["job_kind"] == "fraiseql_observer_action"
		for _, m := range deliveryMessages {
			about = about || msg == m
		}
		if !about {
			continue
		}
		seen[msg]++
		for _, k := range []string{"event_id", "observer", "action_type", "attempt", "event_seq", "job_id"} {
			require.NotEmpty(t, rec[k], "%s is missing from %s", k, line)
		}
	}
	for _, m := range []string{"worker: action delivered", "worker: action failed", "worker: delivery snoozed; no attempt spent",
		"worker: served from the result cache", "jobexecutor.JobExecutor: Job errored", "jobexecutor.JobExecutor: Job snoozed"} {
		require.Positive(t, seen[m], "no %q line in the log:\n%s", m, log)
	}
}

package observertest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// What an application's test looks like with the observer in-process: its
// configuration (with *_env variables), its database, a change, and the
// signed webhook and the email that arrive.
func TestRunInProcess(t *testing.T) {
	t.Parallel()
	pool, dbURL := sqltest.NewDB(t)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	recv := observertest.NewReceiver(t, observertest.ReceiverOptions{Secret: secret})
	mail := observertest.NewSMTPServer(t, observertest.SMTPOptions{})
	obs := observertest.Run(t, observertest.Options{DatabaseURL: dbURL, Config: fmt.Sprintf(`
allow_private_targets: true
smtp: {host: %s, port: %d, from: orders@example.com, tls: none}
observers:
  order_created:
    entity: Order
    events: [INSERT]
    condition: total > 100
    actions:
      - {type: webhook, url_env: ORDER_HOOK_URL, signing_secret_env: ORDER_HOOK_SECRET}
      - {type: email, to: sales@example.com, subject_template: "Order {{ event.entity_id }}"}
`, mail.Host(), mail.Port()), Env: map[string]string{"ORDER_HOOK_URL": recv.URL() + "/orders", "ORDER_HOOK_SECRET": secret}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, obs.WaitLeader(ctx))

	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "41", Kind: "INSERT", Data: `{"total": 50}`})
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "42", Kind: "INSERT", Data: `{"total": 250}`})
	d := recv.WaitN(t, 1, 30*time.Second)[0]
	require.NoError(t, d.SignatureErr)
	require.Equal(t, observertest.SchemeStandard, d.Scheme)
	require.Equal(t, "/orders", d.Path)
	var env map[string]any
	require.NoError(t, json.Unmarshal(d.Body, &env))
	require.Equal(t, "42", env["entity_id"], "the condition filtered order 41 out")

	m := mail.WaitN(t, 1, 30*time.Second)[0]
	require.Equal(t, []string{"sales@example.com"}, m.To)
	require.Contains(t, string(m.Data), "Subject: Order 42")
	recv.Quiet(t, 300*time.Millisecond)
	require.NotEmpty(t, obs.HTTPAddr())
	require.Contains(t, obs.Log(), "run: started")
}

// A configuration the observer cannot use fails the test with its
// diagnostics.
func TestRunRefusesABadConfig(t *testing.T) {
	t.Parallel()
	_, dbURL := sqltest.NewDB(t)
	msg := fatal(t, func(tb testing.TB) {
		observertest.Run(tb, observertest.Options{DatabaseURL: dbURL, Config: "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: webhok}]\n"})
	})
	require.Contains(t, msg, `unknown action type "webhok"`)
}

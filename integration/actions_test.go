package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// One event triggers an email, a Slack message, a SQL function and a log
// line; each is delivered and every job completes.
func TestActionTypesEndToEnd(t *testing.T) {
	t.Parallel()
	pool, url := sqltest.NewDB(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
CREATE SCHEMA app;
CREATE TABLE app.order_audit (id serial PRIMARY KEY, payload jsonb NOT NULL);
CREATE FUNCTION app.record_order(p jsonb) RETURNS void LANGUAGE sql AS
  $$ INSERT INTO app.order_audit (payload) VALUES (p) $$;`)
	require.NoError(t, err)

	box := observertest.NewSMTPServer(t, observertest.SMTPOptions{})
	slack := observertest.NewReceiver(t, observertest.ReceiverOptions{})
	const secretPath = "/services/T01/B02/sekr1t"

	smtpBlock := fmt.Sprintf("smtp:\n  host: %s\n  port: %d\n  from: \"Orders <orders@example.com>\"\n  tls: none\n  timeout: 5s\n", box.Host(), box.Port())
	cfg := webhookConfig(smtpBlock, map[string]string{"order_actions": `entity: Order
events: [INSERT]
actions:
  - type: email
    to_template: "{{ customer_email }}"
    cc: audit@example.com
    reply_to: support@example.com
    subject_template: "Bestellung {{ event.entity_id }} — Grüße"
    body_template: "Total {{ total }}: {{ note }}"
    html_template: "<p>{{ note }}</p>"
  - type: slack
    webhook_url_env: IT_SLACK_URL
    channel: "#orders"
    message_template: "Order {{ event.entity_id }}: {{ note }}"
  - type: database
    function_name: app.record_order
    params: {source: integration}
  - type: log
    level: warn
    message_template: "order {{ event.entity_id }} seen by the log action"
retry: {max_attempts: 3, initial_delay: 50ms, max_delay: 200ms}
`})
	p := observertest.StartProcess(t, runOptions(url, cfg, "IT_SLACK_URL="+slack.URL()+secretPath))
	observertest.InsertChange(t, pool, observertest.Change{Entity: "Order", ID: "42", Kind: "INSERT", Data: `{"customer_email": "zoe@example.com", "total": 12.5, "note": "<ok> & \"fine\""}`})

	// Slack: one JSON message on the secret path.
	d := slack.WaitN(t, 1, 60*time.Second)[0]
	require.Equal(t, secretPath, d.Path)
	require.Equal(t, "application/json", d.Header.Get("Content-Type"))
	var slackMsg map[string]string
	require.NoError(t, json.Unmarshal(d.Body, &slackMsg))
	require.Equal(t, map[string]string{"text": `Order 42: <ok> & "fine"`, "channel": "#orders"}, slackMsg)

	// Email: one message with the rendered headers and both parts.
	msg := box.WaitN(t, 1, 60*time.Second)[0]
	require.Len(t, box.Messages(), 1)
	require.Equal(t, "orders@example.com", msg.From)
	require.ElementsMatch(t, []string{"zoe@example.com", "audit@example.com"}, msg.To)
	m, err := mail.ReadMessage(bytes.NewReader(msg.Data))
	require.NoError(t, err)
	require.Equal(t, `"Orders" <orders@example.com>`, m.Header.Get("From"))
	require.Equal(t, "<zoe@example.com>", m.Header.Get("To"))
	require.Equal(t, "<audit@example.com>", m.Header.Get("Cc"))
	require.Equal(t, "<support@example.com>", m.Header.Get("Reply-To"))
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	require.NoError(t, err)
	require.Equal(t, "Bestellung 42 — Grüße", subject)
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	parts := map[string]string{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		body, err := io.ReadAll(part)
		require.NoError(t, err)
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		parts[ct] = string(body)
	}
	require.Equal(t, `Total 12.5: <ok> & "fine"`, parts["text/plain"])
	require.Equal(t, `<p>&lt;ok&gt; &amp; &#34;fine&#34;</p>`, parts["text/html"])

	// Database: the function ran once with the envelope and the params.
	require.Eventually(t, func() bool {
		var n int
		return pool.QueryRow(ctx, `SELECT count(*) FROM app.order_audit`).Scan(&n) == nil && n == 1
	}, 60*time.Second, 20*time.Millisecond)
	var entityID, source string
	require.NoError(t, pool.QueryRow(ctx, `SELECT payload->'event'->>'entity_id', payload->'params'->>'source' FROM app.order_audit`).
		Scan(&entityID, &source))
	require.Equal(t, "42", entityID)
	require.Equal(t, "integration", source)

	// Log: one structured line with the observer and the event.
	require.Eventually(t, func() bool {
		return strings.Contains(p.Log(), `level=WARN msg="order 42 seen by the log action" action_type=log observer=order_actions`)
	}, 60*time.Second, 20*time.Millisecond)

	// Every job completed; the Slack URL's secret path was never logged.
	require.Eventually(t, func() bool {
		var n int
		return pool.QueryRow(ctx, `SELECT count(*) FROM observer_deliveries WHERE state = 'completed'`).Scan(&n) == nil && n == 4
	}, 30*time.Second, 20*time.Millisecond)
	var types []string
	rows, err := pool.Query(ctx, `SELECT action_type FROM observer_deliveries ORDER BY action`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		types = append(types, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"email", "slack", "database", "log"}, types)
	require.NoError(t, p.Stop(stopTimeout))
	require.NotContains(t, p.Log(), "sekr1t")
}

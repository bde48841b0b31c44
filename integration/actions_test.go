package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/sql/sqltest"
)

// mailbox is an SMTP server on loopback that keeps every message it gets.
type mailbox struct {
	mu   sync.Mutex
	msgs [][]byte
	rcpt []string
}

func (b *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailboxSession{b: b}, nil }

func (b *mailbox) messages() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]byte(nil), b.msgs...)
}

type mailboxSession struct {
	b  *mailbox
	to []string
}

func (s *mailboxSession) Reset()                               { s.to = nil }
func (s *mailboxSession) Logout() error                        { return nil }
func (s *mailboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailboxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *mailboxSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, data)
	s.b.rcpt = append(s.b.rcpt, s.to...)
	s.b.mu.Unlock()
	return nil
}

type quietLog struct{}

func (quietLog) Printf(string, ...any) {}
func (quietLog) Println(...any)        {}

// startMailbox serves an SMTP server (no TLS) on loopback and returns its port.
func startMailbox(t *testing.T) (*mailbox, int) {
	t.Helper()
	box := &mailbox{}
	srv := smtp.NewServer(box)
	srv.Domain = "localhost"
	srv.ErrorLog = quietLog{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return box, ln.Addr().(*net.TCPAddr).Port
}

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

	box, smtpPort := startMailbox(t)
	slack := newReceiver(t, nil)
	const secretPath = "/services/T01/B02/sekr1t"

	smtpBlock := fmt.Sprintf("smtp:\n  host: 127.0.0.1\n  port: %d\n  from: \"Orders <orders@example.com>\"\n  tls: none\n  timeout: 5s\n", smtpPort)
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
	p := startRun(t, url, cfg, "IT_SLACK_URL="+slack.URL+secretPath)
	insertChange(t, pool, "Order", "42", "INSERT",
		`{"customer_email": "zoe@example.com", "total": 12.5, "note": "<ok> & \"fine\""}`)

	// Slack: one JSON message on the secret path.
	d := slack.waitN(t, 1, 60*time.Second)[0]
	require.Equal(t, secretPath, d.Path)
	require.Equal(t, "application/json", d.Header.Get("Content-Type"))
	var slackMsg map[string]string
	require.NoError(t, json.Unmarshal(d.Body, &slackMsg))
	require.Equal(t, map[string]string{"text": `Order 42: <ok> & "fine"`, "channel": "#orders"}, slackMsg)

	// Email: one message with the rendered headers and both parts.
	require.Eventually(t, func() bool { return len(box.messages()) == 1 }, 60*time.Second, 20*time.Millisecond)
	m, err := mail.ReadMessage(bytes.NewReader(box.messages()[0]))
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
	p.Stop()
	require.NotContains(t, p.Log(), "sekr1t")
}

package email_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/emersion/go-smtp"
	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/action/email"
	"github.com/fraiseql/fraiseql-observers/observertest"
	"github.com/stretchr/testify/require"
)

// startSMTP starts an SMTP server on loopback (observertest) and returns
// it with the smtp: block that reaches it without TLS.
func startSMTP(t *testing.T, opts observertest.SMTPOptions) (*observertest.SMTPServer, *observers.SMTPConfig) {
	t.Helper()
	srv := observertest.NewSMTPServer(t, opts)
	return srv, &observers.SMTPConfig{Host: srv.Host(), Port: srv.Port(), From: "Observer <observer@example.com>",
		TLS: observers.SMTPTLSNone, Timeout: 5 * time.Second}
}

func startSMTPConfig(t *testing.T, opts observertest.SMTPOptions) *observers.SMTPConfig {
	_, c := startSMTP(t, opts)
	return c
}

func emailEvent() *observers.Event {
	return &observers.Event{Seq: 9, ID: "3f0c5a1e-0000-4000-8000-000000000042", Kind: observers.KindInsert, EntityType: "Order", EntityID: "42",
		Data: map[string]any{
			"total":    99.5,
			"customer": map[string]any{"name": `Zoë & <Bob> "O'Neil"`, "email": "zoe@example.com"},
		}}
}

func parseEmailAction(t *testing.T, action string) *email.Action {
	t.Helper()
	src := "smtp: {host: h, from: a@example.com}\nobservers:\n  o:\n    entity: Order\n    events: [INSERT]\n    actions:\n      - type: email\n" + action
	cfg, diags, err := observers.ParseWithEnv("e.yaml", []byte(src), envOf(nil))
	require.NoError(t, err, "%v", diags)
	return cfg.Observers[0].Actions[0].(*email.Action)
}

func TestEmailSendsMessage(t *testing.T) {
	t.Parallel()
	srv, smtpCfg := startSMTP(t, observertest.SMTPOptions{})
	ea := parseEmailAction(t, `        to_template: "{{ customer.email }}, ops@example.com"
        cc: [audit@example.com]
        reply_to: support@example.com
        subject_template: "Grüße — order {{ event.entity_id }} für {{ customer.name }} 🎉"
        body_template: "Hello {{ customer.name }},\ntotal {{ total }}\n"
        html_template: "<p>Hello {{ customer.name }}, total <b>{{ total }}</b></p>"
`)
	msg, err := ea.Render(emailEvent(), "o")
	require.NoError(t, err)
	err = email.Send(context.Background(), smtpCfg, msg, observers.MessageID("e", "o", 0), envOf(nil))
	require.NoError(t, err)

	got := srv.Messages()
	require.Len(t, got, 1)
	require.Equal(t, "observer@example.com", got[0].From, "envelope sender")
	require.ElementsMatch(t, []string{"zoe@example.com", "ops@example.com", "audit@example.com"}, got[0].To, "envelope recipients")

	m, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	require.NoError(t, err)
	from, err := m.Header.AddressList("From")
	require.NoError(t, err)
	require.Equal(t, []*mail.Address{{Name: "Observer", Address: "observer@example.com"}}, from)
	to, err := m.Header.AddressList("To")
	require.NoError(t, err)
	require.Equal(t, []*mail.Address{{Address: "zoe@example.com"}, {Address: "ops@example.com"}}, to)
	cc, err := m.Header.AddressList("Cc")
	require.NoError(t, err)
	require.Equal(t, []*mail.Address{{Address: "audit@example.com"}}, cc)
	replyTo, err := m.Header.AddressList("Reply-To")
	require.NoError(t, err)
	require.Equal(t, []*mail.Address{{Address: "support@example.com"}}, replyTo)
	require.Equal(t, "<"+observers.MessageID("e", "o", 0)+"@fraiseql-observers>", m.Header.Get("Message-Id"))

	rawSubject := m.Header.Get("Subject")
	require.True(t, strings.HasPrefix(rawSubject, "=?UTF-8?"), "non-ASCII subject is MIME-encoded: %q", rawSubject)
	for _, r := range rawSubject {
		require.Less(t, r, rune(128), "the raw header is ASCII")
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(rawSubject)
	require.NoError(t, err)
	require.Equal(t, `Grüße — order 42 für Zoë & <Bob> "O'Neil" 🎉`, subject)

	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mediaType)
	parts := map[string]string{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		ct, _, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		require.NoError(t, err)
		body, err := io.ReadAll(p) // quoted-printable is decoded by the reader
		require.NoError(t, err)
		parts[ct] = strings.ReplaceAll(string(body), "\r\n", "\n")
	}
	require.Equal(t, "Hello Zoë & <Bob> \"O'Neil\",\ntotal 99.5\n", parts["text/plain"], "text values are raw")
	require.Equal(t, "<p>Hello Zoë &amp; &lt;Bob&gt; &#34;O&#39;Neil&#34;, total <b>99.5</b></p>", parts["text/html"],
		"HTML values are escaped, the template's own markup is not")
}

func TestEmailHTMLOnlyAndLiteralRecipients(t *testing.T) {
	t.Parallel()
	srv, smtpCfg := startSMTP(t, observertest.SMTPOptions{})
	ea := parseEmailAction(t, "        to: ops@example.com\n        subject: Plain\n        html_template: '<i>{{ total }}</i>'\n")
	msg, err := ea.Render(emailEvent(), "o")
	require.NoError(t, err)
	require.NoError(t, email.Send(context.Background(), smtpCfg, msg, "id", envOf(nil)))
	got := srv.Messages()
	require.Len(t, got, 1)
	m, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	require.NoError(t, err)
	require.Equal(t, "Plain", m.Header.Get("Subject"))
	require.True(t, strings.HasPrefix(m.Header.Get("Content-Type"), "text/html"))
	require.Empty(t, m.Header.Get("Cc"))
	require.Empty(t, m.Header.Get("Reply-To"))
}

func TestEmailToTemplateMustRenderAddresses(t *testing.T) {
	t.Parallel()
	ea := parseEmailAction(t, "        to_template: '{{ missing }}'\n")
	_, err := ea.Render(emailEvent(), "o")
	require.Error(t, err)
	require.Contains(t, err.Error(), "to_template rendered")
}

func TestEmailErrorClassification(t *testing.T) {
	t.Parallel()
	send := func(t *testing.T, smtpCfg *observers.SMTPConfig) *observers.DeliveryError {
		t.Helper()
		ea := parseEmailAction(t, "        to: ops@example.com\n")
		msg, err := ea.Render(emailEvent(), "o")
		require.NoError(t, err)
		err = email.Send(context.Background(), smtpCfg, msg, "id", envOf(nil))
		require.Error(t, err)
		var de *observers.DeliveryError
		require.True(t, errors.As(err, &de), "%T: %v", err, err)
		return de
	}
	t.Run("550 at RCPT is permanent", func(t *testing.T) {
		t.Parallel()
		de := send(t, startSMTPConfig(t, observertest.SMTPOptions{RcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}))
		require.True(t, de.Permanent)
		require.Contains(t, de.Error(), "550")
	})
	t.Run("554 at DATA is permanent", func(t *testing.T) {
		t.Parallel()
		de := send(t, startSMTPConfig(t, observertest.SMTPOptions{DataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "rejected"}}))
		require.True(t, de.Permanent)
	})
	t.Run("451 at MAIL is transient", func(t *testing.T) {
		t.Parallel()
		de := send(t, startSMTPConfig(t, observertest.SMTPOptions{MailErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}}))
		require.False(t, de.Permanent)
		require.Contains(t, de.Error(), "451")
	})
	t.Run("451 at DATA is transient", func(t *testing.T) {
		t.Parallel()
		de := send(t, startSMTPConfig(t, observertest.SMTPOptions{DataErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}}))
		require.False(t, de.Permanent)
	})
	t.Run("unreachable port is transient", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		require.NoError(t, ln.Close())
		de := send(t, &observers.SMTPConfig{Host: "127.0.0.1", Port: port, From: "a@example.com", TLS: observers.SMTPTLSNone, Timeout: 2 * time.Second})
		require.False(t, de.Permanent)
	})
	t.Run("starttls required but not offered is transient", func(t *testing.T) {
		t.Parallel()
		c := startSMTPConfig(t, observertest.SMTPOptions{})
		c.TLS = observers.SMTPTLSStartTLS
		de := send(t, c)
		require.False(t, de.Permanent)
		require.Contains(t, de.Error(), "STARTTLS")
	})
	t.Run("missing smtp block is permanent", func(t *testing.T) {
		t.Parallel()
		require.True(t, send(t, nil).Permanent)
	})
}

func TestSMTPResolvedAuthNeverLeaksValues(t *testing.T) {
	t.Parallel()
	c := &observers.SMTPConfig{UsernameEnv: "U", PasswordEnv: "P"}
	_, _, err := c.ResolvedAuth(envOf(map[string]string{"U": "user"}))
	require.Error(t, err)
	require.Contains(t, err.Error(), "P (smtp.password_env)")
	u, p, err := c.ResolvedAuth(envOf(map[string]string{"U": "user", "P": "s3cret"}))
	require.NoError(t, err)
	require.Equal(t, "user", u)
	require.Equal(t, "s3cret", p)
}

func envOf(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

package observertest_test

import (
	"net/smtp"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observertest"
)

// The server keeps each message with its envelope, and refuses a recipient
// with the configured error.
func TestSMTPServerRecordsMessage(t *testing.T) {
	t.Parallel()
	srv := observertest.NewSMTPServer(t, observertest.SMTPOptions{})
	msg := "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
	require.NoError(t, smtp.SendMail(srv.Addr(), nil, "a@example.com", []string{"b@example.com", "c@example.com"}, []byte(msg)))

	got := srv.WaitN(t, 1, 5*time.Second)[0]
	require.Equal(t, "a@example.com", got.From)
	require.Equal(t, []string{"b@example.com", "c@example.com"}, got.To)
	require.Contains(t, string(got.Data), "Subject: hi\r\n")
	require.Contains(t, string(got.Data), "hello")
	require.Len(t, srv.Messages(), 1)
	require.Contains(t, fatal(t, func(tb testing.TB) { srv.WaitN(tb, 1, 50*time.Millisecond) }), "got 0 of 1 messages")

	refusing := observertest.NewSMTPServer(t, observertest.SMTPOptions{
		RcptErr: &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
	})
	err := smtp.SendMail(refusing.Addr(), nil, "a@example.com", []string{"b@example.com"}, []byte(msg))
	require.ErrorContains(t, err, "550")
	require.Empty(t, refusing.Messages())
	require.Equal(t, "127.0.0.1", refusing.Host())
	require.NotZero(t, refusing.Port())
}

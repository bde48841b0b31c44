package email

import (
	"cmp"
	"context"
	stderrors "errors"
	"fmt"
	"net/textproto"

	"github.com/cockroachdb/errors"
	gomail "github.com/wneessen/go-mail"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Send delivers msg through the smtp: block c, one connection per message
// (go-mail); getenv reads smtp.username_env and smtp.password_env. messageID (stable across
// retries) becomes the Message-ID, so receivers can spot a resend. Failures
// are *DeliveryError: SMTP 5xx replies and invalid addresses are permanent;
// 4xx replies, connection errors and timeouts are transient.
func Send(ctx context.Context, c *observers.SMTPConfig, msg *Message, messageID string, getenv func(string) (string, bool)) error {
	if c == nil || c.Host == "" || c.From == "" {
		return &observers.DeliveryError{Permanent: true, Err: errors.WithHint(errors.New("email: no smtp: block with host and from"),
			"add a top-level smtp: block")}
	}
	gm := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	gm.SetUserAgent(observers.UserAgentDefault)
	for _, set := range []struct {
		what string
		err  error
	}{
		{"from", gm.From(c.From)},
		{"to", gm.To(msg.To...)},
		{"cc", setIf(len(msg.Cc) > 0, func() error { return gm.Cc(msg.Cc...) })},
		{"reply_to", setIf(msg.ReplyTo != "", func() error { return gm.ReplyTo(msg.ReplyTo) })},
	} {
		if set.err != nil {
			return &observers.DeliveryError{Permanent: true, Err: errors.Wrapf(set.err, "email: invalid %s address", set.what)}
		}
	}
	gm.Subject(msg.Subject)
	if messageID != "" {
		gm.SetMessageIDWithValue(messageID + "@fraiseql-observers")
	}
	gm.SetDate()
	switch {
	case msg.Text != "":
		gm.SetBodyString(gomail.TypeTextPlain, msg.Text)
		if msg.HTML != "" {
			gm.AddAlternativeString(gomail.TypeTextHTML, msg.HTML)
		}
	default:
		gm.SetBodyString(gomail.TypeTextHTML, msg.HTML)
	}

	client, err := newClient(c, getenv)
	if err != nil {
		return err
	}
	timeout := cmp.Or(c.Timeout, observers.SMTPTimeoutDefault)
	sendCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := client.DialAndSendWithContext(sendCtx, gm); err != nil {
		return classifySMTPError(err, fmt.Sprintf("email via %s:%d", c.Host, c.DialPort()))
	}
	return nil
}

func setIf(cond bool, f func() error) error {
	if !cond {
		return nil
	}
	return f()
}

func newClient(c *observers.SMTPConfig, getenv func(string) (string, bool)) (*gomail.Client, error) {
	opts := []gomail.Option{gomail.WithPort(c.DialPort()), gomail.WithTimeout(cmp.Or(c.Timeout, observers.SMTPTimeoutDefault))}
	switch c.TLS {
	case observers.SMTPTLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case observers.SMTPTLSImplicit:
		opts = append(opts, gomail.WithSSL())
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	user, password, err := c.ResolvedAuth(getenv)
	if err != nil {
		return nil, &observers.DeliveryError{Permanent: true, Err: err}
	}
	if user != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(user), gomail.WithPassword(password))
	}
	client, err := gomail.NewClient(c.Host, opts...)
	if err != nil {
		return nil, &observers.DeliveryError{Permanent: true, Err: errors.Wrap(err, "email: smtp client")}
	}
	return client, nil
}

// classifySMTPError maps a go-mail error to a *DeliveryError: a 5xx reply
// (at the greeting, AUTH, MAIL, RCPT or DATA) and an address go-mail cannot
// use are permanent; 4xx replies and everything else (refused connection,
// timeout, TLS failure) are transient.
func classifySMTPError(err error, what string) error {
	code := 0
	permanent := false
	var se *gomail.SendError
	var te *textproto.Error
	switch {
	case stderrors.As(err, &se):
		code = se.ErrorCode()
		permanent = code >= 500 ||
			(code == 0 && (se.Reason == gomail.ErrGetSender || se.Reason == gomail.ErrGetRcpts || se.Reason == gomail.ErrNoUnencoded))
	case stderrors.As(err, &te):
		code = te.Code
		permanent = code >= 500
	}
	msg := what
	if code != 0 {
		msg = fmt.Sprintf("%s: server replied %d", what, code)
	}
	return &observers.DeliveryError{Permanent: permanent, Err: errors.Wrap(err, msg)}
}

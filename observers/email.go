package observers

import (
	"cmp"
	"context"
	"encoding/json"
	stderrors "errors"
	"fmt"
	"html"
	"net/mail"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/goccy/go-yaml/ast"
	gomail "github.com/wneessen/go-mail"
)

// SMTP defaults and TLS modes.
const (
	SMTPPortDefault    = 587 // 465 with tls: tls
	SMTPPortImplicit   = 465
	SMTPTimeoutDefault = 30 * time.Second

	SMTPTLSStartTLS = "starttls" // STARTTLS required (default)
	SMTPTLSImplicit = "tls"      // TLS from the first byte (SMTPS)
	SMTPTLSNone     = "none"     // plain text: only for a relay on a trusted network
)

var (
	smtpTLSModes = []string{SMTPTLSStartTLS, SMTPTLSImplicit, SMTPTLSNone}
	smtpKeys     = []string{"host", "port", "from", "username_env", "password_env", "tls", "timeout"}
	emailKeys    = []string{"type", "to", "to_template", "cc", "subject", "subject_template", "body_template",
		"html_template", "reply_to"}
)

// SMTPConfig is the top-level smtp: block that email actions send through.
type SMTPConfig struct {
	Host        string        // required when any email action exists
	Port        int           // default 587 (465 with tls: tls)
	From        string        // sender address; required when any email action exists
	UsernameEnv string        // environment variable holding the user name; empty: no AUTH
	PasswordEnv string        // environment variable holding the password (never logged or printed)
	TLS         string        // starttls (default), tls or none
	Timeout     time.Duration // connection and command timeout; default 30s
}

// ResolvedAuth returns the SMTP user name and password read from the
// environment at call time; both "" when no username_env is set. The error
// names the variable, never its value.
func (c *SMTPConfig) ResolvedAuth(getenv func(string) (string, bool)) (user, password string, err error) {
	if c.UsernameEnv == "" {
		return "", "", nil
	}
	vals := [2]string{}
	for i, v := range []struct{ name, key string }{{c.UsernameEnv, "username_env"}, {c.PasswordEnv, "password_env"}} {
		val, ok := getenv(v.name)
		if !ok || val == "" {
			return "", "", errors.WithHint(errors.Newf("environment variable %s (smtp.%s) is not set", v.name, v.key),
				fmt.Sprintf("export %s before starting the observer", v.name))
		}
		vals[i] = val
	}
	return vals[0], vals[1], nil
}

// EmailAction sends one email per event through the smtp: block.
type EmailAction struct {
	To              []string // recipients; exactly one of To and ToTemplate is set
	ToTemplate      string   // template rendering a comma-separated address list
	Cc              []string
	Subject         string // literal subject; at most one of Subject and SubjectTemplate
	SubjectTemplate string // default LogMessageTemplateDefault ("Order 42 INSERT")
	BodyTemplate    string // text/plain body; default: the event envelope as JSON (when HTMLTemplate is empty too)
	HTMLTemplate    string // text/html alternative; values are HTML-escaped
	ReplyTo         string

	to, subject, body, html *Template // compiled by the loader
	at                      ast.Node  // position, for the missing-smtp error
}

// EmailMessage is an email action rendered for one event.
type EmailMessage struct {
	To, Cc  []string
	ReplyTo string
	Subject string
	Text    string // text/plain part; "" when only HTML
	HTML    string // text/html part; "" when none
}

// Render renders the action's templates over the event. A to_template that
// does not render a valid address list is an error (permanent: retrying
// renders the same).
func (e *EmailAction) Render(ev *Event, observer string) (*EmailMessage, error) {
	data := TemplateData(ev)
	m := &EmailMessage{To: e.To, Cc: e.Cc, ReplyTo: e.ReplyTo}
	if e.ToTemplate != "" {
		rendered := compiledOr(e.to, e.ToTemplate, "").Render(data, false)
		list, err := mail.ParseAddressList(rendered)
		if err != nil || len(list) == 0 {
			return nil, errors.WithHint(errors.Newf("email: to_template rendered %q, not an address list", rendered),
				"the template must render addresses separated by commas, e.g. {{ customer.email }}")
		}
		m.To = nil
		for _, a := range list {
			m.To = append(m.To, a.String())
		}
	}
	subject := e.Subject
	if subject == "" {
		subject = compiledOr(e.subject, e.SubjectTemplate, LogMessageTemplateDefault).Render(data, false)
	}
	m.Subject = strings.Join(strings.Fields(subject), " ") // no header folding or injection
	if e.BodyTemplate != "" {
		m.Text = compiledOr(e.body, e.BodyTemplate, "").Render(data, false)
	}
	if e.HTMLTemplate != "" {
		m.HTML = renderHTML(compiledOr(e.html, e.HTMLTemplate, ""), data)
	}
	if m.Text == "" && m.HTML == "" && e.BodyTemplate == "" && e.HTMLTemplate == "" {
		b, err := json.MarshalIndent(ev.Envelope(observer), "", "  ")
		if err != nil {
			return nil, errors.Wrap(err, "email: encode event envelope")
		}
		m.Text = string(b) + "\n"
	}
	return m, nil
}

// renderHTML renders t with every substituted value HTML-escaped.
func renderHTML(t *Template, data map[string]any) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.path == nil {
			b.WriteString(p.text)
			continue
		}
		if v, ok := lookupPath(data, p.name, p.path); ok {
			b.WriteString(html.EscapeString(renderValue(v)))
		}
	}
	return b.String()
}

// MailerConfig configures a Mailer.
type MailerConfig struct {
	// Getenv reads smtp.username_env and smtp.password_env at send time;
	// default os.LookupEnv.
	Getenv func(string) (string, bool)
}

// Mailer sends rendered email actions over SMTP with go-mail, one
// connection per message. It is safe for concurrent use.
type Mailer struct {
	getenv func(string) (string, bool)
}

// NewMailer builds a Mailer.
func NewMailer(cfg MailerConfig) *Mailer {
	if cfg.Getenv == nil {
		cfg.Getenv = os.LookupEnv
	}
	return &Mailer{getenv: cfg.Getenv}
}

// Send delivers msg through the smtp: block c. messageID (stable across
// retries) becomes the Message-ID, so receivers can spot a resend. Failures
// are *DeliveryError: SMTP 5xx replies and invalid addresses are permanent;
// 4xx replies, connection errors and timeouts are transient.
func (m *Mailer) Send(ctx context.Context, c *SMTPConfig, msg *EmailMessage, messageID string) error {
	if c == nil || c.Host == "" || c.From == "" {
		return &DeliveryError{Permanent: true, Err: errors.WithHint(errors.New("email: no smtp: block with host and from"),
			"add a top-level smtp: block")}
	}
	gm := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	gm.SetUserAgent(WebhookUserAgentDefault)
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
			return &DeliveryError{Permanent: true, Err: errors.Wrapf(set.err, "email: invalid %s address", set.what)}
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

	client, err := m.client(c)
	if err != nil {
		return err
	}
	timeout := cmp.Or(c.Timeout, SMTPTimeoutDefault)
	sendCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := client.DialAndSendWithContext(sendCtx, gm); err != nil {
		return classifySMTPError(err, fmt.Sprintf("email via %s:%d", c.Host, smtpPort(c)))
	}
	return nil
}

func setIf(cond bool, f func() error) error {
	if !cond {
		return nil
	}
	return f()
}

func smtpPort(c *SMTPConfig) int {
	if c.Port != 0 {
		return c.Port
	}
	if c.TLS == SMTPTLSImplicit {
		return SMTPPortImplicit
	}
	return SMTPPortDefault
}

func (m *Mailer) client(c *SMTPConfig) (*gomail.Client, error) {
	opts := []gomail.Option{gomail.WithPort(smtpPort(c)), gomail.WithTimeout(cmp.Or(c.Timeout, SMTPTimeoutDefault))}
	switch c.TLS {
	case SMTPTLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case SMTPTLSImplicit:
		opts = append(opts, gomail.WithSSL())
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	user, password, err := c.ResolvedAuth(m.getenv)
	if err != nil {
		return nil, &DeliveryError{Permanent: true, Err: err}
	}
	if user != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(user), gomail.WithPassword(password))
	}
	client, err := gomail.NewClient(c.Host, opts...)
	if err != nil {
		return nil, &DeliveryError{Permanent: true, Err: errors.Wrap(err, "email: smtp client")}
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
	return &DeliveryError{Permanent: permanent, Err: errors.Wrap(err, msg)}
}

func (l *loader) smtp(e entry) *SMTPConfig {
	c := &SMTPConfig{}
	var userE, passE *entry
	fields, _ := l.mapping(e.value, e.keyN, "smtp", smtpKeys)
	for _, f := range fields {
		switch f.key {
		case "host":
			c.Host = strings.TrimSpace(l.str(f, "smtp.host"))
		case "port":
			c.Port = l.positiveInt(f, "smtp.port")
			if c.Port > 65535 {
				l.errorf(f.value, fmt.Sprintf("smtp.port %d is not a TCP port", c.Port), "use 587 (STARTTLS), 465 (tls) or 25")
				c.Port = 0
			}
		case "from":
			c.From = strings.TrimSpace(l.str(f, "smtp.from"))
			if c.From != "" {
				if _, err := mail.ParseAddress(c.From); err != nil {
					l.errorf(f.value, fmt.Sprintf("smtp.from %q is not an email address", c.From),
						`write an address: alerts@example.com or "Alerts <alerts@example.com>"`)
				}
			}
		case "username_env":
			userE, c.UsernameEnv = &f, l.envName(f, "smtp.username_env")
		case "password_env":
			passE, c.PasswordEnv = &f, l.envName(f, "smtp.password_env")
		case "tls":
			c.TLS = strings.ToLower(strings.TrimSpace(l.str(f, "smtp.tls")))
			if c.TLS != "" && !contains(smtpTLSModes, c.TLS) {
				l.errorf(f.value, fmt.Sprintf("unknown smtp.tls mode %q", c.TLS),
					"use starttls (default), tls (implicit TLS, port 465) or none")
				c.TLS = ""
			}
		case "timeout":
			c.Timeout = l.actionTimeout(f, "smtp")
		}
	}
	if (userE == nil) != (passE == nil) {
		l.errorf(e.keyN, "smtp: username_env and password_env go together", "set both, or neither for a relay without AUTH")
	}
	l.warnUnsetEnv(userE, c.UsernameEnv, "smtp.username_env")
	l.warnUnsetEnv(passE, c.PasswordEnv, "smtp.password_env")
	c.TLS = cmp.Or(c.TLS, SMTPTLSStartTLS)
	c.Port = cmp.Or(c.Port, smtpPort(c))
	c.Timeout = cmpDuration(c.Timeout, SMTPTimeoutDefault)
	return c
}

// checkSMTP requires an smtp: block with host and from when an email action
// exists.
func (l *loader) checkSMTP(cfg *Config, smtpAt ast.Node) {
	var first ast.Node
	found := false
	for _, o := range cfg.Observers {
		for _, a := range o.Actions {
			if a.Email == nil {
				continue
			}
			if !found {
				first, found = a.Email.at, true
			}
			a.Email.at = nil // the syntax tree is not kept
		}
	}
	if !found {
		return
	}
	switch {
	case cfg.SMTP == nil:
		l.errorf(first, "email actions need a top-level smtp: block",
			"add smtp: {host: smtp.example.com, from: alerts@example.com}")
	case cfg.SMTP.Host == "":
		l.errorf(smtpAt, "smtp.host is required when an email action exists", "set host: smtp.example.com")
	case cfg.SMTP.From == "":
		l.errorf(smtpAt, "smtp.from is required when an email action exists", "set from: alerts@example.com")
	}
}

func (l *loader) email(fields []entry, at ast.Node, where string) (*EmailAction, bool) {
	e := &EmailAction{at: at}
	ok := true
	var toE, toTplE, subjE, subjTplE *entry
	toBad := false // an address in to: was already reported
	for _, f := range l.actionFields(fields, emailKeys, where) {
		w := where + "." + f.key
		switch f.key {
		case "to":
			n := len(l.diags)
			toE, e.To = &f, l.addresses(f, w)
			toBad = len(l.diags) > n
		case "cc":
			e.Cc = l.addresses(f, w)
		case "reply_to":
			e.ReplyTo = strings.TrimSpace(l.str(f, w))
			if e.ReplyTo != "" {
				if _, err := mail.ParseAddress(e.ReplyTo); err != nil {
					l.errorf(f.value, fmt.Sprintf("%s %q is not an email address", w, e.ReplyTo), "write one address: support@example.com")
					ok = false
				}
			}
		case "to_template":
			toTplE = &f
			e.ToTemplate, e.to = l.templateField(f, where)
		case "subject":
			subjE, e.Subject = &f, l.str(f, w)
		case "subject_template":
			subjTplE = &f
			e.SubjectTemplate, e.subject = l.templateField(f, where)
		case "body_template":
			e.BodyTemplate, e.body = l.templateField(f, where)
		case "html_template":
			e.HTMLTemplate, e.html = l.templateField(f, where)
		}
	}
	switch {
	case toE != nil && toTplE != nil:
		l.errorf(toTplE.keyN, where+": to and to_template are both set", "keep one of them")
		ok = false
	case len(e.To) == 0 && e.ToTemplate == "":
		if !toBad {
			l.errorf(at, where+": email needs to or to_template", "set to: [ops@example.com] or to_template: '{{ customer.email }}'")
		}
		ok = false
	}
	if subjE != nil && subjTplE != nil {
		l.errorf(subjTplE.keyN, where+": subject and subject_template are both set", "keep one of them")
		ok = false
	}
	return e, ok
}

// addresses reads one address, a comma-separated string of them, or a list.
func (l *loader) addresses(f entry, where string) []string {
	var items []ast.Node
	if seq, isSeq := l.resolve(f.value).(*ast.SequenceNode); isSeq {
		items = seq.Values
	} else {
		items = []ast.Node{f.value}
	}
	var out []string
	for _, item := range items {
		s := strings.TrimSpace(l.str(entry{key: f.key, keyN: f.keyN, value: item}, where))
		if s == "" {
			continue
		}
		list, err := mail.ParseAddressList(s)
		if err != nil {
			l.errorf(cmpNode(item, f.keyN), fmt.Sprintf("%s: %q is not an email address", where, s),
				"write addresses such as ops@example.com or \"Ops <ops@example.com>\"")
			continue
		}
		for _, a := range list {
			out = append(out, a.String())
		}
	}
	return out
}

package email

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"net/mail"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Name is the email action's type:.
const Name = "email"

// MaxParallelismDefault caps the email deliveries that run at once unless
// concurrency.queues.email says otherwise: SMTP servers throttle parallel
// senders.
const MaxParallelismDefault = 20

func init() { observers.RegisterActionType(Type{}) }

//go:embed schema.json
var schema []byte

// Type is the email action type: one email per event through the top-level
// smtp: block.
type Type struct{}

// Name implements observers.ActionType.
func (Type) Name() string { return Name }

// Schema implements observers.ActionType.
func (Type) Schema() []byte { return schema }

// MaxParallelismDefault implements observers.ParallelismLimiter.
func (Type) MaxParallelismDefault() int { return MaxParallelismDefault }

// Action sends one email per event through the smtp: block.
type Action struct {
	To              []string // recipients; exactly one of To and ToTemplate is set
	ToTemplate      string   // template rendering a comma-separated address list
	Cc              []string
	Subject         string // literal subject; at most one of Subject and SubjectTemplate
	SubjectTemplate string // default observers.MessageTemplateDefault ("Order 42 INSERT")
	BodyTemplate    string // text/plain body; default: the event envelope as JSON (when HTMLTemplate is empty too)
	HTMLTemplate    string // text/html alternative; values are HTML-escaped
	ReplyTo         string

	to, subject, body, html *observers.Template // compiled by Decode
}

// Type implements observers.Action.
func (*Action) Type() string { return Name }

// AttemptTimeout implements observers.Action: the smtp: block's timeout
// bounds each message; the default job timeout bounds the attempt.
func (*Action) AttemptTimeout() time.Duration { return 0 }

// Message is an email action rendered for one event.
type Message struct {
	To, Cc  []string
	ReplyTo string
	Subject string
	Text    string // text/plain part; "" when only HTML
	HTML    string // text/html part; "" when none
}

// Render renders the action's templates over the event. A to_template that
// does not render a valid address list is an error (permanent: retrying
// renders the same).
func (e *Action) Render(ev *observers.Event, observer string) (*Message, error) {
	data := observers.TemplateData(ev)
	m := &Message{To: e.To, Cc: e.Cc, ReplyTo: e.ReplyTo}
	if e.ToTemplate != "" {
		rendered, err := observers.CompiledOr(e.to, e.ToTemplate, "").Render(data, false)
		if err != nil {
			return nil, errors.Wrap(err, "email: to_template")
		}
		list, err := mail.ParseAddressList(rendered)
		if err != nil || len(list) == 0 {
			return nil, errors.WithHint(errors.Newf("email: to_template rendered %s, not an address list", observers.QuoteShort(rendered)),
				"the template must render addresses separated by commas, e.g. {{ customer.email }}")
		}
		m.To = nil
		for _, a := range list {
			m.To = append(m.To, a.String())
		}
	}
	subject := e.Subject
	if subject == "" {
		var err error
		if subject, err = observers.CompiledOr(e.subject, e.SubjectTemplate, observers.MessageTemplateDefault).Render(data, false); err != nil {
			return nil, errors.Wrap(err, "email: subject_template")
		}
	}
	m.Subject = strings.Join(strings.Fields(subject), " ") // no header folding or injection
	if e.BodyTemplate != "" {
		var err error
		if m.Text, err = observers.CompiledOr(e.body, e.BodyTemplate, "").Render(data, false); err != nil {
			return nil, errors.Wrap(err, "email: body_template")
		}
	}
	if e.HTMLTemplate != "" {
		var err error
		m.HTML, err = observers.CompiledOr(e.html, e.HTMLTemplate, "").RenderFunc(data, func(_ string, v any, found bool) (string, error) {
			if !found {
				return "", nil
			}
			return html.EscapeString(observers.RenderValue(v)), nil
		})
		if err != nil {
			return nil, errors.Wrap(err, "email: html_template")
		}
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

// Run implements observers.Action: render and send through the smtp:
// block; the Message-ID is stable across retries.
func (e *Action) Run(ctx context.Context, d *observers.Delivery) error {
	msg, err := e.Render(d.Event, d.Observer.Name)
	if err != nil {
		return observers.Permanent(err)
	}
	return Send(ctx, d.Config.SMTP, msg, d.MessageID(), d.Env.LookupEnv)
}

// Settings implements observers.Action.
func (e *Action) Settings() []observers.Setting {
	subjectTpl := e.SubjectTemplate
	if e.Subject == "" && e.SubjectTemplate == "" {
		subjectTpl = observers.MessageTemplateDefault
	}
	return []observers.Setting{
		{Key: "to", Value: e.To}, {Key: "to_template", Value: e.ToTemplate}, {Key: "cc", Value: e.Cc},
		{Key: "reply_to", Value: e.ReplyTo}, {Key: "subject", Value: e.Subject},
		{Key: "subject_template", Value: subjectTpl}, {Key: "body_template", Value: e.BodyTemplate},
		{Key: "html_template", Value: e.HTMLTemplate},
	}
}

// CheckConfig implements observers.ConfigChecker: email actions need a
// top-level smtp: block with host and from.
func (Type) CheckConfig(c *observers.ConfigCheck) {
	cfg, first := c.Config(), c.Actions()[0]
	switch {
	case cfg.SMTP == nil:
		c.Errorf(first, "email actions need a top-level smtp: block", "add smtp: {host: smtp.example.com, from: alerts@example.com}")
	case cfg.SMTP.Host == "":
		c.BlockErrorf("smtp", "smtp.host is required when an email action exists", "set host: smtp.example.com")
	case cfg.SMTP.From == "":
		c.BlockErrorf("smtp", "smtp.from is required when an email action exists", "set from: alerts@example.com")
	}
}

// Decode implements observers.ActionType.
func (Type) Decode(b *observers.ActionBlock) observers.Action {
	e := &Action{}
	var toF, toTplF, subjF, subjTplF *observers.ActionField
	toBad := false // an address in to: was already reported
	for _, f := range b.Fields() {
		switch f.Key() {
		case "to":
			toF = &f
			e.To, toBad = addresses(f)
		case "cc":
			e.Cc, _ = addresses(f)
		case "reply_to":
			e.ReplyTo = strings.TrimSpace(f.String())
			if e.ReplyTo != "" {
				if _, err := mail.ParseAddress(e.ReplyTo); err != nil {
					f.Errorf(fmt.Sprintf("%s %q is not an email address", f.Where(), e.ReplyTo), "write one address: support@example.com")
				}
			}
		case "to_template":
			toTplF = &f
			e.ToTemplate, e.to = f.Template()
		case "subject":
			subjF, e.Subject = &f, f.String()
		case "subject_template":
			subjTplF = &f
			e.SubjectTemplate, e.subject = f.Template()
		case "body_template":
			e.BodyTemplate, e.body = f.Template()
		case "html_template":
			e.HTMLTemplate, e.html = f.Template()
		}
	}
	where := b.Where()
	switch {
	case toF != nil && toTplF != nil:
		toTplF.KeyErrorf(where+": to and to_template are both set", "keep one of them")
	case len(e.To) == 0 && e.ToTemplate == "" && !toBad:
		b.Errorf(where+": email needs to or to_template", "set to: [ops@example.com] or to_template: '{{ customer.email }}'")
	}
	if subjF != nil && subjTplF != nil {
		subjTplF.KeyErrorf(where+": subject and subject_template are both set", "keep one of them")
	}
	return e
}

// addresses reads one address, a comma-separated string of them, or a
// list; bad is true when one was reported.
func addresses(f observers.ActionField) (out []string, bad bool) {
	for _, item := range f.Items() {
		s := strings.TrimSpace(item.String())
		if s == "" {
			continue
		}
		list, err := mail.ParseAddressList(s)
		if err != nil {
			item.Errorf(fmt.Sprintf("%s: %q is not an email address", f.Where(), s),
				"write addresses such as ops@example.com or \"Ops <ops@example.com>\"")
			bad = true
			continue
		}
		for _, a := range list {
			out = append(out, a.String())
		}
	}
	return out, bad
}

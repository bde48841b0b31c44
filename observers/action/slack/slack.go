package slack

import (
	"cmp"
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
)

// Name is the Slack action's type:.
const Name = "slack"

func init() { observers.RegisterActionType(Type{}) }

//go:embed schema.json
var schema []byte

// Type is the Slack action type: post a message to a Slack incoming webhook.
type Type struct{}

// Name implements observers.ActionType.
func (Type) Name() string { return Name }

// Schema implements observers.ActionType.
func (Type) Schema() []byte { return schema }

// Action posts a message to a Slack incoming webhook. The webhook URL's
// path is a credential: it is never logged or printed
// (observers.RedactURLPath).
type Action struct {
	WebhookURL      string        // exactly one of WebhookURL and WebhookURLEnv is set
	WebhookURLEnv   string        // environment variable holding the webhook URL
	Channel         string        // channel override ("#ops"); empty: the webhook's own channel
	MessageTemplate string        // text template; default observers.MessageTemplateDefault ("Order 42 INSERT")
	Timeout         time.Duration // per request; default 30s
	// CircuitBreaker guards the webhook URL: the action's circuit_breaker:
	// block over the top-level one, defaults applied.
	CircuitBreaker observers.CircuitBreakerConfig
	// RateLimit bounds the requests to the webhook URL (Slack allows about
	// one message a second per incoming webhook): the action's rate_limit:
	// or the top-level rate_limit.default; zero: none.
	RateLimit observers.RateLimitConfig

	message   *observers.Template          // compiled MessageTemplate, set by Decode
	breaker   *observers.BreakerOverride   // the action's own circuit_breaker: block, until CheckConfig
	rateLimit *observers.RateLimitOverride // the action's own rate_limit:, until CheckConfig
}

// Type implements observers.Action.
func (*Action) Type() string { return Name }

// AttemptTimeout implements observers.Action.
func (a *Action) AttemptTimeout() time.Duration { return cmp.Or(a.Timeout, webhook.TimeoutDefault) }

// Message returns the compiled message template (the default when none is set).
func (a *Action) Message() *observers.Template {
	return observers.CompiledOr(a.message, a.MessageTemplate, observers.MessageTemplateDefault)
}

// Payload renders the message over data and encodes Slack's JSON body
// {"text": …, "channel": …}. Values are rendered raw and the whole text is
// JSON-encoded, so quotes and newlines in event data stay text.
func (a *Action) Payload(data map[string]any) ([]byte, error) {
	text, err := a.Message().Render(data, false)
	if err != nil {
		return nil, errors.Wrap(err, "message_template")
	}
	return observers.MarshalJSON(struct {
		Text    string `json:"text"`
		Channel string `json:"channel,omitempty"`
	}{Text: text, Channel: a.Channel})
}

// ResolvedURL returns the webhook URL, reading WebhookURLEnv with getenv at
// call time. The error never contains the URL.
func (a *Action) ResolvedURL(getenv func(string) (string, bool)) (string, error) {
	if a.WebhookURL != "" {
		return a.WebhookURL, nil
	}
	if a.WebhookURLEnv == "" {
		return "", errors.WithHint(errors.New("slack action has neither webhook_url nor webhook_url_env"),
			"set webhook_url_env on the action")
	}
	v, ok := getenv(a.WebhookURLEnv)
	if !ok || v == "" {
		return "", errors.WithHint(errors.Newf("environment variable %s (webhook_url_env) is not set", a.WebhookURLEnv),
			fmt.Sprintf("export %s=https://hooks.slack.com/services/… before starting the observer", a.WebhookURLEnv))
	}
	if err := webhook.CheckURL(v); err != nil {
		return "", errors.WithHint(errors.Newf("environment variable %s (webhook_url_env) is not a valid URL: %s", a.WebhookURLEnv, err),
			"the value must be an absolute http or https URL")
	}
	return v, nil
}

// Resolve implements observers.Resolver.
func (a *Action) Resolve(getenv func(string) (string, bool)) error {
	_, err := a.ResolvedURL(getenv)
	return err
}

// Run implements observers.Action: the message goes through the webhook
// transport (the SSRF guard applies) and the circuit breaker of its
// endpoint: by default the webhook URL itself, so each Slack webhook
// (channel) has its own, named without the secret part of its path.
func (a *Action) Run(ctx context.Context, d *observers.Delivery) error {
	url, err := a.ResolvedURL(d.Env.LookupEnv)
	if err != nil {
		return observers.Permanent(err)
	}
	body, err := a.Payload(observers.TemplateData(d.Event))
	if err != nil {
		return observers.Permanent(errors.Wrap(err, "slack: encode message"))
	}
	key := ""
	if d.Env.Results != nil && d.Config.Cache.Enabled && d.Replay == 0 { // a replay sends again
		key = webhook.ResultKey(Name, d.Event, d.Observer.Name, http.MethodPost, url, nil, body)
		hit, release := d.Env.Results.Lookup(ctx, key)
		if hit {
			return observers.ErrCached
		}
		defer release()
	}
	permit, err := d.Env.Admit(ctx, observers.HTTPTarget{URL: url, SecretPath: true, Breaker: a.breakerConfig(d.Config),
		RateLimit: a.RateLimit})
	if err != nil {
		return err // a *SnoozeError: the endpoint's breaker is open, or its rate limit reached
	}
	err = send(ctx, d.Env.HTTP, url, body, a.Timeout, d.HTTPLimits())
	permit.Done(ctx, err)
	if err == nil && key != "" {
		d.Env.Results.Save(ctx, key, 0, d.Config.Cache.TTL)
	}
	return err
}

// Send posts body (a Payload) to a Slack webhook over client. 2xx is
// success; otherwise the error is a *observers.DeliveryError classified as
// webhook.Do does. Errors name the URL only as observers.RedactURLPath does.
func Send(ctx context.Context, client *http.Client, url string, body []byte, timeout time.Duration) error {
	return send(ctx, client, url, body, timeout, observers.HTTPConfig{})
}

// send is Send with the response limits of the http: block.
func send(ctx context.Context, client *http.Client, url string, body []byte, timeout time.Duration, limits observers.HTTPConfig) error {
	_, err := webhook.Do(ctx, client, webhook.Call{
		Kind: "slack", URL: url, Body: body, Timeout: timeout,
		MaxResponseBytes: int64(limits.MaxResponseBytes), ResponseReadTimeout: limits.ResponseReadTimeout,
		Header:       http.Header{"Content-Type": []string{"application/json"}},
		Redact:       observers.RedactURLPath,
		RedirectHint: "configure the webhook URL Slack gave",
	})
	return err
}

// breakerConfig is the action's merged circuit breaker; an Action built by
// hand (not loaded) has none and uses the configuration's top-level one.
func (a *Action) breakerConfig(cfg *observers.Config) observers.CircuitBreakerConfig {
	if a.CircuitBreaker == (observers.CircuitBreakerConfig{}) && cfg != nil {
		return cfg.CircuitBreaker
	}
	return a.CircuitBreaker
}

// CheckConfig implements observers.ConfigChecker: each action's own
// circuit_breaker: block is merged over the top-level one, and its
// rate_limit: over the top-level rate_limit: block.
func (Type) CheckConfig(c *observers.ConfigCheck) {
	for _, a := range c.Actions() {
		s := a.(*Action)
		s.CircuitBreaker = c.CircuitBreaker(s, s.breaker)
		s.RateLimit = c.RateLimit(s.rateLimit)
		s.breaker, s.rateLimit = nil, nil // the syntax tree is not kept
	}
}

// Settings implements observers.Action; the URL shows only its first path
// segment.
func (a *Action) Settings() []observers.Setting {
	url := ""
	if a.WebhookURL != "" {
		url = observers.RedactURLPath(a.WebhookURL)
	}
	return []observers.Setting{
		{Key: "webhook_url", Value: url}, {Key: "webhook_url_env", Value: a.WebhookURLEnv},
		{Key: "channel", Value: a.Channel}, {Key: "timeout", Value: observers.ShortDuration(a.AttemptTimeout())},
		{Key: "message_template", Value: a.Message().Source()},
		{Key: "rate_limit", Value: a.RateLimit.String()},
	}
}

// Decode implements observers.ActionType.
func (Type) Decode(b *observers.ActionBlock) observers.Action {
	s := &Action{}
	var urlF, urlEnvF *observers.ActionField
	for _, f := range b.Fields() {
		switch f.Key() {
		case "webhook_url":
			urlF, s.WebhookURL = &f, f.String()
		case "webhook_url_env":
			urlEnvF, s.WebhookURLEnv = &f, f.EnvName()
		case "channel":
			s.Channel = f.String()
		case "message_template":
			s.MessageTemplate, s.message = f.Template()
		case "timeout":
			s.Timeout = f.Timeout()
		case "circuit_breaker":
			s.breaker = f.CircuitBreaker()
		case "rate_limit":
			s.rateLimit = f.RateLimit()
		}
	}
	where := b.Where()
	switch {
	case urlF != nil && urlEnvF != nil:
		urlEnvF.KeyErrorf(where+": webhook_url and webhook_url_env are both set", "keep webhook_url_env: the URL is a secret")
	case s.WebhookURL == "" && s.WebhookURLEnv == "":
		b.Errorf(where+": slack needs webhook_url or webhook_url_env", "set webhook_url_env: NAME_OF_VARIABLE (the URL holds a secret)")
	case s.WebhookURL != "":
		if err := webhook.CheckURL(s.WebhookURL); err != nil {
			urlF.Errorf(fmt.Sprintf("%s.webhook_url is not a valid URL: %s", where, err),
				"use the URL Slack gave, https://hooks.slack.com/services/…")
		}
	}
	s.Timeout = cmp.Or(s.Timeout, webhook.TimeoutDefault)
	return s
}

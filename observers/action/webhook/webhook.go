package webhook

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Name is the webhook action's type:.
const Name = "webhook"

func init() { observers.RegisterActionType(Type{}) }

//go:embed schema.json
var schema []byte

// methods are the HTTP methods a webhook may use.
var methods = []string{"POST", "PUT", "PATCH", "GET", "DELETE"}

// Type is the webhook action type: POST (or PUT, …) the event to a URL,
// signed per the Standard Webhooks spec.
type Type struct{}

// Name implements observers.ActionType.
func (Type) Name() string { return Name }

// Schema implements observers.ActionType.
func (Type) Schema() []byte { return schema }

// Action posts the event to a URL.
type Action struct {
	URL              string            // target URL; exactly one of URL and URLEnv is set
	URLEnv           string            // environment variable holding the target URL
	SigningSecret    string            // literal signing secret (never logged or printed)
	SigningSecretEnv string            // environment variable holding the signing secret
	Headers          map[string]string // extra request headers
	BodyTemplate     string            // body template source; empty for the default envelope
	Timeout          time.Duration     // per request; default 30s
	Method           string            // default POST
	Signature        string            // "standard" (default) or "fraiseql"
	// CircuitBreaker guards the webhook's endpoint: the action's
	// circuit_breaker: block over the top-level one, defaults applied.
	CircuitBreaker observers.CircuitBreakerConfig
	// RateLimit bounds the requests to the webhook's endpoint: the action's
	// rate_limit: or the top-level rate_limit.default; zero: none.
	RateLimit observers.RateLimitConfig

	body      *observers.Template          // compiled BodyTemplate, set by Decode
	breaker   *observers.BreakerOverride   // the action's own circuit_breaker: block, until CheckConfig
	rateLimit *observers.RateLimitOverride // the action's own rate_limit:, until CheckConfig
}

// Type implements observers.Action.
func (*Action) Type() string { return Name }

// AttemptTimeout implements observers.Action.
func (a *Action) AttemptTimeout() time.Duration { return cmp.Or(a.Timeout, TimeoutDefault) }

// Body returns the compiled body template, or nil when the webhook sends the
// default envelope. An Action built by hand (not decoded) compiles its
// BodyTemplate on each call; nil if it does not compile.
func (a *Action) Body() *observers.Template {
	if a.body != nil || a.BodyTemplate == "" {
		return a.body
	}
	t, err := observers.CompileTemplate(a.BodyTemplate)
	if err != nil {
		return nil
	}
	return t
}

// ResolvedURL returns the target URL, reading URLEnv with getenv at call
// time. The error never contains the URL itself.
func (a *Action) ResolvedURL(getenv func(string) (string, bool)) (string, error) {
	if a.URL != "" {
		return a.URL, nil
	}
	if a.URLEnv == "" {
		return "", errors.WithHint(errors.New("webhook has neither url nor url_env"), "set url or url_env on the action")
	}
	v, ok := getenv(a.URLEnv)
	if !ok || v == "" {
		return "", errors.WithHint(errors.Newf("environment variable %s (url_env) is not set", a.URLEnv),
			fmt.Sprintf("export %s=https://… before starting the observer", a.URLEnv))
	}
	if err := CheckURL(v); err != nil {
		return "", errors.WithHint(errors.Newf("environment variable %s (url_env) is not a valid webhook URL: %s", a.URLEnv, err),
			"the value must be an absolute http or https URL")
	}
	return v, nil
}

// ResolvedSecret returns the signing secret, reading SigningSecretEnv with
// getenv at call time; "" when the webhook is not signed. The error never
// contains the secret.
func (a *Action) ResolvedSecret(getenv func(string) (string, bool)) (string, error) {
	if a.SigningSecret != "" {
		return a.SigningSecret, nil
	}
	if a.SigningSecretEnv == "" {
		return "", nil
	}
	v, ok := getenv(a.SigningSecretEnv)
	if !ok || v == "" {
		return "", errors.WithHint(errors.Newf("environment variable %s (signing_secret_env) is not set", a.SigningSecretEnv),
			fmt.Sprintf("export %s=whsec_… before starting the observer", a.SigningSecretEnv))
	}
	return v, nil
}

// Resolve implements observers.Resolver: the URL and the secret variables.
func (a *Action) Resolve(getenv func(string) (string, bool)) error {
	_, uerr := a.ResolvedURL(getenv)
	_, serr := a.ResolvedSecret(getenv)
	switch {
	case uerr != nil && serr != nil:
		return errors.Newf("%v; %v", uerr, serr)
	case uerr != nil:
		return uerr
	}
	return serr
}

// Run implements observers.Action: render the body (the envelope by
// default), ask the endpoint's circuit breaker, send it signed.
func (a *Action) Run(ctx context.Context, d *observers.Delivery) error {
	url, err := a.ResolvedURL(d.Env.LookupEnv)
	if err != nil {
		return observers.Permanent(err)
	}
	secret, err := a.ResolvedSecret(d.Env.LookupEnv)
	if err != nil {
		return observers.Permanent(err)
	}
	var body []byte
	if t := a.Body(); t != nil {
		rendered, err := t.Render(observers.TemplateData(d.Event), true)
		if err != nil {
			return observers.Permanent(errors.Wrap(err, "webhook: body_template"))
		}
		body = []byte(rendered)
	} else if body, err = d.Event.EnvelopeJSON(d.Observer.Name); err != nil {
		return observers.Permanent(errors.Wrap(err, "encode event envelope"))
	}
	key := a.resultKey(d, url, body)
	if key != "" {
		hit, release := d.Env.Results.Lookup(ctx, key)
		if hit {
			return observers.ErrCached
		}
		defer release()
	}
	permit, err := d.Env.Admit(ctx, observers.HTTPTarget{URL: url, Breaker: a.CircuitBreaker, RateLimit: a.RateLimit})
	if err != nil {
		return err // a *SnoozeError: the endpoint's breaker is open, or its rate limit reached
	}
	limits := d.HTTPLimits()
	resp, err := Send(ctx, d.Env.HTTP, Request{
		URL: url, Method: a.Method, Headers: a.Headers, Body: body, MessageID: d.MessageID(),
		Secret: secret, Signature: a.Signature, Timeout: a.Timeout,
		MaxResponseBytes: int64(limits.MaxResponseBytes), ResponseReadTimeout: limits.ResponseReadTimeout,
	})
	permit.Done(ctx, err)
	if err == nil && key != "" {
		d.Env.Results.Save(ctx, key, resp.StatusCode, d.Config.Cache.TTL)
	}
	return err
}

// resultKey returns the result cache key of a rendered request, or "" when
// the result cache is off or the delivery is a replay's. The default envelope names the event (id,
// timestamp) as the webhook-id header does, so those two fields are left
// out: the same change logged twice renders the same request. A body
// template is hashed as rendered.
func (a *Action) resultKey(d *observers.Delivery, url string, body []byte) string {
	if d.Env == nil || d.Env.Results == nil || !d.Config.Cache.Enabled || d.Replay != 0 {
		return ""
	}
	if a.Body() == nil {
		env := d.Event.Envelope(d.Observer.Name)
		env.ID, env.Timestamp = "", time.Time{}
		if b, err := json.Marshal(env); err == nil {
			body = b
		}
	}
	return ResultKey(Name, d.Event, d.Observer.Name, cmp.Or(a.Method, MethodDefault), url, a.Headers, body)
}

// Settings implements observers.Action; the URL's credentials, the literal
// secret and credential-like headers are redacted.
func (a *Action) Settings() []observers.Setting {
	secret := ""
	if a.SigningSecret != "" {
		secret = observers.RedactedSetting
	}
	var headers map[string]string
	if len(a.Headers) > 0 {
		headers = make(map[string]string, len(a.Headers))
		for k, v := range a.Headers {
			if observers.IsSensitiveName(k) {
				v = observers.RedactedSetting
			}
			headers[k] = v
		}
	}
	url := ""
	if a.URL != "" {
		url = observers.RedactURL(a.URL)
	}
	return []observers.Setting{
		{Key: "url", Value: url}, {Key: "url_env", Value: a.URLEnv}, {Key: "method", Value: a.Method},
		{Key: "timeout", Value: observers.ShortDuration(a.AttemptTimeout())}, {Key: "signature", Value: a.Signature},
		{Key: "signing_secret", Value: secret}, {Key: "signing_secret_env", Value: a.SigningSecretEnv},
		{Key: "headers", Value: headers}, {Key: "body_template", Value: a.BodyTemplate},
		{Key: "rate_limit", Value: a.RateLimit.String()},
	}
}

// CheckConfig implements observers.ConfigChecker: each webhook's own
// circuit_breaker: block is merged over the top-level one, and its
// rate_limit: over the top-level rate_limit: block.
func (Type) CheckConfig(c *observers.ConfigCheck) {
	for _, a := range c.Actions() {
		w := a.(*Action)
		w.CircuitBreaker = c.CircuitBreaker(w, w.breaker)
		w.RateLimit = c.RateLimit(w.rateLimit)
		w.breaker, w.rateLimit = nil, nil // the syntax tree is not kept
	}
}

// Decode implements observers.ActionType.
func (Type) Decode(b *observers.ActionBlock) observers.Action {
	w := &Action{}
	var urlF, urlEnvF, secretF, secretEnvF *observers.ActionField
	for _, f := range b.Fields() {
		switch f.Key() {
		case "url":
			urlF, w.URL = &f, f.String()
		case "url_env":
			urlEnvF, w.URLEnv = &f, f.EnvName()
		case "signing_secret":
			secretF, w.SigningSecret = &f, f.String()
		case "signing_secret_env":
			secretEnvF, w.SigningSecretEnv = &f, f.EnvName()
		case "headers":
			w.Headers = decodeHeaders(f)
		case "body_template":
			w.BodyTemplate, w.body = f.Template()
		case "timeout":
			w.Timeout = f.Duration()
		case "method":
			w.Method = strings.ToUpper(f.String())
			if w.Method != "" && !slices.Contains(methods, w.Method) {
				f.Errorf(fmt.Sprintf("unsupported method %q", w.Method), "use one of "+strings.Join(methods, ", "))
			}
		case "circuit_breaker":
			w.breaker = f.CircuitBreaker()
		case "rate_limit":
			w.rateLimit = f.RateLimit()
		case "signature":
			w.Signature = strings.ToLower(f.String())
			if w.Signature != "" && w.Signature != SignatureStandard && w.Signature != SignatureFraiseQL {
				f.Errorf(fmt.Sprintf("unknown signature scheme %q", w.Signature),
					"use standard (Standard Webhooks headers) or fraiseql (X-FraiseQL-Signature-256)")
			}
		}
	}
	where := b.Where()
	switch {
	case w.URL == "" && w.URLEnv == "":
		b.Errorf(where+": webhook needs url or url_env", "set url: https://… or url_env: NAME_OF_VARIABLE")
	case urlF != nil && urlEnvF != nil:
		urlEnvF.KeyErrorf(where+": url and url_env are both set", "keep one of them")
	case w.URL != "":
		if err := CheckURL(w.URL); err != nil {
			urlF.Errorf(fmt.Sprintf("%s.url is not a valid webhook URL: %s", where, err),
				"use an absolute URL such as https://example.com/hooks/orders")
		}
	}
	if secretF != nil && secretEnvF != nil {
		secretEnvF.KeyErrorf(where+": signing_secret and signing_secret_env are both set",
			"keep signing_secret_env, so the secret stays out of the file")
	}
	w.Timeout = cmp.Or(w.Timeout, TimeoutDefault)
	w.Method = cmp.Or(w.Method, MethodDefault)
	w.Signature = cmp.Or(w.Signature, SignatureStandard)
	return w
}

// decodeHeaders reads the headers: mapping; names are single words.
func decodeHeaders(f observers.ActionField) map[string]string {
	fields, ok := f.Mapping()
	if !ok || len(fields) == 0 {
		return nil
	}
	out := make(map[string]string, len(fields))
	for _, h := range fields {
		if h.Key() == "" || strings.ContainsAny(h.Key(), " \t:\r\n") {
			h.KeyErrorf(fmt.Sprintf("invalid header name %q", h.Key()), "header names are single words such as X-Source")
			continue
		}
		out[h.Key()] = h.String()
	}
	return out
}

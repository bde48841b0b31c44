package observers

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/goccy/go-yaml/ast"
)

var slackKeys = []string{"type", "webhook_url", "webhook_url_env", "channel", "message_template", "timeout"}

// SlackAction posts a message to a Slack incoming webhook. The webhook URL's
// path is a credential: it is never logged or printed (see RedactSlackURL).
type SlackAction struct {
	WebhookURL      string        // exactly one of WebhookURL and WebhookURLEnv is set
	WebhookURLEnv   string        // environment variable holding the webhook URL
	Channel         string        // channel override ("#ops"); empty: the webhook's own channel
	MessageTemplate string        // text template; default LogMessageTemplateDefault ("Order 42 INSERT")
	Timeout         time.Duration // per request; default 30s

	message *Template // compiled MessageTemplate, set by the loader
}

// Message returns the compiled message template (the default when none is set).
func (s *SlackAction) Message() *Template {
	return compiledOr(s.message, s.MessageTemplate, LogMessageTemplateDefault)
}

// Payload renders the message over data and encodes Slack's JSON body
// {"text": …, "channel": …}. Values are rendered raw and the whole text is
// JSON-encoded, so quotes and newlines in event data stay text.
func (s *SlackAction) Payload(data map[string]any) ([]byte, error) {
	return marshalNoHTML(struct {
		Text    string `json:"text"`
		Channel string `json:"channel,omitempty"`
	}{Text: s.Message().Render(data, false), Channel: s.Channel})
}

// ResolvedURL returns the webhook URL, reading WebhookURLEnv with getenv at
// call time. The error never contains the URL.
func (s *SlackAction) ResolvedURL(getenv func(string) (string, bool)) (string, error) {
	if s.WebhookURL != "" {
		return s.WebhookURL, nil
	}
	if s.WebhookURLEnv == "" {
		return "", errors.WithHint(errors.New("slack action has neither webhook_url nor webhook_url_env"),
			"set webhook_url_env on the action")
	}
	v, ok := getenv(s.WebhookURLEnv)
	if !ok || v == "" {
		return "", errors.WithHint(errors.Newf("environment variable %s (webhook_url_env) is not set", s.WebhookURLEnv),
			fmt.Sprintf("export %s=https://hooks.slack.com/services/… before starting the observer", s.WebhookURLEnv))
	}
	if err := checkWebhookURL(v); err != nil {
		return "", errors.WithHint(errors.Newf("environment variable %s (webhook_url_env) is not a valid URL: %s", s.WebhookURLEnv, err),
			"the value must be an absolute http or https URL")
	}
	return v, nil
}

// RedactSlackURL renders a Slack webhook URL without its secret: scheme,
// host and the first path segment only
// ("https://hooks.slack.com/services/REDACTED").
func RedactSlackURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "REDACTED"
	}
	out := u.Scheme + "://" + u.Host
	path := strings.TrimPrefix(u.EscapedPath(), "/")
	if path == "" {
		return out
	}
	first, rest, _ := strings.Cut(path, "/")
	if rest == "" {
		return out + "/REDACTED"
	}
	return out + "/" + first + "/REDACTED"
}

// SendSlack posts body (a Payload) to a Slack webhook over the client's
// transport, so the SSRF guard applies. 2xx is success. Otherwise the error
// is a *DeliveryError: 3xx and 4xx other than 408/429 are permanent; 408,
// 429, 5xx, timeouts and connection errors are transient with the
// receiver's Retry-After. Errors name the URL only as RedactSlackURL does.
func (c *WebhookClient) SendSlack(ctx context.Context, rawURL string, body []byte, timeout time.Duration) error {
	target := RedactSlackURL(rawURL)
	what := "POST " + target
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return &DeliveryError{Permanent: true, Err: errors.WithHint(
			errors.Newf("slack: webhook URL %s is not an absolute http(s) URL", target), "use the URL Slack gave for the incoming webhook")}
	}
	timeout = cmp.Or(timeout, WebhookTimeoutDefault)
	attemptCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(attemptCtx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return &DeliveryError{Permanent: true, Err: errors.Newf("slack %s: cannot build request", what)}
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		de := c.transportError(ctx, attemptCtx, err, what, target, timeout).(*DeliveryError)
		de.Err = errors.Wrap(de.Err, "slack")
		return de
	}
	excerpt := readAndDrain(resp.Body)
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code >= 300 && code < 400:
		return &DeliveryError{StatusCode: code, Permanent: true, Err: errors.WithHint(
			errors.Newf("slack %s responded %s; redirects are not followed", what, resp.Status),
			"configure the webhook URL Slack gave")}
	}
	return statusError("slack", what, resp, excerpt)
}

func (l *loader) slack(fields []entry, at ast.Node, where string) (*SlackAction, bool) {
	s := &SlackAction{}
	var urlE, urlEnvE *entry
	for _, f := range l.actionFields(fields, slackKeys, where) {
		switch f.key {
		case "webhook_url":
			urlE, s.WebhookURL = &f, l.str(f, where+".webhook_url")
		case "webhook_url_env":
			urlEnvE, s.WebhookURLEnv = &f, l.envName(f, where+".webhook_url_env")
		case "channel":
			s.Channel = l.str(f, where+".channel")
		case "message_template":
			s.MessageTemplate, s.message = l.templateField(f, where)
		case "timeout":
			s.Timeout = l.actionTimeout(f, where)
		}
	}
	ok := true
	switch {
	case urlE != nil && urlEnvE != nil:
		l.errorf(urlEnvE.keyN, where+": webhook_url and webhook_url_env are both set",
			"keep webhook_url_env: the URL is a secret")
		ok = false
	case s.WebhookURL == "" && s.WebhookURLEnv == "":
		l.errorf(at, where+": slack needs webhook_url or webhook_url_env",
			"set webhook_url_env: NAME_OF_VARIABLE (the URL holds a secret)")
		ok = false
	case s.WebhookURL != "":
		if err := checkWebhookURL(s.WebhookURL); err != nil {
			l.errorf(urlE.value, fmt.Sprintf("%s.webhook_url is not a valid URL: %s", where, err),
				"use the URL Slack gave, https://hooks.slack.com/services/…")
			ok = false
		}
	}
	l.warnUnsetEnv(urlEnvE, s.WebhookURLEnv, "webhook_url_env")
	s.Timeout = cmpDuration(s.Timeout, WebhookTimeoutDefault)
	return s, ok
}

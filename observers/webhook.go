package observers

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/errors"
)

// Webhook delivery defaults and limits.
const (
	WebhookMethodDefault    = http.MethodPost
	WebhookTimeoutDefault   = 30 * time.Second
	WebhookUserAgentDefault = "fraiseql-observers"

	// webhookBodyExcerptMax is how much of a response body is kept
	// (WebhookResponse.Body).
	webhookBodyExcerptMax = 4 << 10
	// webhookBodyDrainMax is how much more is read and discarded so the
	// connection can be reused; a longer body closes the connection.
	webhookBodyDrainMax = 64 << 10
	// webhookErrorExcerptMax is how much of the body an error message quotes.
	webhookErrorExcerptMax = 200
	// webhookRetryAfterMax caps a receiver's Retry-After.
	webhookRetryAfterMax = 24 * time.Hour
)

// WebhookRequest is one delivery attempt.
type WebhookRequest struct {
	// URL is the target; only http and https are allowed.
	URL string
	// Method defaults to POST.
	Method string
	// Headers are user headers. They never override Content-Type,
	// webhook-id, webhook-timestamp, webhook-signature or
	// X-FraiseQL-Signature-256. They may override User-Agent.
	Headers map[string]string
	// Body is the JSON payload.
	Body []byte
	// MessageID is the stable idempotency key sent as `webhook-id`; it must
	// be the same on every retry of one delivery. Required.
	MessageID string
	// Secret signs the request; "" sends it unsigned. A Standard Webhooks
	// secret "whsec_<base64>" uses the decoded key; any other string is used
	// as raw key bytes.
	Secret string
	// Signature is WebhookSignatureStandard (the default) or
	// WebhookSignatureFraiseQL.
	Signature string
	// Timeout bounds the attempt, including reading the response; default 30s.
	Timeout time.Duration
}

// WebhookClientConfig configures a WebhookClient.
type WebhookClientConfig struct {
	// AllowPrivateTargets turns the SSRF guard off: targets may resolve to
	// loopback, private, link-local and other internal addresses. Default false.
	AllowPrivateTargets bool
	// UserAgent is sent on every request; default "fraiseql-observers".
	UserAgent string
}

// WebhookResponse is what the receiver answered.
type WebhookResponse struct {
	StatusCode int
	// Body is the first 4 KiB of the response body.
	Body     string
	Duration time.Duration
}

// DeliveryError classifies a failed attempt.
type DeliveryError struct {
	// StatusCode is the response status, 0 for transport errors.
	StatusCode int
	// Permanent is true when retrying cannot help: 4xx except 408 and 429,
	// 3xx (redirects are not followed), SSRF refusal, invalid request.
	Permanent bool
	// RetryAfter is the receiver's Retry-After (seconds or HTTP date), 0 when
	// absent.
	RetryAfter time.Duration
	// Err says what happened; its message names the URL without userinfo or
	// query values.
	Err error
}

func (e *DeliveryError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	if e.StatusCode != 0 {
		return fmt.Sprintf("webhook delivery failed with status %d", e.StatusCode)
	}
	return "webhook delivery failed"
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// WebhookClient delivers webhooks over one shared keep-alive transport. It
// is safe for concurrent use.
type WebhookClient struct {
	http      *http.Client
	transport *http.Transport
	userAgent string
}

// NewWebhookClient builds a client. Unless cfg.AllowPrivateTargets, its
// dialer refuses internal addresses after DNS resolution. Proxies from the
// environment are not used, so the guard always sees the real target.
func NewWebhookClient(cfg WebhookClientConfig) *WebhookClient {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivateTargets {
		dialer.Control = ssrfControl
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &WebhookClient{
		transport: transport,
		http: &http.Client{
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		userAgent: cmp.Or(cfg.UserAgent, WebhookUserAgentDefault),
	}
}

// CloseIdleConnections closes kept-alive connections, for shutdown.
func (c *WebhookClient) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// IsReservedWebhookHeader reports whether a user header of this name is
// ignored because the delivery itself sets it.
func IsReservedWebhookHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Content-Type", "Content-Length", "Host", "Transfer-Encoding",
		http.CanonicalHeaderKey(HeaderWebhookID),
		http.CanonicalHeaderKey(HeaderWebhookTimestamp),
		http.CanonicalHeaderKey(HeaderWebhookSignature),
		http.CanonicalHeaderKey(HeaderFraiseQLSig256):
		return true
	}
	return false
}

// parseWebhookURL checks that raw is an absolute http(s) URL with a host.
// Errors name the URL without userinfo or query values.
func parseWebhookURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the raw URL, which may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, errors.Newf("webhook URL is not valid: %s", err.Error())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.WithHint(
			errors.Newf("webhook URL %s has scheme %q; only http and https are allowed", redactURL(u), u.Scheme),
			"use an http:// or https:// URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, errors.Newf("webhook URL %s has no host", redactURL(u))
	}
	return u, nil
}

// RedactURL renders a URL for people: no userinfo, no fragment, every query
// value replaced by REDACTED (keys kept). Errors and CLI output use it.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	return redactURL(u)
}

// redactURL renders u without userinfo and fragment, with every query value
// replaced by REDACTED (keys are kept).
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" {
		parts := strings.Split(c.RawQuery, "&")
		for i, p := range parts {
			if k, _, ok := strings.Cut(p, "="); ok {
				parts[i] = k + "=REDACTED"
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	return c.String()
}

// Send makes one delivery attempt. It returns the response and a nil error
// for 2xx. Otherwise the error is a *DeliveryError (possibly wrapped; use
// errors.As) saying whether to retry; the response is returned too when the
// receiver answered.
func (c *WebhookClient) Send(ctx context.Context, req WebhookRequest) (*WebhookResponse, error) {
	method := cmp.Or(req.Method, WebhookMethodDefault)
	u, err := parseWebhookURL(req.URL)
	if err != nil {
		return nil, &DeliveryError{Permanent: true, Err: err}
	}
	target := redactURL(u)
	what := method + " " + target

	if req.MessageID == "" {
		return nil, &DeliveryError{Permanent: true, Err: errors.Newf("webhook %s: MessageID (webhook-id) is required", what)}
	}
	timeout := cmp.Or(req.Timeout, WebhookTimeoutDefault)
	now := time.Now()
	unix := strconv.FormatInt(now.Unix(), 10)

	header := http.Header{}
	header.Set("User-Agent", c.userAgent)
	for k, v := range req.Headers {
		if !IsReservedWebhookHeader(k) {
			header.Set(k, v)
		}
	}
	header.Set("Content-Type", "application/json")
	header.Set(HeaderWebhookID, req.MessageID)
	header.Set(HeaderWebhookTimestamp, unix)
	if req.Secret != "" {
		switch strings.ToLower(cmp.Or(req.Signature, WebhookSignatureStandard)) {
		case WebhookSignatureStandard:
			sig, err := SignStandard(req.Secret, req.MessageID, now, req.Body)
			if err != nil {
				return nil, &DeliveryError{Permanent: true, Err: errors.Wrapf(err, "webhook %s: sign", what)}
			}
			header.Set(HeaderWebhookSignature, sig)
		case WebhookSignatureFraiseQL:
			header.Set(HeaderFraiseQLSig256, SignFraiseQL(req.Secret, now, req.Body))
		default:
			return nil, &DeliveryError{Permanent: true, Err: errors.WithHint(
				errors.Newf("webhook %s: unknown signature scheme %q", what, req.Signature),
				`use "standard" or "fraiseql"`)}
		}
	}

	attemptCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	httpReq, err := http.NewRequestWithContext(attemptCtx, method, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &DeliveryError{Permanent: true, Err: errors.Newf("webhook %s: cannot build request: %s", what, err.Error())}
	}
	httpReq.Header = header

	start := time.Now()
	resp, err := c.http.Do(httpReq)
	if err != nil {
		return nil, c.transportError(ctx, attemptCtx, err, what, target, timeout)
	}
	excerpt := readAndDrain(resp.Body)
	out := &WebhookResponse{StatusCode: resp.StatusCode, Body: string(excerpt), Duration: time.Since(start)}

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return out, nil
	case code >= 300 && code < 400:
		msg := fmt.Sprintf("webhook %s responded %s; redirects are not followed", what, resp.Status)
		if loc, err := resp.Location(); err == nil {
			msg = fmt.Sprintf("webhook %s responded %s redirecting to %s; redirects are not followed", what, resp.Status, redactURL(loc))
		}
		return out, &DeliveryError{StatusCode: code, Permanent: true, Err: errors.WithHint(
			errors.Newf("%s", msg), "configure the final URL of the webhook")}
	}
	return out, statusError("webhook", what, resp, excerpt)
}

// statusError classifies a non-2xx, non-3xx answer: 4xx other than 408 and
// 429 is permanent; the rest is transient and honours Retry-After.
func statusError(kind, what string, resp *http.Response, excerpt []byte) *DeliveryError {
	code := resp.StatusCode
	permanent := code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
	de := &DeliveryError{StatusCode: code, Permanent: permanent}
	if !permanent {
		de.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	msg := fmt.Sprintf("%s %s responded %s", kind, what, resp.Status)
	if de.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", de.RetryAfter)
	}
	de.Err = errors.Newf("%s: %s", msg, errorExcerpt(excerpt))
	return de
}

// transportError classifies an error from http.Client.Do.
func (c *WebhookClient) transportError(parent, attemptCtx context.Context, err error, what, target string, timeout time.Duration) error {
	// Drop url.Error: it repeats the URL with its query string.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var refused *targetRefusedError
	if errors.As(err, &refused) {
		named := *refused
		named.target = target
		return &DeliveryError{Permanent: true, Err: errors.WithHint(&named, privateTargetHint)}
	}
	var netErr net.Error
	switch {
	case parent.Err() != nil:
		return &DeliveryError{Err: errors.Wrapf(err, "webhook %s: cancelled", what)}
	case errors.Is(attemptCtx.Err(), context.DeadlineExceeded):
		return &DeliveryError{Err: errors.Wrapf(err, "webhook %s: timed out after %s (per-attempt timeout)", what, timeout)}
	case errors.As(err, &netErr) && netErr.Timeout():
		return &DeliveryError{Err: errors.Wrapf(err, "webhook %s: network timeout", what)}
	}
	return &DeliveryError{Err: errors.Wrapf(err, "webhook %s", what)}
}

// readAndDrain reads the first webhookBodyExcerptMax bytes of body, discards
// up to webhookBodyDrainMax more so the connection can be reused, and closes
// it. Read errors (a timeout mid-body) only shorten the excerpt.
func readAndDrain(body io.ReadCloser) []byte {
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, webhookBodyExcerptMax))
	_, _ = io.CopyN(io.Discard, body, webhookBodyDrainMax)
	return b
}

// errorExcerpt is a short single-line quote of a response body.
func errorExcerpt(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if s == "" {
		return "(empty body)"
	}
	if len(s) > webhookErrorExcerptMax {
		cut := webhookErrorExcerptMax
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
// It returns 0 when absent, invalid or in the past, and caps the delay at
// webhookRetryAfterMax.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(webhookRetryAfterMax/time.Second) {
			return webhookRetryAfterMax
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), webhookRetryAfterMax)
}

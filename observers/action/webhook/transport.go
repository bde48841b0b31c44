package webhook

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Transport defaults and limits.
const (
	UserAgentDefault = observers.UserAgentDefault

	// bodyExcerptMax is how much of a response body is kept (Response.Body).
	bodyExcerptMax = 4 << 10
	// MaxResponseBytesDefault bounds the bytes of a response body read per
	// request (http.max_response_bytes): the excerpt, then the rest read
	// and discarded so the connection can be reused; a longer body closes
	// the connection.
	MaxResponseBytesDefault = observers.HTTPMaxResponseBytesDefault
	// ResponseReadTimeoutDefault bounds the time the body may take once the
	// headers arrived (http.response_read_timeout), within the attempt's
	// timeout.
	ResponseReadTimeoutDefault = observers.HTTPResponseReadTimeoutDefault
	// responseHeaderMax bounds a response's headers; a receiver that sends
	// more fails the attempt (transient).
	responseHeaderMax = 64 << 10
	// errorExcerptMax is how much of the body an error message quotes.
	errorExcerptMax = 200
	// retryAfterMax caps a receiver's Retry-After.
	retryAfterMax = 24 * time.Hour
)

// HTTPClientConfig configures NewHTTPClient.
type HTTPClientConfig struct {
	// AllowPrivateTargets turns the SSRF guard off: targets may resolve to
	// loopback, private, link-local and other internal addresses. Default false.
	AllowPrivateTargets bool
	// UserAgent is sent on every request that does not set its own;
	// default "fraiseql-observers".
	UserAgent string
	// MaxInFlight caps the requests in flight through the client
	// (concurrency.max_in_flight); a delivery that finds no free slot
	// within InFlightWait is snoozed. Default 0: no cap.
	MaxInFlight int
	// InFlightWait bounds that wait; default InFlightWaitDefault (2s).
	InFlightWait time.Duration
	// Metrics are the client's metrics (in flight, snoozed, responses
	// cut); default unregistered.
	Metrics *Metrics
}

// NewHTTPClient builds the HTTP client that every webhook and Slack
// delivery of a process shares (observers.Env.HTTP): one keep-alive
// transport, no redirects followed, no proxy from the environment (so the
// guard sees the real target), response headers of at most 64 KiB, at most
// cfg.MaxInFlight requests at once (Do waits for a slot), and unless
// cfg.AllowPrivateTargets a dialer that refuses internal addresses after
// DNS resolution.
func NewHTTPClient(cfg HTTPClientConfig) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivateTargets {
		dialer.Control = ssrfControl
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: responseHeaderMax,
	}
	m := cmp.Or(cfg.Metrics, NewMetrics(nil))
	return &http.Client{
		Transport: &clientTransport{next: transport, ua: cmp.Or(cfg.UserAgent, UserAgentDefault), metrics: m,
			inFlight: newInFlight(cfg.MaxInFlight, cfg.InFlightWait, m)},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// clientTransport sets the User-Agent of requests that have none, and
// carries the client's in-flight cap and metrics for Do.
type clientTransport struct {
	next     *http.Transport
	ua       string
	inFlight *inFlight // nil: no cap
	metrics  *Metrics
}

func (t *clientTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("User-Agent") == "" {
		r.Header.Set("User-Agent", t.ua)
	}
	return t.next.RoundTrip(r)
}

// CloseIdleConnections closes kept-alive connections, for shutdown
// (http.Client.CloseIdleConnections forwards here).
func (t *clientTransport) CloseIdleConnections() { t.next.CloseIdleConnections() }

// transportOf returns the clientTransport of a client NewHTTPClient made,
// else nil (no cap, no metrics).
func transportOf(client *http.Client) *clientTransport {
	t, _ := client.Transport.(*clientTransport)
	return t
}

// Call is one HTTP request of a delivery, sent by Do.
type Call struct {
	// Kind starts error messages: "webhook", "slack".
	Kind   string
	Method string // default POST
	URL    string // absolute http(s) URL
	Header http.Header
	Body   []byte
	// Timeout bounds the attempt, reading the response included (not the
	// wait for an in-flight slot); default TimeoutDefault.
	Timeout time.Duration
	// MaxResponseBytes bounds the response body read; default
	// MaxResponseBytesDefault (64 KiB).
	MaxResponseBytes int64
	// ResponseReadTimeout bounds reading the body once the headers
	// arrived, within Timeout; default ResponseReadTimeoutDefault (5s).
	ResponseReadTimeout time.Duration
	// Redact renders the URL, and a redirect's Location, in messages;
	// default observers.RedactURL.
	Redact func(string) string
	// RedirectHint is the hint of a redirect answer (never followed).
	RedirectHint string
}

// Response is what the receiver answered.
type Response struct {
	StatusCode int
	// Body is the first 4 KiB of the response body.
	Body     string
	Duration time.Duration
}

// Do sends c over client. It returns the response and a nil error for 2xx.
// Otherwise the error is a *observers.DeliveryError saying whether to retry:
// 3xx (redirects are not followed), 4xx other than 408 and 429, an SSRF
// refusal and an invalid request are permanent; 408, 429, 5xx, timeouts and
// connection errors are transient and carry the receiver's Retry-After. The
// response is returned too when the receiver answered; its body is read
// within c's limits, and the status decides. When the client's in-flight
// slots stay taken (NewHTTPClient's MaxInFlight) nothing is sent and the
// error is an *observers.SnoozeError. Messages name the URL only as c.Redact
// renders it.
func Do(ctx context.Context, client *http.Client, c Call) (*Response, error) {
	method := cmp.Or(c.Method, http.MethodPost)
	// Only a failure names the request: a delivery that succeeds never
	// renders its URL.
	what := func() string { return method + " " + c.redacted(c.URL) }
	timeout := cmp.Or(c.Timeout, TimeoutDefault)
	req, err := http.NewRequestWithContext(ctx, method, c.URL, bytes.NewReader(c.Body))
	if err == nil {
		err = checkURL(req.URL)
	}
	if err != nil {
		return nil, observers.Permanent(errors.WithHint(errors.Newf("%s URL %s is not valid: %s", c.Kind, c.redacted(c.URL), urlError(err)),
			"use an absolute http:// or https:// URL"))
	}
	if client == nil {
		return nil, observers.Permanent(errors.Newf("%s %s: no HTTP client", c.Kind, what()))
	}
	t := transportOf(client)
	var slots *inFlight
	if t != nil {
		slots = t.inFlight
	}
	release, err := slots.acquire(ctx) // before the attempt's timeout starts
	if err != nil {
		return nil, err
	}
	defer release()
	attemptCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bodyCtx, cancelBody := context.WithCancel(attemptCtx)
	defer cancelBody()
	req = req.WithContext(bodyCtx)
	if c.Header != nil {
		req.Header = c.Header
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return nil, transportError(ctx, attemptCtx, err, c, what(), timeout)
	}
	excerpt, cut := readBody(resp.Body, cmp.Or(c.MaxResponseBytes, MaxResponseBytesDefault),
		cmp.Or(c.ResponseReadTimeout, ResponseReadTimeoutDefault), cancelBody)
	if cut != "" && t != nil {
		t.metrics.Cut.WithLabelValues(cut).Inc()
	}
	out := &Response{StatusCode: resp.StatusCode, Body: string(excerpt), Duration: time.Since(start)}
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return out, nil
	case code >= 300 && code < 400:
		msg := fmt.Sprintf("%s %s responded %s; redirects are not followed", c.Kind, what(), resp.Status)
		if loc, err := resp.Location(); err == nil {
			msg = fmt.Sprintf("%s %s responded %s redirecting to %s; redirects are not followed", c.Kind, what(), resp.Status, c.redacted(loc.String()))
		}
		return out, &observers.DeliveryError{StatusCode: code, Permanent: true, Err: errors.WithHint(
			errors.Newf("%s", msg), c.RedirectHint)}
	}
	return out, statusError(c.Kind, what(), resp, excerpt)
}

// redacted renders a URL of the call for messages.
func (c Call) redacted(raw string) string {
	if c.Redact != nil {
		return c.Redact(raw)
	}
	return observers.RedactURL(raw)
}

// urlError is err's message without the raw URL a *url.Error repeats (it
// may hold credentials).
func urlError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// CheckURL returns a message (without the URL) when s is not an absolute
// http(s) URL with a host.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.Newf("not a URL: %s", urlError(err))
	}
	return checkURL(u)
}

func checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("host is missing")
	}
	return nil
}

// statusError classifies a non-2xx, non-3xx answer: 4xx other than 408 and
// 429 is permanent; the rest is transient and honours Retry-After.
func statusError(kind, what string, resp *http.Response, excerpt []byte) *observers.DeliveryError {
	code := resp.StatusCode
	permanent := code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
	de := &observers.DeliveryError{StatusCode: code, Permanent: permanent}
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
func transportError(parent, attemptCtx context.Context, err error, c Call, what string, timeout time.Duration) error {
	kind := c.Kind
	// Drop url.Error: it repeats the URL with its query string.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var refused *targetRefusedError
	if errors.As(err, &refused) {
		named := *refused
		named.target = c.redacted(c.URL)
		return observers.Permanent(errors.WithHint(&named, observers.PrivateTargetHint))
	}
	var netErr net.Error
	switch {
	case parent.Err() != nil:
		return &observers.DeliveryError{Err: errors.Wrapf(err, "%s %s: cancelled", kind, what)}
	case errors.Is(attemptCtx.Err(), context.DeadlineExceeded):
		return &observers.DeliveryError{Err: errors.Wrapf(err, "%s %s: timed out after %s (per-attempt timeout)", kind, what, timeout)}
	case errors.As(err, &netErr) && netErr.Timeout():
		return &observers.DeliveryError{Err: errors.Wrapf(err, "%s %s: network timeout", kind, what)}
	}
	return &observers.DeliveryError{Err: errors.Wrapf(err, "%s %s", kind, what)}
}

// errorExcerpt is a short single-line quote of a response body.
func errorExcerpt(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if s == "" {
		return "(empty body)"
	}
	if len(s) > errorExcerptMax {
		cut := errorExcerptMax
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
// It returns 0 when absent, invalid or in the past, and caps the delay at
// retryAfterMax.
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
		if secs > int64(retryAfterMax/time.Second) {
			return retryAfterMax
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), retryAfterMax)
}

package webhook

import (
	"cmp"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Webhook request defaults.
const (
	MethodDefault  = http.MethodPost
	TimeoutDefault = 30 * time.Second
)

// Request is one webhook delivery attempt.
type Request struct {
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
	// Signature is SignatureStandard (the default) or SignatureFraiseQL.
	Signature string
	// Timeout bounds the attempt, including reading the response; default 30s.
	Timeout time.Duration
	// MaxResponseBytes and ResponseReadTimeout bound the response body
	// read (http: block); default 64 KiB and 5s.
	MaxResponseBytes    int64
	ResponseReadTimeout time.Duration
}

// IsReservedHeader reports whether a user header of this name is ignored
// because the delivery itself sets it.
func IsReservedHeader(name string) bool {
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

// Send signs req and makes one delivery attempt over client (see Do for
// how the outcome is classified). Errors name the URL without userinfo or
// query values.
func Send(ctx context.Context, client *http.Client, req Request) (*Response, error) {
	method := cmp.Or(req.Method, MethodDefault)
	what := func() string { return method + " " + observers.RedactURL(req.URL) }
	if req.MessageID == "" {
		return nil, observers.Permanent(errors.Newf("webhook %s: MessageID (webhook-id) is required", what()))
	}
	now := time.Now()
	header := http.Header{}
	for k, v := range req.Headers {
		if !IsReservedHeader(k) {
			header.Set(k, v)
		}
	}
	header.Set("Content-Type", "application/json")
	header.Set(HeaderWebhookID, req.MessageID)
	header.Set(HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	if req.Secret != "" {
		switch strings.ToLower(cmp.Or(req.Signature, SignatureStandard)) {
		case SignatureStandard:
			sig, err := SignStandard(req.Secret, req.MessageID, now, req.Body)
			if err != nil {
				return nil, observers.Permanent(errors.Wrapf(err, "webhook %s: sign", what()))
			}
			header.Set(HeaderWebhookSignature, sig)
		case SignatureFraiseQL:
			header.Set(HeaderFraiseQLSig256, SignFraiseQL(req.Secret, now, req.Body))
		default:
			return nil, observers.Permanent(errors.WithHint(
				errors.Newf("webhook %s: unknown signature scheme %q", what(), req.Signature),
				`use "standard" or "fraiseql"`))
		}
	}
	return Do(ctx, client, Call{
		Kind: "webhook", Method: method, URL: req.URL, Header: header, Body: req.Body,
		Timeout: req.Timeout, MaxResponseBytes: req.MaxResponseBytes, ResponseReadTimeout: req.ResponseReadTimeout,
		RedirectHint: "configure the final URL of the webhook",
	})
}

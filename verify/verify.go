// Package verify checks, for receivers, the signatures fraiseql-observers
// puts on webhook deliveries: Standard Webhooks (`webhook-id`,
// `webhook-timestamp`, `webhook-signature: v1,<base64>`) and FraiseQL's
// (`X-FraiseQL-Signature-256: t=<unix>,v1=<hex>`). Several secrets may be
// active at once (a rotation): a delivery verifies when any of them signed
// it. Errors never contain a secret.
//
//	mux.Handle("/hooks/orders", verify.Middleware([]string{os.Getenv("WEBHOOK_SECRET")}, verify.Options{}, orders))
package verify

import (
	"bytes"
	"io"
	"net/http"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
)

// Scheme is a signature scheme.
type Scheme string

// The schemes a delivery is signed with (a webhook action's signature:).
const (
	Standard Scheme = "standard-webhooks" // webhook-signature
	FraiseQL Scheme = "fraiseql"          // X-FraiseQL-Signature-256
)

// ErrSignature marks every verification failure (errors.Is).
var ErrSignature = webhook.ErrSignature

// ToleranceDefault is how far a signature's timestamp may be from now.
const ToleranceDefault = webhook.SignatureToleranceDefault

// BodyLimitDefault bounds the body Middleware reads.
const BodyLimitDefault = 10 << 20

// Options tune a verification; the zero value is the defaults.
type Options struct {
	Tolerance time.Duration    // ≤ 0: ToleranceDefault
	Now       func() time.Time // nil: time.Now (a test, or a capture checked later)
	BodyLimit int64            // Middleware's body limit; ≤ 0: BodyLimitDefault
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Verify checks the delivery whose headers and body are given against
// secrets (a Standard Webhooks secret is "whsec_<base64 key>"; any other
// string is the key itself) and returns the scheme it was signed with. A
// delivery with a X-FraiseQL-Signature-256 header is checked by that
// scheme, any other by Standard Webhooks.
func Verify(header http.Header, body []byte, secrets []string, o Options) (Scheme, error) {
	if len(secrets) == 0 {
		return "", errors.WithHint(errors.New("verify: no secret"), "pass the webhook action's signing secret (several during a rotation)")
	}
	for i, s := range secrets {
		if s == "" {
			// An empty key signs anything anyone can compute: an unset
			// variable must not turn verification off.
			return "", errors.WithHintf(errors.Newf("verify: secret %d of %d is empty", i+1, len(secrets)),
				"is the variable holding it set?")
		}
	}
	scheme := Standard
	if header.Get(webhook.HeaderFraiseQLSig256) != "" {
		scheme = FraiseQL
	}
	var first error
	for _, secret := range secrets {
		var err error
		if scheme == FraiseQL {
			err = webhook.VerifyFraiseQL(secret, header.Get(webhook.HeaderFraiseQLSig256), body, o.now(), o.Tolerance)
		} else {
			err = webhook.VerifyStandard(secret, header, body, o.now(), o.Tolerance)
		}
		if err == nil {
			return scheme, nil
		}
		if first == nil || !errors.Is(first, ErrSignature) && errors.Is(err, ErrSignature) {
			first = err
		}
	}
	if len(secrets) > 1 && errors.Is(first, ErrSignature) {
		first = errors.Wrapf(first, "none of %d secrets", len(secrets))
	}
	return scheme, errors.Wrapf(first, "verify %s signature", scheme)
}

// Middleware answers 401 to a request whose signature does not verify
// (and 413 to a body over the limit) and passes the others to next, with
// the body readable again.
func Middleware(secrets []string, o Options, next http.Handler) http.Handler {
	limit := o.BodyLimit
	if limit <= 0 {
		limit = BodyLimitDefault
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		if int64(len(body)) > limit {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if _, err := Verify(r.Header, body, secrets, o); err != nil {
			http.Error(w, "invalid webhook signature", http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

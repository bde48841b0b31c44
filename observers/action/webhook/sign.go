package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
)

// Signature schemes a webhook can be signed with (Request.Signature).
const (
	// SignatureStandard signs per the Standard Webhooks spec:
	// `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<unix>.<body>">`.
	SignatureStandard = "standard"
	// SignatureFraiseQL signs as FraiseQL does:
	// `X-FraiseQL-Signature-256: t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<body>">`.
	SignatureFraiseQL = "fraiseql"
)

// Header names a webhook delivery sets. User headers never override them.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
	HeaderFraiseQLSig256   = "X-FraiseQL-Signature-256"
)

// SecretPrefix marks a Standard Webhooks secret: "whsec_<base64 key>".
const SecretPrefix = "whsec_"

// SignatureToleranceDefault is how far a signature's timestamp may be
// from the verifier's clock, as the Standard Webhooks spec recommends.
const SignatureToleranceDefault = 5 * time.Minute

// ErrSignature marks every signature verification failure.
var ErrSignature = errors.New("webhook signature verification failed")

// signatureError is a verification failure; errors.Is (the standard
// library's and cockroachdb's) matches it to ErrSignature.
type signatureError struct{ err error }

func signatureErr(err error) error          { return &signatureError{err: err} }
func (e *signatureError) Error() string     { return e.err.Error() }
func (e *signatureError) Unwrap() error     { return e.err }
func (e *signatureError) Is(err error) bool { return err == ErrSignature }

// webhookKey returns the HMAC key for a Standard Webhooks secret: the
// base64-decoded part after "whsec_", or the raw bytes of a secret without
// the prefix. Errors never contain the secret.
func webhookKey(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("webhook signing secret is empty")
	}
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return []byte(secret), nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(rest); err == nil && len(key) > 0 {
			return key, nil
		}
	}
	return nil, errors.WithHint(
		errors.New("webhook signing secret has the whsec_ prefix but the rest is not valid base64"),
		"a Standard Webhooks secret is \"whsec_\" followed by the base64 of the key; drop the prefix to use the string itself as the key")
}

// SignStandard returns the Standard Webhooks signature header value
// "v1,<base64 HMAC-SHA256 of msgID.<unix ts>.body>".
func SignStandard(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := webhookKey(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(standardMAC(key, msgID, ts.Unix(), body)), nil
}

func standardMAC(key []byte, msgID string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msgID))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(unix, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyStandard checks the Standard Webhooks headers of a received delivery
// against secret. The timestamp must be within tolerance of now
// (tolerance <= 0 means SignatureToleranceDefault). Any one of several
// space-separated "v1,<sig>" entries may match. Errors are marked with
// ErrSignature.
func VerifyStandard(secret string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := webhookKey(secret)
	if err != nil {
		return err
	}
	id := header.Get(HeaderWebhookID)
	tsRaw := header.Get(HeaderWebhookTimestamp)
	sigs := header.Get(HeaderWebhookSignature)
	if id == "" || tsRaw == "" || sigs == "" {
		return signatureErr(errors.Newf("missing %s, %s or %s header",
			HeaderWebhookID, HeaderWebhookTimestamp, HeaderWebhookSignature))
	}
	unix, err := checkSignatureTimestamp(tsRaw, now, tolerance)
	if err != nil {
		return err
	}
	want := standardMAC(key, id, unix, body)
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return signatureErr(errors.New("no matching v1 signature"))
}

// SignFraiseQL returns FraiseQL's signature header value
// "t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<body>">". The key is the bytes of
// secret as given (no whsec_ decoding).
func SignFraiseQL(secret string, ts time.Time, body []byte) string {
	unix := ts.Unix()
	return "t=" + strconv.FormatInt(unix, 10) + ",v1=" + hex.EncodeToString(fraiseqlMAC(secret, unix, body))
}

func fraiseqlMAC(secret string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(unix, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyFraiseQL checks an X-FraiseQL-Signature-256 header value against
// secret, with the same timestamp tolerance rules as VerifyStandard.
func VerifyFraiseQL(secret, headerValue string, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return errors.New("webhook signing secret is empty") // an empty HMAC key is one anyone has
	}
	var tsRaw string
	var sigs [][]byte
	for _, part := range strings.Split(headerValue, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			tsRaw = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if tsRaw == "" || len(sigs) == 0 {
		return signatureErr(errors.Newf("malformed %s header: want t=<unix>,v1=<hex>", HeaderFraiseQLSig256))
	}
	unix, err := checkSignatureTimestamp(tsRaw, now, tolerance)
	if err != nil {
		return err
	}
	want := fraiseqlMAC(secret, unix, body)
	for _, got := range sigs {
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return signatureErr(errors.New("no matching v1 signature"))
}

func checkSignatureTimestamp(raw string, now time.Time, tolerance time.Duration) (int64, error) {
	unix, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return 0, signatureErr(errors.Newf("signature timestamp %q is not unix seconds", raw))
	}
	if tolerance <= 0 {
		tolerance = SignatureToleranceDefault
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return 0, signatureErr(errors.Newf("signature timestamp %d is %s away from now, more than the %s tolerance",
			unix, d.Abs().Round(time.Second), tolerance))
	}
	return unix, nil
}

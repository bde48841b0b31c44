package verify_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
	"github.com/fraiseql/fraiseql-observers/verify"
)

const (
	secret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	oldSecret = "whsec_dGhlIG9sZCBzZWNyZXQgb2YgdGhlIHJvdGF0aW9u"
)

var body = []byte(`{"entity_type":"Order","entity_id":"A-1001","event_type":"INSERT"}`)

func standardHeader(id string, at time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("webhook-signature", sig)
	return h
}

// A delivery signed by the Standard Webhooks library verifies here, and one
// signed here verifies with the library.
func TestStandardAgainstTheReferenceLibrary(t *testing.T) {
	t.Parallel()
	ref, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	now := time.Now()
	sig, err := ref.Sign("msg_1", now, body)
	require.NoError(t, err)
	h := standardHeader("msg_1", now, sig)
	scheme, err := verify.Verify(h, body, []string{secret}, verify.Options{})
	require.NoError(t, err)
	require.Equal(t, verify.Standard, scheme)

	ours, err := webhook.SignStandard(secret, "msg_2", now, body)
	require.NoError(t, err)
	require.NoError(t, ref.Verify(body, standardHeader("msg_2", now, ours)))

	// Raw (non-whsec_) secrets: the library's NewWebhookRaw.
	raw, err := standardwebhooks.NewWebhookRaw([]byte("plain-secret"))
	require.NoError(t, err)
	sig, err = raw.Sign("msg_3", now, body)
	require.NoError(t, err)
	_, err = verify.Verify(standardHeader("msg_3", now, sig), body, []string{"plain-secret"}, verify.Options{})
	require.NoError(t, err)
}

// During a rotation several secrets are active: the header carries a
// signature per secret (Standard Webhooks allows several, space-separated)
// and a receiver that knows either one accepts it.
func TestRotation(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a, err := webhook.SignStandard(secret, "msg_r", now, body)
	require.NoError(t, err)
	b, err := webhook.SignStandard(oldSecret, "msg_r", now, body)
	require.NoError(t, err)
	h := standardHeader("msg_r", now, a+" "+b)
	for _, secrets := range [][]string{{secret}, {oldSecret}, {"whsec_b3RoZXI=", oldSecret}} {
		_, err := verify.Verify(h, body, secrets, verify.Options{})
		require.NoError(t, err, "%d secrets", len(secrets))
	}
	ref, err := standardwebhooks.NewWebhook(oldSecret)
	require.NoError(t, err)
	require.NoError(t, ref.Verify(body, h), "the reference library accepts a header with several signatures")

	_, err = verify.Verify(standardHeader("msg_r", now, b), body, []string{secret, "whsec_b3RoZXI="}, verify.Options{})
	require.ErrorIs(t, err, verify.ErrSignature)
	require.ErrorContains(t, err, "none of 2 secrets")
	require.NotContains(t, err.Error(), strings.TrimPrefix(secret, "whsec_"))
}

func TestFraiseQLScheme(t *testing.T) {
	t.Parallel()
	now := time.Now()
	h := http.Header{}
	h.Set("X-FraiseQL-Signature-256", webhook.SignFraiseQL("raw-secret", now, body))
	scheme, err := verify.Verify(h, body, []string{"other", "raw-secret"}, verify.Options{})
	require.NoError(t, err)
	require.Equal(t, verify.FraiseQL, scheme)
	_, err = verify.Verify(h, append([]byte(nil), `{"tampered":1}`...), []string{"raw-secret"}, verify.Options{})
	require.ErrorIs(t, err, verify.ErrSignature)
}

func TestFailures(t *testing.T) {
	t.Parallel()
	now := time.Now()
	sig, err := webhook.SignStandard(secret, "msg_f", now, body)
	require.NoError(t, err)
	h := standardHeader("msg_f", now, sig)
	for name, tc := range map[string]struct {
		h    http.Header
		body []byte
		o    verify.Options
		want string
	}{
		"tampered body":  {h, []byte(`{}`), verify.Options{}, "no matching v1 signature"},
		"another id":     {standardHeader("msg_x", now, sig), body, verify.Options{}, "no matching v1 signature"},
		"too old":        {h, body, verify.Options{Now: func() time.Time { return now.Add(10 * time.Minute) }}, "more than the 5m0s tolerance"},
		"missing header": {http.Header{}, body, verify.Options{}, "missing webhook-id"},
	} {
		_, err := verify.Verify(tc.h, tc.body, []string{secret}, tc.o)
		require.ErrorIs(t, err, verify.ErrSignature, name)
		require.ErrorContains(t, err, tc.want, name)
	}
	// A capture checked later: Now moves the clock back.
	_, err = verify.Verify(h, body, []string{secret}, verify.Options{Now: func() time.Time { return now.Add(time.Hour) }, Tolerance: 2 * time.Hour})
	require.NoError(t, err)
	_, err = verify.Verify(h, body, nil, verify.Options{})
	require.ErrorContains(t, err, "no secret")

	// An unset variable is an empty secret: it must not accept a signature
	// anyone can make with an empty key.
	forged := http.Header{}
	forged.Set("X-FraiseQL-Signature-256", webhook.SignFraiseQL("", now, body))
	_, err = verify.Verify(forged, body, []string{""}, verify.Options{})
	require.ErrorContains(t, err, "secret 1 of 1 is empty")
	require.Error(t, webhook.VerifyFraiseQL("", forged.Get("X-FraiseQL-Signature-256"), body, now, 0))
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	var got []byte
	srv := httptest.NewServer(verify.Middleware([]string{secret}, verify.Options{BodyLimit: 1024}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	})))
	defer srv.Close()
	post := func(h http.Header, b []byte) int {
		req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(string(b)))
		require.NoError(t, err)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	now := time.Now()
	sig, err := webhook.SignStandard(secret, "msg_m", now, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, post(standardHeader("msg_m", now, sig), body))
	require.Equal(t, body, got, "the handler reads the body verified")
	require.Equal(t, http.StatusUnauthorized, post(standardHeader("msg_m", now, sig), []byte(`{"x":1}`)))
	require.Equal(t, http.StatusRequestEntityTooLarge, post(standardHeader("msg_m", now, sig), make([]byte, 2048)))
}

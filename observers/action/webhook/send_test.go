package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/fraiseql/fraiseql-observers/observers"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

// testWebhookSecret is a Standard Webhooks secret: whsec_ + base64 of a key.
var testWebhookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("fraiseql-test-signing-key-32byte"))

// receivedRequest is what a test receiver saw.
type receivedRequest struct {
	Header http.Header
	Body   []byte
	Method string
}

// webhookReceiver is a loopback test server that records requests and
// answers with the next of its handlers (the last one repeats).
type webhookReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []receivedRequest
	hits     atomic.Int64
}

func newWebhookReceiver(t *testing.T, handlers ...http.HandlerFunc) *webhookReceiver {
	t.Helper()
	r := &webhookReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := r.hits.Add(1)
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, receivedRequest{Header: req.Header.Clone(), Body: body, Method: req.Method})
		r.mu.Unlock()
		h := handlers[min(int(n), len(handlers))-1]
		h(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *webhookReceiver) received() []receivedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedRequest(nil), r.requests...)
}

func respond(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// loopbackClient may reach the test servers, which listen on 127.0.0.1.
func loopbackClient() *http.Client {
	return NewHTTPClient(HTTPClientConfig{AllowPrivateTargets: true})
}

func requireDeliveryError(t *testing.T, err error) *observers.DeliveryError {
	t.Helper()
	require.Error(t, err)
	var de *observers.DeliveryError
	require.True(t, errors.As(err, &de), "want *DeliveryError, got %T: %v", err, err)
	return de
}

func TestWebhookStandardSignatureVerifiesWithReferenceLibrary(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, respond(http.StatusNoContent, ""))
	body := []byte(`{"type":"order.created","data":{"id":42}}`)

	resp, err := Send(context.Background(), loopbackClient(), Request{
		URL: recv.URL + "/hook", Body: body, MessageID: "msg_1", Secret: testWebhookSecret,
		Headers: map[string]string{"X-Tenant": "acme", "webhook-signature": "v1,forged", "Content-Type": "text/plain"},
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	got := recv.received()
	require.Len(t, got, 1)
	require.Equal(t, http.MethodPost, got[0].Method)
	require.Equal(t, body, got[0].Body)
	require.Equal(t, "msg_1", got[0].Header.Get("webhook-id"))
	require.Equal(t, "application/json", got[0].Header.Get("Content-Type"))
	require.Equal(t, "acme", got[0].Header.Get("X-Tenant"))
	require.Equal(t, "fraiseql-observers", got[0].Header.Get("User-Agent"))
	require.Len(t, got[0].Header.Values("webhook-signature"), 1, "user header must not add or override the signature")
	require.Empty(t, got[0].Header.Get(HeaderFraiseQLSig256))

	wh, err := standardwebhooks.NewWebhook(testWebhookSecret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(got[0].Body, got[0].Header))
	require.NoError(t, VerifyStandard(testWebhookSecret, got[0].Header, got[0].Body, time.Now(), 0))

	tampered := []byte(`{"type":"order.created","data":{"id":43}}`)
	require.Error(t, wh.Verify(tampered, got[0].Header))
	require.ErrorIs(t, VerifyStandard(testWebhookSecret, got[0].Header, tampered, time.Now(), 0), ErrSignature)
	require.True(t, errors.Is(VerifyStandard(testWebhookSecret, got[0].Header, tampered, time.Now(), 0), ErrSignature))
	require.ErrorIs(t, VerifyStandard(testWebhookSecret, got[0].Header, got[0].Body, time.Now().Add(time.Hour), 0), ErrSignature,
		"a timestamp outside the tolerance fails")
}

func TestWebhookRawSecretUsesItsBytesAsKey(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, respond(http.StatusOK, "ok"))
	body := []byte(`{"a":1}`)
	_, err := Send(context.Background(), loopbackClient(), Request{
		URL: recv.URL, Body: body, MessageID: "msg_raw", Secret: "plain-secret",
	})
	require.NoError(t, err)
	got := recv.received()[0]
	wh, err := standardwebhooks.NewWebhookRaw([]byte("plain-secret"))
	require.NoError(t, err)
	require.NoError(t, wh.Verify(got.Body, got.Header))
}

func TestWebhookSignStandardMatchesReferenceLibrary(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1674087231, 0)
	body := []byte(`{"x":true}`)
	ours, err := SignStandard(testWebhookSecret, "msg_2", ts, body)
	require.NoError(t, err)
	wh, err := standardwebhooks.NewWebhook(testWebhookSecret)
	require.NoError(t, err)
	theirs, err := wh.Sign("msg_2", ts, body)
	require.NoError(t, err)
	require.Equal(t, theirs, ours)
	require.True(t, strings.HasPrefix(ours, "v1,"))
}

func TestWebhookFraiseQLSignature(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, respond(http.StatusOK, ""))
	body := []byte(`{"event":"updated"}`)
	const secret = "fraiseql-secret"
	_, err := Send(context.Background(), loopbackClient(), Request{
		URL: recv.URL, Body: body, MessageID: "msg_f", Secret: secret, Signature: "fraiseql",
	})
	require.NoError(t, err)
	got := recv.received()[0]
	require.Empty(t, got.Header.Get("webhook-signature"))
	require.Equal(t, "msg_f", got.Header.Get("webhook-id"))
	ts := got.Header.Get("webhook-timestamp")
	require.NotEmpty(t, ts)

	// Independent computation: HMAC-SHA256(secret, "<unix>.<body>"), hex.
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + string(body)))
	want := "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
	require.Equal(t, want, got.Header.Get(HeaderFraiseQLSig256))

	require.NoError(t, VerifyFraiseQL(secret, got.Header.Get(HeaderFraiseQLSig256), body, time.Now(), 0))
	require.ErrorIs(t, VerifyFraiseQL(secret, got.Header.Get(HeaderFraiseQLSig256), []byte(`{}`), time.Now(), 0), ErrSignature)
	unix, err := strconv.ParseInt(ts, 10, 64)
	require.NoError(t, err)
	require.Equal(t, want, SignFraiseQL(secret, time.Unix(unix, 0), body))
}

func TestWebhookUnsignedSendsNoSignature(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, respond(http.StatusOK, ""))
	_, err := Send(context.Background(), loopbackClient(), Request{
		URL: recv.URL, Method: http.MethodPut, Body: []byte(`{}`), MessageID: "msg_u",
		Headers: map[string]string{"Webhook-Signature": "v1,forged"},
	})
	require.NoError(t, err)
	got := recv.received()[0]
	require.Equal(t, http.MethodPut, got.Method)
	require.Empty(t, got.Header.Get("webhook-signature"))
	require.Equal(t, "msg_u", got.Header.Get("webhook-id"))
}

func TestWebhookRetrySameMessageID(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, respond(http.StatusInternalServerError, "database is down"), respond(http.StatusOK, "ok"))
	c := loopbackClient()
	req := Request{URL: recv.URL, Body: []byte(`{"n":1}`), MessageID: "msg_retry", Secret: testWebhookSecret}

	resp, err := Send(context.Background(), c, req)
	de := requireDeliveryError(t, err)
	require.False(t, de.Permanent)
	require.Equal(t, http.StatusInternalServerError, de.StatusCode)
	require.Contains(t, err.Error(), "500")
	require.Contains(t, err.Error(), "database is down")
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)

	resp, err = Send(context.Background(), c, req)
	require.NoError(t, err)
	require.Equal(t, "ok", resp.Body)

	got := recv.received()
	require.Len(t, got, 2)
	require.Equal(t, "msg_retry", got[0].Header.Get("webhook-id"))
	require.Equal(t, "msg_retry", got[1].Header.Get("webhook-id"))
}

func TestWebhookStatusClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code      int
		permanent bool
	}{
		{http.StatusBadRequest, true},
		{http.StatusUnauthorized, true},
		{http.StatusNotFound, true},
		{http.StatusRequestTimeout, false},
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
		{http.StatusBadGateway, false},
		{http.StatusServiceUnavailable, false},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			recv := newWebhookReceiver(t, respond(tc.code, "nope"))
			_, err := Send(context.Background(), loopbackClient(), Request{URL: recv.URL, MessageID: "m"})
			de := requireDeliveryError(t, err)
			require.Equal(t, tc.permanent, de.Permanent)
			require.Equal(t, tc.code, de.StatusCode)
			require.Zero(t, de.RetryAfter)
			require.Contains(t, err.Error(), strconv.Itoa(tc.code))
			require.Contains(t, err.Error(), "nope")
		})
	}
}

func TestWebhookRetryAfter(t *testing.T) {
	t.Parallel()
	t.Run("seconds", func(t *testing.T) {
		t.Parallel()
		recv := newWebhookReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		})
		_, err := Send(context.Background(), loopbackClient(), Request{URL: recv.URL, MessageID: "m"})
		de := requireDeliveryError(t, err)
		require.False(t, de.Permanent)
		require.Equal(t, 7*time.Second, de.RetryAfter)
	})
	t.Run("http date", func(t *testing.T) {
		t.Parallel()
		at := time.Now().Add(time.Hour).UTC()
		recv := newWebhookReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", at.Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		_, err := Send(context.Background(), loopbackClient(), Request{URL: recv.URL, MessageID: "m"})
		de := requireDeliveryError(t, err)
		require.False(t, de.Permanent)
		require.InDelta(t, time.Hour.Seconds(), de.RetryAfter.Seconds(), 60)
	})
	t.Run("parser", func(t *testing.T) {
		t.Parallel()
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		require.Zero(t, parseRetryAfter("", now))
		require.Zero(t, parseRetryAfter("soon", now))
		require.Zero(t, parseRetryAfter("-3", now))
		require.Equal(t, 120*time.Second, parseRetryAfter(" 120 ", now))
		require.Equal(t, retryAfterMax, parseRetryAfter("99999999999999", now))
		require.Equal(t, 90*time.Second, parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
		require.Zero(t, parseRetryAfter(now.Add(-time.Hour).Format(http.TimeFormat), now))
	})
}

func TestWebhookTimeoutIsTransient(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	recv := newWebhookReceiver(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before recv.Close

	_, err := Send(context.Background(), loopbackClient(), Request{
		URL: recv.URL, MessageID: "m", Timeout: 200 * time.Millisecond,
	})
	de := requireDeliveryError(t, err)
	require.False(t, de.Permanent)
	require.Zero(t, de.StatusCode)
	require.Contains(t, err.Error(), "timed out after 200ms")
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestWebhookConnectionRefusedIsTransient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	_, err = Send(context.Background(), loopbackClient(), Request{URL: "http://" + addr + "/x", MessageID: "m"})
	de := requireDeliveryError(t, err)
	require.False(t, de.Permanent)
	require.Zero(t, de.StatusCode)
	require.Contains(t, err.Error(), addr)
}

func TestWebhookRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int64
	recv := newWebhookReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			elsewhere.Add(1)
			return
		}
		http.Redirect(w, r, "/elsewhere?token=abc", http.StatusFound)
	})
	_, err := Send(context.Background(), loopbackClient(), Request{URL: recv.URL + "/hook", MessageID: "m"})
	de := requireDeliveryError(t, err)
	require.True(t, de.Permanent)
	require.Equal(t, http.StatusFound, de.StatusCode)
	require.Contains(t, err.Error(), "redirects are not followed")
	require.NotContains(t, err.Error(), "abc")
	require.Zero(t, elsewhere.Load())
	require.EqualValues(t, 1, recv.hits.Load())
}

func TestWebhookErrorsHideCredentials(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, respond(http.StatusBadRequest, "bad"))
	u := strings.Replace(recv.URL, "http://", "http://alice:hunter2pass@", 1) + "/hook?token=querysecret&x"
	_, err := Send(context.Background(), loopbackClient(), Request{
		URL: u, MessageID: "m", Secret: testWebhookSecret,
	})
	de := requireDeliveryError(t, err)
	require.True(t, de.Permanent)
	msg := err.Error()
	require.Contains(t, msg, strings.TrimPrefix(recv.URL, "http://")+"/hook?token=REDACTED&x")
	for _, secret := range []string{"hunter2pass", "alice", "querysecret", testWebhookSecret, strings.TrimPrefix(testWebhookSecret, "whsec_")} {
		require.NotContains(t, msg, secret)
		require.NotContains(t, errors.FlattenDetails(err), secret)
	}
	require.EqualValues(t, 1, recv.hits.Load())

	// A whsec_ secret that is not base64 fails without echoing it.
	const badSecret = "whsec_not*base64!secret"
	_, err = Send(context.Background(), loopbackClient(), Request{URL: recv.URL, MessageID: "m", Secret: badSecret})
	de = requireDeliveryError(t, err)
	require.True(t, de.Permanent)
	require.NotContains(t, err.Error(), "not*base64!secret")

	// An unparsable URL is not echoed either.
	_, err = Send(context.Background(), loopbackClient(), Request{URL: "http://bob:pw123@[::1/%zz?k=v", MessageID: "m"})
	de = requireDeliveryError(t, err)
	require.True(t, de.Permanent)
	require.NotContains(t, err.Error(), "pw123")
}

func TestWebhookRejectsBadRequests(t *testing.T) {
	t.Parallel()
	for name, req := range map[string]Request{
		"ftp scheme":        {URL: "ftp://example.com/x", MessageID: "m"},
		"file scheme":       {URL: "file:///etc/passwd", MessageID: "m"},
		"relative":          {URL: "/hook", MessageID: "m"},
		"no message id":     {URL: "http://127.0.0.1:9/x"},
		"unknown signature": {URL: "http://127.0.0.1:9/x", MessageID: "m", Secret: "s", Signature: "hmac-md5"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Send(context.Background(), loopbackClient(), req)
			require.True(t, requireDeliveryError(t, err).Permanent)
		})
	}
}

func TestWebhookDeliveryErrorFoundThroughWrapping(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, respond(http.StatusBadGateway, ""))
	_, err := Send(context.Background(), loopbackClient(), Request{URL: recv.URL, MessageID: "m"})
	wrapped := errors.Wrap(errors.Wrap(err, "run webhook action"), "job 7")
	de := requireDeliveryError(t, wrapped)
	require.Equal(t, http.StatusBadGateway, de.StatusCode)
	require.Contains(t, wrapped.Error(), "(empty body)")
}

func TestWebhookKeepAliveReusesConnection(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	big := strings.Repeat("x", 10<<10) // larger than the 4 KiB excerpt
	recv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, big)
	}))
	recv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	recv.Start()
	t.Cleanup(recv.Close)

	c := loopbackClient()
	for range 10 {
		resp, err := Send(context.Background(), c, Request{URL: recv.URL, MessageID: "m"})
		require.NoError(t, err)
		require.Len(t, resp.Body, bodyExcerptMax)
	}
	require.EqualValues(t, 1, conns.Load(), "drained responses must leave the connection reusable")
}

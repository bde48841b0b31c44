package slack

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
	"github.com/stretchr/testify/require"
)

// slackServer answers every request with status (and Retry-After when set)
// and records the requests.
type slackServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	ctypes []string
}

func newSlackServer(t *testing.T, status int, retryAfter string) *slackServer {
	s := &slackServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, b)
		s.ctypes = append(s.ctypes, r.Header.Get("Content-Type"))
		s.mu.Unlock()
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(s.Close)
	return s
}

const slackSecretPath = "/services/T0001/B0002/XXXXsecretXXXX"

func TestSlackPostsJSONMessage(t *testing.T) {
	t.Parallel()
	srv := newSlackServer(t, http.StatusOK, "")
	a := &Action{Channel: "#orders", MessageTemplate: "Order {{ id }}: {{ note }}"}
	body, err := a.Payload(map[string]any{"id": 42.0, "note": "say \"hi\"\nnext line — ünïcode {{ not a placeholder }}"})
	require.NoError(t, err)
	c := webhook.NewHTTPClient(webhook.HTTPClientConfig{AllowPrivateTargets: true})
	require.NoError(t, Send(context.Background(), c, srv.URL+slackSecretPath, body, time.Second))

	require.Len(t, srv.bodies, 1)
	require.Equal(t, "application/json", srv.ctypes[0])
	var got map[string]string
	require.NoError(t, json.Unmarshal(srv.bodies[0], &got))
	require.Equal(t, map[string]string{
		"text":    "Order 42: say \"hi\"\nnext line — ünïcode {{ not a placeholder }}",
		"channel": "#orders",
	}, got)
}

func TestSlackStatusClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status     int
		retryAfter string
		permanent  bool
		wantAfter  time.Duration
	}{
		{http.StatusBadRequest, "", true, 0},
		{http.StatusForbidden, "", true, 0},
		{http.StatusNotFound, "", true, 0},
		{http.StatusGone, "", true, 0},
		{http.StatusFound, "", true, 0},
		{http.StatusRequestTimeout, "", false, 0},
		{http.StatusTooManyRequests, "7", false, 7 * time.Second},
		{http.StatusInternalServerError, "", false, 0},
		{http.StatusServiceUnavailable, "2", false, 2 * time.Second},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			t.Parallel()
			srv := newSlackServer(t, tc.status, tc.retryAfter)
			c := webhook.NewHTTPClient(webhook.HTTPClientConfig{AllowPrivateTargets: true})
			err := Send(context.Background(), c, srv.URL+slackSecretPath, []byte(`{"text":"x"}`), time.Second)
			var de *observers.DeliveryError
			require.True(t, errors.As(err, &de), "%v", err)
			require.Equal(t, tc.permanent, de.Permanent)
			require.Equal(t, tc.status, de.StatusCode)
			require.Equal(t, tc.wantAfter, de.RetryAfter)
			require.NotContains(t, err.Error(), "XXXXsecretXXXX", "the webhook path is a secret")
			require.Contains(t, err.Error(), "/services/REDACTED")
		})
	}
}

func TestSlackSSRFGuardAndTransportErrors(t *testing.T) {
	t.Parallel()
	srv := newSlackServer(t, http.StatusOK, "")

	guarded := webhook.NewHTTPClient(webhook.HTTPClientConfig{})
	err := Send(context.Background(), guarded, srv.URL+slackSecretPath, []byte(`{}`), time.Second)
	var de *observers.DeliveryError
	require.True(t, errors.As(err, &de))
	require.True(t, de.Permanent, "loopback is refused unless allow_private_targets")
	require.NotContains(t, err.Error(), "XXXXsecretXXXX")
	require.Empty(t, srv.bodies)

	srv.Close()
	open := webhook.NewHTTPClient(webhook.HTTPClientConfig{AllowPrivateTargets: true})
	err = Send(context.Background(), open, srv.URL+slackSecretPath, []byte(`{}`), time.Second)
	require.True(t, errors.As(err, &de))
	require.False(t, de.Permanent, "connection refused is transient")
	require.NotContains(t, err.Error(), "XXXXsecretXXXX")

	err = Send(context.Background(), open, "ftp://x"+slackSecretPath, []byte(`{}`), time.Second)
	require.True(t, errors.As(err, &de))
	require.True(t, de.Permanent)
	require.NotContains(t, err.Error(), "XXXXsecretXXXX")
}

func TestSlackResolvedURL(t *testing.T) {
	t.Parallel()
	a := &Action{WebhookURLEnv: "SLACK"}
	_, err := a.ResolvedURL(envOf(nil))
	require.ErrorContains(t, err, "SLACK (webhook_url_env) is not set")
	_, err = a.ResolvedURL(envOf(map[string]string{"SLACK": "hooks.slack.com/services/secret"}))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret")
	u, err := a.ResolvedURL(envOf(map[string]string{"SLACK": "https://hooks.slack.com/services/a"}))
	require.NoError(t, err)
	require.Equal(t, "https://hooks.slack.com/services/a", u)
}

func TestRedactSlackURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T000/B000/XXXX": "https://hooks.slack.com/services/REDACTED",
		"https://user:pw@h.example/hook?token=abc":        "https://h.example/REDACTED",
		"https://h.example/a/b":                           "https://h.example/a/REDACTED",
		"https://h.example":                               "https://h.example",
		"::not a url":                                     "<unparseable URL>",
	} {
		require.Equal(t, want, observers.RedactURLPath(in), in)
	}
}

func envOf(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

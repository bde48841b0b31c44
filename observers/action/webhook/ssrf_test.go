package webhook

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/stretchr/testify/require"
)

func TestWebhookSSRFGuardRefusesLoopback(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, respond(http.StatusOK, "reached"))
	port := recv.URL[strings.LastIndex(recv.URL, ":")+1:]

	for _, target := range []string{
		recv.URL + "/x",
		"http://localhost:" + port + "/x",
		"http://user:pa55word@127.0.0.1:" + port + "/x?key=k3y",
	} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			_, err := Send(context.Background(), NewHTTPClient(HTTPClientConfig{}), Request{
				URL: target, MessageID: "m", Body: []byte(`{}`),
			})
			de := requireDeliveryError(t, err)
			require.True(t, de.Permanent)
			require.Zero(t, de.StatusCode)
			require.ErrorIs(t, err, observers.ErrPrivateTarget)
			require.True(t, errors.Is(err, observers.ErrPrivateTarget), "cockroachdb errors.Is")
			require.Regexp(t, `^webhook target http://(127\.0\.0\.1|localhost):\d+/x(\?key=REDACTED)? resolves to (127\.0\.0\.1|::1), a loopback address$`, err.Error())
			require.NotContains(t, err.Error(), "pa55word")
			require.NotContains(t, err.Error(), "k3y")
			require.Contains(t, errors.GetAllHints(err), "set allow_private_targets: true to allow private and loopback targets")
		})
	}
	t.Cleanup(func() { require.Zero(t, recv.hits.Load(), "no request may reach a refused target") })
}

func TestWebhookSSRFHintSurvivesWrapping(t *testing.T) {
	t.Parallel()
	_, err := Send(context.Background(), NewHTTPClient(HTTPClientConfig{}), Request{
		URL: "http://127.0.0.1:9/x", MessageID: "m",
	})
	require.Equal(t, "webhook target http://127.0.0.1:9/x resolves to 127.0.0.1, a loopback address", err.Error())
	wrapped := errors.Wrap(err, "deliver")
	require.Contains(t, errors.FlattenHints(wrapped), "allow_private_targets")
	require.True(t, requireDeliveryError(t, wrapped).Permanent)
}

func TestWebhookAllowPrivateTargetsReachesLoopback(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t, respond(http.StatusOK, "reached"))
	port := recv.URL[strings.LastIndex(recv.URL, ":")+1:]
	c := NewHTTPClient(HTTPClientConfig{AllowPrivateTargets: true, UserAgent: "test-agent"})

	resp, err := Send(context.Background(), c, Request{URL: "http://127.0.0.1:" + port + "/x", MessageID: "m"})
	require.NoError(t, err)
	require.Equal(t, "reached", resp.Body)
	require.EqualValues(t, 1, recv.hits.Load())
	require.Equal(t, "test-agent", recv.received()[0].Header.Get("User-Agent"))
}

func TestWebhookClassifyTargetIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ip    string
		class string // "" = allowed
	}{
		{"127.0.0.1", "loopback"},
		{"127.1.2.3", "loopback"},
		{"10.0.0.1", "private"},
		{"172.16.5.4", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"169.254.169.254", "link-local"},
		{"100.64.0.1", "carrier-grade NAT (shared)"},
		{"100.127.255.254", "carrier-grade NAT (shared)"},
		{"0.0.0.0", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"::1", "loopback"},
		{"::", "unspecified"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"ff02::1", "multicast"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:10.1.2.3", "private"},
		{"::ffff:169.254.169.254", "link-local"},
		{"64:ff9b::7f00:1", "loopback"}, // NAT64 of 127.0.0.1
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"172.32.0.1", ""},
		{"100.128.0.1", ""},
		{"2001:4860:4860::8888", ""},
		{"::ffff:8.8.8.8", ""},
	} {
		class, blocked := ClassifyTargetIP(netip.MustParseAddr(tc.ip))
		require.Equal(t, tc.class != "", blocked, tc.ip)
		require.Equal(t, tc.class, class, tc.ip)
	}
	_, blocked := ClassifyTargetIP(netip.Addr{})
	require.True(t, blocked, "the zero Addr is refused")
}

func TestWebhookSSRFControlChecksDialledAddress(t *testing.T) {
	t.Parallel()
	// The Control hook sees the resolved ip:port; no network traffic here.
	err := ssrfControl("tcp4", "10.1.2.3:443", nil)
	require.ErrorIs(t, err, observers.ErrPrivateTarget)
	var refused *targetRefusedError
	require.True(t, errors.As(err, &refused))
	require.Equal(t, "private", refused.class)

	require.NoError(t, ssrfControl("tcp6", "[2001:4860:4860::8888]:443", nil))
	require.NoError(t, ssrfControl("tcp4", "8.8.8.8:443", nil))
	require.Error(t, ssrfControl("tcp", "not-an-address", nil))
}

package observers_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

func TestEndpointName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, endpoint, host string }{
		{"https://Example.com/a?b=c", "https://example.com:443/a", "https://example.com:443"},
		{"http://example.com", "http://example.com:80/", "http://example.com:80"},
		{"http://user:pw@10.0.0.1:8080/x/y/#frag", "http://10.0.0.1:8080/x/y/", "http://10.0.0.1:8080"},
		{"https://[::1]/x", "https://[::1]:443/x", "https://[::1]:443"},
		{"HTTPS://HOOKS.example.com/Hooks/Orders", "https://hooks.example.com:443/Hooks/Orders", "https://hooks.example.com:443"},
		{"https://example.com/a%2Fb%20c", "https://example.com:443/a%2Fb%20c", "https://example.com:443"},
	} {
		got, err := observers.EndpointName(c.in, observers.ScopeEndpoint, false)
		require.NoError(t, err)
		require.Equal(t, c.endpoint, got, c.in)
		got, err = observers.EndpointName(c.in, "", false)
		require.NoError(t, err)
		require.Equal(t, c.endpoint, got, "the default scope is endpoint: %s", c.in)
		got, err = observers.EndpointName(c.in, observers.ScopeHost, false)
		require.NoError(t, err)
		require.Equal(t, c.host, got, c.in)
	}
	for _, bad := range []string{"/relative", "not a url", "https://", "%zz"} {
		_, err := observers.EndpointName(bad, observers.ScopeEndpoint, false)
		require.Error(t, err, bad)
	}
}

// A Slack webhook's path is its secret: names keep the first segment and a
// hash of the path, distinct per URL, never the secret.
func TestEndpointNameSecretPath(t *testing.T) {
	t.Parallel()
	a, err := observers.EndpointName("https://hooks.slack.com/services/T000/B000/SECRETAAA", observers.ScopeEndpoint, true)
	require.NoError(t, err)
	b, err := observers.EndpointName("https://hooks.slack.com/services/T000/B000/SECRETBBB", observers.ScopeEndpoint, true)
	require.NoError(t, err)
	require.NotEqual(t, a, b, "each webhook (channel) has its own name")
	for _, n := range []string{a, b} {
		require.Regexp(t, `^https://hooks\.slack\.com:443/services/sha256-[0-9a-f]{16}$`, n)
		require.NotContains(t, n, "SECRET")
		require.NotContains(t, n, "T000")
		require.Equal(t, n, observers.RedactURL(n), "status shows the name as is")
	}
	one, err := observers.EndpointName("https://example.com/SECRET", observers.ScopeEndpoint, true)
	require.NoError(t, err)
	require.Regexp(t, `^https://example\.com:443/sha256-[0-9a-f]{16}$`, one)
	root, err := observers.EndpointName("https://example.com", observers.ScopeEndpoint, true)
	require.NoError(t, err)
	require.Equal(t, "https://example.com:443/", root)
	host, err := observers.EndpointName("https://hooks.slack.com/services/T000/B000/SECRET", observers.ScopeHost, true)
	require.NoError(t, err)
	require.Equal(t, "https://hooks.slack.com:443", host)
}

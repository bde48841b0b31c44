package observers

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/url"
	"strings"

	"github.com/cockroachdb/errors"
)

// Scopes of circuit breakers and rate limits (circuit_breaker.scope,
// rate_limit.scope): what one breaker or one limit counts.
const (
	// ScopeEndpoint (the default) gives every endpoint URL its own:
	// scheme, host, port and path. One failing path of a shared host (a
	// Slack channel of hooks.slack.com) pauses only itself.
	ScopeEndpoint = "endpoint"
	// ScopeHost shares one between every path of a host: scheme, host and
	// port.
	ScopeHost = "host"
)

var scopes = []string{ScopeEndpoint, ScopeHost}

// secretPathHashLen is how many hex digits of the path's SHA-256 name an
// endpoint whose path is a secret.
const secretPathHashLen = 16

// EndpointName names the endpoint of an absolute http(s) URL for its circuit
// breaker and rate limit: "scheme://host:port/path" for ScopeEndpoint (the
// default, and any unknown scope), "scheme://host:port" for ScopeHost. The
// scheme and host are lower-cased, the scheme's default port is filled in,
// the path is kept as written ("/" when empty); userinfo, query and fragment
// are dropped, so a name never carries a credential of those parts.
//
// When secretPath is true the path is itself a credential (a Slack incoming
// webhook): the name keeps its first segment and replaces the rest with
// "sha256-" and the first 16 hex digits of the path's SHA-256
// ("https://hooks.slack.com:443/services/sha256-3f2a…"), so distinct URLs
// get distinct names and none reveals the secret. Names appear in logs,
// metrics, `status` and the breakers' table.
func EndpointName(raw, scope string, secretPath bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return "", errors.New("endpoint: not an absolute URL")
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	name := scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
	if scope == ScopeHost {
		return name, nil
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if secretPath {
		first, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if rest != "" || first != "" {
			sum := sha256.Sum256([]byte(path))
			hash := "sha256-" + hex.EncodeToString(sum[:])[:secretPathHashLen]
			if rest == "" { // the only segment is the secret
				first = ""
			} else {
				first += "/"
			}
			path = "/" + first + hash
		}
	}
	return name + path, nil
}

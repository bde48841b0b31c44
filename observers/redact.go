package observers

import (
	"net/url"
	"strings"
)

// Redacted replaces a secret in a URL rendered by RedactURL.
const Redacted = "REDACTED"

// RedactURL renders a URL for people (errors, logs, CLI output): its
// userinfo (a password, or a token given as the user name) and fragment are
// removed and every query value (keys are kept) is replaced by REDACTED, so
// a credential in a webhook URL, a Slack URL or a database URL never
// reaches them. Anything that does not parse as a URL
// renders as "<unparseable URL>".
func RedactURL(raw string) string { return redactURL(raw, false) }

// RedactURLPath is RedactURL for URLs whose path is itself the secret
// (Slack incoming webhooks): only the scheme, the host and the first path
// segment are kept ("https://hooks.slack.com/services/REDACTED").
func RedactURLPath(raw string) string { return redactURL(raw, true) }

func redactURL(raw string, secretPath bool) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme == "" && u.Host == "") {
		return "<unparseable URL>"
	}
	c := *u
	c.User = nil // a password, or a token given as the user name
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" {
		parts := strings.Split(c.RawQuery, "&")
		for i, p := range parts {
			if k, _, ok := strings.Cut(p, "="); ok {
				parts[i] = k + "=" + Redacted
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	if secretPath { // nothing but scheme, host and the first path segment
		c.RawQuery, c.ForceQuery = "", false
		first, rest, _ := strings.Cut(strings.TrimPrefix(c.EscapedPath(), "/"), "/")
		switch {
		case first == "":
			c.Path, c.RawPath = "", ""
		case rest == "":
			c.Path, c.RawPath = "/"+Redacted, ""
		default:
			p, _ := url.PathUnescape(first)
			c.Path, c.RawPath = "/"+p+"/"+Redacted, ""
		}
	}
	return c.String()
}

// RedactedSetting replaces a secret in an action's Settings.
const RedactedSetting = "<redacted>"

// IsSensitiveName reports whether a header or parameter name suggests a
// credential, whose value Settings redact.
func IsSensitiveName(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"auth", "token", "secret", "key", "cookie", "password", "passwd", "signature", "sig", "credential"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

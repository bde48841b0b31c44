package main

import (
	"context"
	"net/http"
	"os"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// metricsClient is the HTTP client `metrics` scrapes with: the default
// one, or, with --config, one that sends the admin: block's credentials
// (the bearer token when admin.token_env is set, else basic auth), read
// from the environment like `run` reads them.
func metricsClient(ctx context.Context, configPath string) (*http.Client, error) {
	if configPath == "" {
		return nil, nil
	}
	cfg, _, err := observers.LoadConfig(ctx, configPath, observers.LoadOptions{Getenv: os.LookupEnv})
	if err != nil {
		return nil, withExitCode(exitUsage, err)
	}
	if !cfg.Admin.AuthEnabled() {
		return nil, nil
	}
	creds, err := cfg.Admin.ResolvedCredentials(os.LookupEnv)
	if err != nil {
		return nil, withExitCode(exitUsage, errors.Wrap(err, "metrics: the admin server's credentials"))
	}
	return &http.Client{Transport: &authTransport{creds: creds, next: http.DefaultTransport}}, nil
}

// authTransport adds the admin server's credentials to every request.
type authTransport struct {
	creds observers.AdminCredentials
	next  http.RoundTripper
}

func (a *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if a.creds.Token != "" {
		r.Header.Set("Authorization", "Bearer "+a.creds.Token)
	} else {
		r.SetBasicAuth(a.creds.Username, a.creds.Password)
	}
	return a.next.RoundTrip(r)
}

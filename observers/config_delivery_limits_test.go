package observers_test

import (
	"cmp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/action/slack"
	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"
)

// circuit_breaker.scope is endpoint by default, set at the top level and
// overridden per webhook or Slack action like the other breaker keys.
func TestConfigCircuitBreakerScope(t *testing.T) {
	t.Parallel()
	src := []byte(`circuit_breaker: {scope: host}
observers:
  o:
    entity: A
    events: [INSERT]
    actions:
      - {type: webhook, url: "https://a.example/x"}
      - {type: webhook, url: "https://a.example/y", circuit_breaker: {scope: endpoint}}
      - {type: slack, webhook_url: "https://hooks.slack.com/services/T/B/C"}
      - {type: slack, webhook_url: "https://hooks.slack.com/services/T/B/D", circuit_breaker: {scope: ENDPOINT, timeout: 5s}}
`)
	cfg, diags, err := observers.Parse("scope.yaml", src)
	require.NoError(t, err, "%v", diags)
	require.Equal(t, observers.ScopeHost, cfg.CircuitBreaker.Scope)
	acts := cfg.Observer("o").Actions
	require.Equal(t, observers.ScopeHost, acts[0].(*webhook.Action).CircuitBreaker.Scope, "inherits the top level")
	require.Equal(t, observers.ScopeEndpoint, acts[1].(*webhook.Action).CircuitBreaker.Scope)
	require.Equal(t, cfg.CircuitBreaker, acts[2].(*slack.Action).CircuitBreaker, "a Slack action inherits the top level")
	want := cfg.CircuitBreaker
	want.Scope, want.Timeout = observers.ScopeEndpoint, 5e9
	require.Equal(t, want, acts[3].(*slack.Action).CircuitBreaker)

	cfg, _, err = observers.Parse("none.yaml", []byte("observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"))
	require.NoError(t, err)
	require.Equal(t, observers.ScopeEndpoint, cfg.CircuitBreaker.Scope, "the default")

	_, diags, err = observers.Parse("x.yaml", []byte("circuit_breaker: {scope: path}\n"))
	require.Error(t, err)
	require.Equal(t, `x.yaml:1:26: unknown circuit_breaker.scope "path"`, firstLine(diags.Errors()[0].String()))
}

// withInFlightDefault is c with concurrency.max_in_flight's default when
// it has none.
func withInFlightDefault(c observers.ConcurrencyConfig) observers.ConcurrencyConfig {
	c.MaxInFlight = cmp.Or(c.MaxInFlight, observers.ConcurrencyMaxInFlightDefault)
	return c
}

// rate_limit: a top-level default with its scope and backend, an action's
// own rate or none; concurrency.max_in_flight; the http: block.
func TestConfigLimits(t *testing.T) {
	t.Parallel()
	src := []byte(`rate_limit: {default: 50/s, scope: host, backend: redis}
redis: {url: "redis://127.0.0.1:6379/0"}
concurrency: {max_in_flight: 64}
http: {max_response_bytes: 1024, response_read_timeout: 2s}
observers:
  o:
    entity: A
    events: [INSERT]
    actions:
      - {type: webhook, url: "https://a.example/x"}
      - {type: webhook, url: "https://a.example/y", rate_limit: 600/m}
      - {type: webhook, url: "https://a.example/z", rate_limit: none}
      - {type: slack, webhook_url: "https://hooks.slack.com/services/T/B/C", rate_limit: 1 / SEC}
`)
	cfg, diags, err := observers.Parse("limits.yaml", src)
	require.NoError(t, err, "%v", diags)
	host := observers.RateLimitConfig{Limit: 50, Per: time.Second, Scope: observers.ScopeHost}
	require.Equal(t, host, cfg.RateLimit)
	require.Equal(t, observers.BackendRedis, cfg.RateLimitBackend)
	require.Equal(t, 64, cfg.Concurrency.MaxInFlight)
	require.Equal(t, observers.HTTPConfig{MaxResponseBytes: 1024, ResponseReadTimeout: 2 * time.Second}, cfg.HTTP)
	acts := cfg.Observer("o").Actions
	require.Equal(t, host, acts[0].(*webhook.Action).RateLimit, "the top-level default")
	require.Equal(t, observers.RateLimitConfig{Limit: 600, Per: time.Minute, Scope: observers.ScopeHost}, acts[1].(*webhook.Action).RateLimit)
	require.False(t, acts[2].(*webhook.Action).RateLimit.Enabled(), "none lifts the default")
	require.Equal(t, observers.RateLimitConfig{Limit: 1, Per: time.Second, Scope: observers.ScopeHost}, acts[3].(*slack.Action).RateLimit)
	require.Equal(t, "600/m", acts[1].(*webhook.Action).RateLimit.String())
	require.Equal(t, 100*time.Millisecond, acts[1].(*webhook.Action).RateLimit.Interval())

	cfg, _, err = observers.Parse("none.yaml", []byte("observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: webhook, url: 'https://a/'}]\n"))
	require.NoError(t, err)
	require.Equal(t, observers.RateLimitConfig{Scope: observers.ScopeEndpoint}, cfg.RateLimit, "no rate limit by default")
	require.False(t, cfg.Observer("o").Actions[0].(*webhook.Action).RateLimit.Enabled())
	require.Equal(t, observers.BackendPostgres, cfg.RateLimitBackend)
	require.Equal(t, observers.ConcurrencyMaxInFlightDefault, cfg.Concurrency.MaxInFlight)
	require.Equal(t, observers.HTTPConfig{MaxResponseBytes: 64 << 10, ResponseReadTimeout: 5 * time.Second}, cfg.HTTP)

	require.NoError(t, schemaValidate(t, compileSchema(t), src), "the schema accepts what the loader does")
}

func TestConfigLimitsErrors(t *testing.T) {
	t.Parallel()
	action := "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions:\n      - type: webhook\n        url: https://a/\n        rate_limit: "
	s := compileSchema(t)
	for src, want := range map[string]string{
		"rate_limit: {default: 50}\n":                   `x.yaml:1:23: invalid rate_limit.default: "50" is not a rate`,
		"rate_limit: {default: 50/d}\n":                 `x.yaml:1:23: invalid rate_limit.default: "50/d" is not a rate`,
		"rate_limit: {default: 0/s}\n":                  `x.yaml:1:23: invalid rate_limit.default: rate "0/s": the count must be from 1 to 1000000`,
		"rate_limit: {default: none}\n":                 `x.yaml:1:23: invalid rate_limit.default: "none" is not a rate`,
		"rate_limit: {scope: path}\n":                   `x.yaml:1:21: unknown rate_limit.scope "path"`,
		"rate_limit: {backend: redis}\n":                "x.yaml:1:23: rate_limit.backend is redis but redis.url is not set",
		"rate_limit: {limit: 5/s}\n":                    `x.yaml:1:14: unknown key "limit" in rate_limit`,
		"concurrency: {max_in_flight: 0}\n":             "x.yaml:1:30: concurrency.max_in_flight must be positive, got 0",
		"concurrency: {max_in_flight: 100001}\n":        "x.yaml:1:30: concurrency.max_in_flight (100001) is more than 100000",
		"http: {max_response_bytes: 67108865}\n":        "x.yaml:1:28: http.max_response_bytes (67108865) is more than 67108864",
		"http: {response_read_timeout: 5}\n":            "x.yaml:1:31: http.response_read_timeout: 5 has no unit",
		action + "fast\n":                               `x.yaml:8:21: invalid observers.o.actions[0].rate_limit: "fast" is not a rate`,
		action + "2000000/s\n":                          `x.yaml:8:21: invalid observers.o.actions[0].rate_limit: rate "2000000/s": the count must be from 1 to 1000000`,
		action + "{rate: 5/s}\n":                        "x.yaml:8:21: observers.o.actions[0].rate_limit must be a string, got a mapping",
		"http: {max_response_bytes: 10, timeout: 1s}\n": `x.yaml:1:32: unknown key "timeout" in http`,
	} {
		_, diags, err := observers.Parse("x.yaml", []byte(src))
		require.Error(t, err, src)
		require.NotEmpty(t, diags.Errors(), src)
		require.Equal(t, want, firstLine(diags.Errors()[0].String()), src)
		if src != "rate_limit: {backend: redis}\n" && src != "rate_limit: {default: 0/s}\n" && src != action+"2000000/s\n" {
			require.Error(t, schemaValidate(t, s, []byte(src)), "the schema rejects it too: %s", src)
		}
	}
}

package observers_test

import (
	"testing"

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

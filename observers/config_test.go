package observers_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/fraiseql-observers/observers"
	_ "github.com/fraiseql/fraiseql-observers/observers/action/builtin"
	"github.com/fraiseql/fraiseql-observers/observers/action/database"
	"github.com/fraiseql/fraiseql-observers/observers/action/email"
	"github.com/fraiseql/fraiseql-observers/observers/action/log"
	"github.com/fraiseql/fraiseql-observers/observers/action/slack"
	"github.com/fraiseql/fraiseql-observers/observers/action/webhook"

	"github.com/cockroachdb/errors"
	"github.com/stretchr/testify/require"
)

func envOf(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestConfigParseValid(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/valid.yaml")
	require.NoError(t, err)
	cfg, diags, err := observers.ParseWithEnv("valid.yaml", data, envOf(map[string]string{
		"TEST_HOOK_URL": "https://example.com/x", "TEST_HOOK_SECRET": "s",
	}))
	require.NoError(t, err)
	require.Empty(t, diags)

	require.Equal(t, observers.ListenerConfig{ID: "orders", Table: observers.ListenerTableDefault, BatchSize: 100, PollInterval: time.Second,
		BatchBytes: observers.ListenerBatchBytesDefault, MaxEventBytes: observers.ListenerMaxEventBytesDefault, BatchTimeout: observers.ListenerBatchTimeoutDefault}, cfg.Listener)
	require.True(t, cfg.AllowPrivateTargets)
	require.Equal(t, observers.WorkersConfig{MaxWorkers: observers.WorkersMaxWorkersDefault, FetchCooldown: observers.WorkersFetchCooldownDefault, FetchPollInterval: time.Second}, cfg.Workers)
	require.Equal(t, data, cfg.Source)
	require.Len(t, cfg.Hash, 64)
	require.Equal(t, "valid.yaml", cfg.Filename)

	var names []string
	for _, o := range cfg.Observers {
		names = append(names, o.Name)
	}
	require.Equal(t, []string{"all_changes", "order_created", "user_deleted"}, names, "sorted by name")

	o := cfg.Observer("order_created")
	require.NotNil(t, o)
	require.Nil(t, cfg.Observer("nope"))
	require.Equal(t, "Order", o.Entity)
	require.Equal(t, []observers.Kind{observers.KindInsert}, o.Events, "insert and created are one kind")
	require.Equal(t, "status == 'new' && total > 100", o.Condition.Source())
	require.Equal(t, observers.RetryPolicy{MaxAttempts: 3, InitialDelay: 2 * time.Second, MaxDelay: time.Minute, BackoffStrategy: observers.BackoffLinear}, o.Retry)
	require.Len(t, o.Actions, 2)

	w := o.Actions[0].(*webhook.Action)
	require.Equal(t, webhook.Name, o.Actions[0].Type())
	require.Equal(t, "https://example.com/hooks/orders", w.URL)
	require.Equal(t, map[string]string{"X-Source": "fraiseql", "Authorization": "Bearer top-secret-token"}, w.Headers)
	require.Equal(t, "POST", w.Method)
	require.Equal(t, 30*time.Second, w.Timeout)
	require.Equal(t, webhook.SignatureStandard, w.Signature)
	require.NotNil(t, w.Body())
	require.Equal(t, `{"id": "7", "status": "new"}`, rendered(t, w.Body(), map[string]any{"id": 7.0, "status": "new"}, true))

	w2 := o.Actions[1].(*webhook.Action)
	require.Equal(t, "TEST_HOOK_URL", w2.URLEnv)
	require.Equal(t, "PUT", w2.Method)
	require.Equal(t, 5*time.Second, w2.Timeout)
	require.Equal(t, webhook.SignatureFraiseQL, w2.Signature)
	require.Nil(t, w2.Body())

	all := cfg.Observer("all_changes")
	require.Nil(t, all.Condition)
	require.Equal(t, observers.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Second, MaxDelay: 5 * time.Minute, BackoffStrategy: observers.BackoffExponential}, all.Retry)
}

func TestConfigHashIsContentIdentity(t *testing.T) {
	t.Parallel()
	src := []byte("observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: webhook, url: 'https://a.example/'}]\n")
	a, _, err := observers.Parse("a.yaml", src)
	require.NoError(t, err)
	b, _, err := observers.Parse("b.yaml", src)
	require.NoError(t, err)
	c, _, err := observers.Parse("a.yaml", append(src, []byte("# changed\n")...))
	require.NoError(t, err)
	require.Equal(t, a.Hash, b.Hash)
	require.NotEqual(t, a.Hash, c.Hash)
}

func TestConfigUnsetEnvIsWarning(t *testing.T) {
	t.Parallel()
	src := []byte(`observers:
  o:
    entity: A
    events: [INSERT]
    actions:
      - type: webhook
        url_env: HOOK_URL
        signing_secret_env: HOOK_SECRET
`)
	cfg, diags, err := observers.ParseWithEnv("w.yaml", src, envOf(nil))
	require.NoError(t, err)
	require.NotNil(t, cfg)
	require.False(t, diags.HasErrors())
	require.Len(t, diags, 2)
	require.Equal(t, "w.yaml:7:18: warning: environment variable HOOK_URL (url_env) is not set", firstLine(diags[0].String()))
	require.Equal(t, "w.yaml:8:29: warning: environment variable HOOK_SECRET (signing_secret_env) is not set", firstLine(diags[1].String()))
	require.Equal(t, observers.SeverityWarning, diags[0].Severity)

	err = cfg.Resolve(envOf(map[string]string{"HOOK_SECRET": "whsec_x"}))
	require.Error(t, err)
	require.Contains(t, err.Error(), `observer "o" actions[0] (webhook)`)
	require.Contains(t, err.Error(), "HOOK_URL")
	require.NotContains(t, err.Error(), "whsec_x")
	require.NotEmpty(t, errors.GetAllHints(err))

	getenv := envOf(map[string]string{"HOOK_URL": "https://h.example/x", "HOOK_SECRET": "whsec_x"})
	require.NoError(t, cfg.Resolve(getenv))
	w := cfg.Observers[0].Actions[0].(*webhook.Action)
	u, err := w.ResolvedURL(getenv)
	require.NoError(t, err)
	require.Equal(t, "https://h.example/x", u)
	s, err := w.ResolvedSecret(getenv)
	require.NoError(t, err)
	require.Equal(t, "whsec_x", s)

	_, err = w.ResolvedURL(envOf(map[string]string{"HOOK_URL": "not a url"}))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "not a url")
}

func TestConfigResolvedSecretNone(t *testing.T) {
	t.Parallel()
	w := &webhook.Action{URL: "https://x.example/"}
	s, err := w.ResolvedSecret(envOf(nil))
	require.NoError(t, err)
	require.Empty(t, s)
	w.SigningSecret = "lit"
	s, err = w.ResolvedSecret(envOf(nil))
	require.NoError(t, err)
	require.Equal(t, "lit", s)
}

func TestConfigInvalidFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			wants := WantDiagnostics(t, path)
			cfg, diags, err := observers.LoadConfig(context.Background(), path, observers.LoadOptions{})
			require.Error(t, err)
			require.Nil(t, cfg)
			require.True(t, diags.HasErrors())
			var got []string
			for _, d := range diags.Errors() {
				got = append(got, d.String())
			}
			require.Len(t, got, len(wants), "diagnostics: %s", strings.Join(got, "\n"))
			for i, w := range wants {
				require.True(t, strings.HasPrefix(got[i], path+":"+w), "want prefix %q, got %q", path+":"+w, got[i])
			}
			require.Contains(t, err.Error(), firstLine(got[0]))
			require.NotEmpty(t, errors.GetAllHints(err))
		})
	}
}

// WantDiagnostics reads the "# want: line:col: message" lines at the top of
// a testdata file.
func WantDiagnostics(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var wants []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			wants = append(wants, w)
		}
	}
	require.NotEmpty(t, wants, "%s has no # want: line", path)
	return wants
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func TestConfigDiagnosticDetails(t *testing.T) {
	t.Parallel()
	_, diags, err := observers.Parse("x.yaml", []byte("listener:\n  batchsize: 5\n"))
	require.Error(t, err)
	require.Equal(t, `x.yaml:2:3: unknown key "batchsize" in listener
  hint: did you mean "batch_size"? valid keys: id, table, batch_size, poll_interval, batch_bytes, max_event_bytes, batch_timeout`, diags.Errors()[0].String())

	_, diags, err = observers.Parse("x.yaml", []byte("observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: webhok, url: 'https://a/'}]\n"))
	require.Error(t, err)
	require.Contains(t, diags[0].Hint, `did you mean "webhook"?`)

	_, diags, err = observers.Parse("empty.yaml", []byte("# nothing\n"))
	require.Error(t, err)
	require.Equal(t, "empty.yaml:1:1: the configuration file is empty", firstLine(diags[0].String()))
}

func TestConfigAnchorsAndMergeKeys(t *testing.T) {
	t.Parallel()
	src := []byte(`observers:
  a:
    entity: A
    events: [INSERT]
    actions:
      - &hook
        type: webhook
        url: https://a.example/
        timeout: 3s
  b:
    entity: B
    events: [UPDATE]
    actions:
      - <<: *hook
        url: https://b.example/
`)
	cfg, diags, err := observers.Parse("m.yaml", src)
	require.NoError(t, err, "%v", diags)
	b := cfg.Observer("b").Actions[0].(*webhook.Action)
	require.Equal(t, "https://b.example/", b.URL)
	require.Equal(t, 3*time.Second, b.Timeout)
}

func TestRetryPolicyDelay(t *testing.T) {
	t.Parallel()
	exp := observers.RetryPolicy{InitialDelay: time.Second, MaxDelay: 10 * time.Second, BackoffStrategy: observers.BackoffExponential}
	lin := observers.RetryPolicy{InitialDelay: 2 * time.Second, MaxDelay: 7 * time.Second, BackoffStrategy: observers.BackoffLinear}
	fix := observers.RetryPolicy{InitialDelay: 3 * time.Second, MaxDelay: time.Minute, BackoffStrategy: observers.BackoffFixed}
	for _, tc := range []struct {
		p       observers.RetryPolicy
		attempt int
		want    time.Duration
	}{
		{exp, 0, time.Second},
		{exp, 1, time.Second},
		{exp, 2, 2 * time.Second},
		{exp, 3, 4 * time.Second},
		{exp, 4, 8 * time.Second},
		{exp, 5, 10 * time.Second},
		{exp, 500, 10 * time.Second},
		{lin, 1, 2 * time.Second},
		{lin, 3, 6 * time.Second},
		{lin, 4, 7 * time.Second},
		{fix, 1, 3 * time.Second},
		{fix, 9, 3 * time.Second},
		{observers.RetryPolicy{InitialDelay: time.Hour, BackoffStrategy: observers.BackoffExponential}, 100, time.Duration(1<<63 - 1)},
	} {
		require.Equal(t, tc.want, tc.p.Delay(tc.attempt), "%s attempt %d", tc.p.BackoffStrategy, tc.attempt)
	}
}

func TestConfigCircuitBreaker(t *testing.T) {
	t.Parallel()
	src := []byte(`circuit_breaker:
  failure_threshold: 0.25
  timeout: 10s
  min_requests: 4
observers:
  o:
    entity: A
    events: [INSERT]
    actions:
      - type: webhook
        url: https://a.example/
      - type: webhook
        url: https://b.example/
        circuit_breaker: {timeout: 2s, success_threshold: 1, sample_size: 50}
      - type: webhook
        url: https://c.example/
        circuit_breaker:
          enabled: false
`)
	cfg, diags, err := observers.Parse("cb.yaml", src)
	require.NoError(t, err, "%v", diags)
	global := observers.CircuitBreakerConfig{FailureThreshold: 0.25, SuccessThreshold: 0.8, Timeout: 10 * time.Second,
		SampleSize: 100, MinRequests: 4, Window: time.Minute, Scope: observers.ScopeEndpoint}
	require.Equal(t, global, cfg.CircuitBreaker)
	acts := cfg.Observer("o").Actions
	require.Equal(t, global, acts[0].(*webhook.Action).CircuitBreaker, "inherits the top level")
	want := global
	want.Timeout, want.SuccessThreshold, want.SampleSize = 2*time.Second, 1, 50
	require.Equal(t, want, acts[1].(*webhook.Action).CircuitBreaker, "overrides field by field")
	want = global
	want.Disabled = true
	require.Equal(t, want, acts[2].(*webhook.Action).CircuitBreaker)

	cfg, _, err = observers.Parse("none.yaml", []byte("observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: webhook, url: 'https://a/'}]\n"))
	require.NoError(t, err)
	require.Equal(t, observers.CircuitBreakerConfig{}.WithDefaults(), cfg.Observer("o").Actions[0].(*webhook.Action).CircuitBreaker)
	require.False(t, cfg.CircuitBreaker.Disabled, "enabled by default")
}

func TestConfigCircuitBreakerErrors(t *testing.T) {
	t.Parallel()
	action := "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions:\n      - type: webhook\n        url: https://a/\n        circuit_breaker: "
	for src, want := range map[string]string{
		"circuit_breaker: {failure_threshold: 1.5}\n":            "x.yaml:1:38: circuit_breaker.failure_threshold must be greater than 0 and at most 1, got 1.5",
		"circuit_breaker: {success_threshold: 0}\n":              "x.yaml:1:38: circuit_breaker.success_threshold must be greater than 0 and at most 1, got 0",
		"circuit_breaker: {failure_threshold: high}\n":           "x.yaml:1:38: circuit_breaker.failure_threshold must be a number, got a string",
		"circuit_breaker: {timeout: 30}\n":                       "x.yaml:1:28: circuit_breaker.timeout: 30 has no unit",
		"circuit_breaker: {enabled: yes please}\n":               "x.yaml:1:28: circuit_breaker.enabled must be true or false, got a string",
		"circuit_breaker: {min_requests: 0}\n":                   "x.yaml:1:33: circuit_breaker.min_requests must be positive, got 0",
		"circuit_breaker: {treshold: 0.5}\n":                     `x.yaml:1:19: unknown key "treshold" in circuit_breaker`,
		"circuit_breaker: {min_requests: 20, sample_size: 10}\n": "x.yaml:1:1: circuit_breaker: min_requests (20) is larger than sample_size (10); the breaker could never open",
		action + "{sample_size: 5}\n":                            "x.yaml:8:9: observers.o.actions[0].circuit_breaker: min_requests (10) is larger than sample_size (5); the breaker could never open",
		action + "{timeout: -1s}\n":                              "x.yaml:8:36: observers.o.actions[0].circuit_breaker.timeout must be positive, got -1s",
	} {
		_, diags, err := observers.Parse("x.yaml", []byte(src))
		require.Error(t, err, src)
		require.NotEmpty(t, diags.Errors(), src)
		require.Equal(t, want, firstLine(diags.Errors()[0].String()), src)
	}
}

func TestConfigActionTypes(t *testing.T) {
	t.Parallel()
	src := []byte(`smtp:
  host: mail.example.com
  from: "Alerts <alerts@example.com>"
  username_env: SMTP_USER
  password_env: SMTP_PASS
observers:
  o:
    entity: Order
    events: [INSERT]
    actions:
      - type: slack
        webhook_url_env: SLACK_URL
        channel: "#orders"
        message_template: "Order {{ id }} by {{ customer.name }}"
      - type: email
        to: [ops@example.com, "Sales <sales@example.com>"]
        cc: audit@example.com
        subject_template: "Order {{ id }}"
        body_template: "Total {{ total }}"
        html_template: "<b>{{ total }}</b>"
        reply_to: support@example.com
      - type: database
        function_name: App.On_Order
        params: {priority: high, tags: [a, b], n: 3}
        timeout: 5s
      - type: log
        level: warn
        message_template: "seen {{ id }}"
      - type: email
        to_template: "{{ customer.email }}"
        subject: Hello
`)
	env := envOf(map[string]string{"SLACK_URL": "https://hooks.slack.com/services/T/B/X", "SMTP_USER": "u", "SMTP_PASS": "p"})
	cfg, diags, err := observers.ParseWithEnv("a.yaml", src, env)
	require.NoError(t, err, "%v", diags)
	require.Empty(t, diags)
	require.Equal(t, &observers.SMTPConfig{Host: "mail.example.com", Port: 587, From: "Alerts <alerts@example.com>",
		UsernameEnv: "SMTP_USER", PasswordEnv: "SMTP_PASS", TLS: observers.SMTPTLSStartTLS, Timeout: 30 * time.Second}, cfg.SMTP)
	require.NoError(t, cfg.Resolve(env))

	acts := cfg.Observers[0].Actions
	require.Len(t, acts, 5)
	s := acts[0].(*slack.Action)
	require.Equal(t, slack.Name, acts[0].Type())
	require.Equal(t, "SLACK_URL", s.WebhookURLEnv)
	require.Equal(t, 30*time.Second, s.Timeout)
	body, err := s.Payload(map[string]any{"id": 42.0, "customer": map[string]any{"name": `Ann "A" O'Neil` + "\n<x>"}})
	require.NoError(t, err)
	require.JSONEq(t, `{"text": "Order 42 by Ann \"A\" O'Neil\n<x>", "channel": "#orders"}`, string(body))

	e := acts[1].(*email.Action)
	require.Equal(t, []string{"<ops@example.com>", `"Sales" <sales@example.com>`}, e.To)
	require.Equal(t, []string{"<audit@example.com>"}, e.Cc)
	require.Equal(t, "support@example.com", e.ReplyTo)

	d := acts[2].(*database.Action)
	require.Equal(t, `"app"."on_order"`, d.QuotedName())
	require.Equal(t, 5*time.Second, d.Timeout)
	require.Equal(t, "high", d.Params["priority"])
	require.Len(t, d.Params["tags"], 2)

	g := acts[3].(*log.Action)
	require.Equal(t, log.LevelWarn, g.Level)
	require.Equal(t, "seen 7", rendered(t, g.Message(), map[string]any{"id": 7.0}, false))

	require.Equal(t, "{{ customer.email }}", acts[4].(*email.Action).ToTemplate)
	require.Equal(t, "Hello", acts[4].(*email.Action).Subject)

	// Unset secrets are warnings for validate-config and errors for run.
	_, diags, err = observers.ParseWithEnv("a.yaml", src, envOf(nil))
	require.NoError(t, err)
	var warned []string
	for _, d := range diags.Warnings() {
		warned = append(warned, firstLine(d.String()))
	}
	require.Equal(t, []string{
		"a.yaml:4:17: warning: environment variable SMTP_USER (smtp.username_env) is not set",
		"a.yaml:5:17: warning: environment variable SMTP_PASS (smtp.password_env) is not set",
		"a.yaml:12:26: warning: environment variable SLACK_URL (webhook_url_env) is not set",
	}, warned)
	err = cfg.Resolve(envOf(nil))
	require.Error(t, err)
	require.Contains(t, err.Error(), "SMTP_USER")
	require.Contains(t, err.Error(), `observer "o" actions[0] (slack)`)
}

func TestConfigActionDefaults(t *testing.T) {
	t.Parallel()
	src := []byte(`smtp: {host: localhost, from: a@example.com, tls: tls}
observers:
  o:
    entity: Order
    events: [INSERT]
    actions:
      - {type: slack, webhook_url: "https://hooks.slack.com/services/T/B/X"}
      - {type: email, to: ops@example.com}
      - {type: database, function_name: notify}
      - {type: log}
`)
	cfg, _, err := observers.ParseWithEnv("d.yaml", src, envOf(nil))
	require.NoError(t, err)
	require.Equal(t, observers.SMTPPortImplicit, cfg.SMTP.Port, "tls: tls defaults to port 465")
	ev := &observers.Event{Seq: 3, ID: "e1", Kind: observers.KindInsert, EntityType: "Order", EntityID: "42", Data: map[string]any{}}
	acts := cfg.Observers[0].Actions
	body, err := acts[0].(*slack.Action).Payload(observers.TemplateData(ev))
	require.NoError(t, err)
	require.JSONEq(t, `{"text": "Order 42 INSERT"}`, string(body))
	msg, err := acts[1].(*email.Action).Render(ev, "o")
	require.NoError(t, err)
	require.Equal(t, "Order 42 INSERT", msg.Subject)
	require.Contains(t, msg.Text, `"entity_type": "Order"`, "the default body is the envelope")
	require.Empty(t, msg.HTML)
	require.Equal(t, `"notify"`, acts[2].(*database.Action).QuotedName())
	require.Equal(t, database.TimeoutDefault, acts[2].(*database.Action).Timeout)
	require.Equal(t, log.LevelInfo, acts[3].(*log.Action).Level)
	require.Equal(t, "Order 42 INSERT", rendered(t, acts[3].(*log.Action).Message(), observers.TemplateData(ev), false))
}

func TestConfigActionErrors(t *testing.T) {
	t.Parallel()
	obs := func(actions string) string {
		return "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions:\n" + actions
	}
	for _, tc := range []struct {
		name, src string
		want      []string // first lines of the error diagnostics
		hint      string   // in the first diagnostic's hint
	}{
		{"sms", obs("      - type: sms\n"),
			[]string{`x.yaml:6:15: unknown action type "sms"`}, "valid action types: cache, database, email, log, search, slack, webhook"},
		{"push", obs("      - type: push\n"),
			[]string{`x.yaml:6:15: unknown action type "push"`}, "cache, database, email, log, search, slack, webhook"},
		{"slack typo", obs("      - type: slak\n"),
			[]string{`x.yaml:6:15: unknown action type "slak"`}, `did you mean "slack"?`},
		{"slack no url", obs("      - type: slack\n        channel: x\n"),
			[]string{"x.yaml:6:7: observers.o.actions[0]: slack needs webhook_url or webhook_url_env"}, "webhook_url_env"},
		{"slack both urls", obs("      - type: slack\n        webhook_url: https://h.example/a\n        webhook_url_env: X\n"),
			[]string{"x.yaml:8:9: observers.o.actions[0]: webhook_url and webhook_url_env are both set"}, ""},
		{"slack unknown key", obs("      - type: slack\n        webhook_url: https://h.example/a\n        mesage_template: x\n"),
			[]string{`x.yaml:8:9: unknown key "mesage_template" in observers.o.actions[0]`}, `did you mean "message_template"?`},
		{"slack bad template", obs("      - type: slack\n        webhook_url: https://h.example/a\n        message_template: 'a {{ b'\n"),
			[]string{`x.yaml:8:27: invalid message_template: unclosed "{{" at offset 2`}, "placeholders"},
		{"email without smtp", obs("      - type: email\n        to: a@example.com\n"),
			[]string{"x.yaml:6:7: email actions need a top-level smtp: block"}, "smtp:"},
		{"email smtp without from", "smtp: {host: h}\n" + obs("      - type: email\n        to: a@example.com\n"),
			[]string{"x.yaml:1:1: smtp.from is required when an email action exists"}, "from:"},
		{"email no to", "smtp: {host: h, from: a@example.com}\n" + obs("      - type: email\n        subject: x\n"),
			[]string{"x.yaml:7:7: observers.o.actions[0]: email needs to or to_template"}, "to_template"},
		{"email bad address", "smtp: {host: h, from: a@example.com}\n" + obs("      - type: email\n        to: [ok@example.com, 'not an address']\n"),
			[]string{`x.yaml:8:30: observers.o.actions[0].to: "not an address" is not an email address`}, ""},
		{"email empty to", "smtp: {host: h, from: a@example.com}\n" + obs("      - type: email\n        to: []\n"),
			[]string{"x.yaml:7:7: observers.o.actions[0]: email needs to or to_template"}, ""},
		{"smtp timeout too long", "smtp: {host: h, from: a@example.com, timeout: 2m}\n" + obs("      - type: log\n"),
			[]string{"x.yaml:1:47: smtp.timeout (2m0s) is longer than 50s"}, ""},
		{"email both subjects", "smtp: {host: h, from: a@example.com}\n" + obs("      - type: email\n        to: a@b.c\n        subject: x\n        subject_template: y\n"),
			[]string{"x.yaml:10:9: observers.o.actions[0]: subject and subject_template are both set"}, ""},
		{"smtp bad tls", "smtp: {host: h, from: a@example.com, tls: ssl}\n" + obs("      - type: log\n"),
			[]string{`x.yaml:1:43: unknown smtp.tls mode "ssl"`}, "starttls"},
		{"smtp unknown key", "smtp: {hots: h}\n" + obs("      - type: log\n"),
			[]string{`x.yaml:1:8: unknown key "hots" in smtp`}, `did you mean "host"?`},
		{"smtp username without password", "smtp:\n  host: h\n  from: a@b.c\n  username_env: U\n" + obs("      - type: log\n"),
			[]string{"x.yaml:1:1: smtp: username_env and password_env go together"}, ""},
		{"database injection", obs("      - type: database\n        function_name: 'f(); DROP TABLE x; --'\n"),
			[]string{`x.yaml:7:24: observers.o.actions[0].function_name "f(); DROP TABLE x; --" is not a function name`}, "schema-qualified"},
		{"database three parts", obs("      - type: database\n        function_name: a.b.c\n"),
			[]string{`x.yaml:7:24: observers.o.actions[0].function_name "a.b.c" is not a function name`}, ""},
		{"database quoted", obs("      - type: database\n        function_name: '\"Fn\"'\n"),
			[]string{`x.yaml:7:24: observers.o.actions[0].function_name "\"Fn\"" is not a function name`}, ""},
		{"database no name", obs("      - type: database\n        params: {a: 1}\n"),
			[]string{"x.yaml:6:7: observers.o.actions[0]: database action needs function_name"}, ""},
		{"database params not a map", obs("      - type: database\n        function_name: f\n        params: [1]\n"),
			[]string{"x.yaml:8:17: observers.o.actions[0].params must be a mapping, got a list"}, ""},
		{"log bad level", obs("      - type: log\n        level: loud\n"),
			[]string{`x.yaml:7:16: unknown log level "loud"`}, "debug, info, warn, error"},
		{"database timeout too long", obs("      - type: database\n        function_name: f\n        timeout: 5m\n"),
			[]string{"x.yaml:8:18: observers.o.actions[0].timeout (5m0s) is longer than 50s"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags, err := observers.ParseWithEnv("x.yaml", []byte(tc.src), envOf(map[string]string{"X": "https://h.example/"}))
			require.Error(t, err)
			var got []string
			for _, d := range diags.Errors() {
				got = append(got, firstLine(d.String()))
			}
			require.Equal(t, tc.want, got)
			require.Contains(t, diags.Errors()[0].Hint, tc.hint)
		})
	}
}

func TestConfigCircuitBreakerBackend(t *testing.T) {
	t.Parallel()
	const obs = "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: webhook, url: 'https://a/'}]\n"
	cfg, diags, err := observers.Parse("none.yaml", []byte(obs))
	require.NoError(t, err, "%v", diags)
	require.Equal(t, observers.BackendPostgres, cfg.CircuitBreakerBackend, "postgres by default")

	cfg, diags, err = observers.Parse("redis.yaml", []byte("redis: {url: 'redis://127.0.0.1:6379/0'}\ncircuit_breaker: {backend: Redis, timeout: 5s}\n"+obs))
	require.NoError(t, err, "%v", diags)
	require.Empty(t, diags)
	require.Equal(t, observers.BackendRedis, cfg.CircuitBreakerBackend)
	require.Equal(t, 5*time.Second, cfg.Observer("o").Actions[0].(*webhook.Action).CircuitBreaker.Timeout, "the other fields still apply")

	action := "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions:\n      - type: webhook\n        url: https://a/\n        circuit_breaker: "
	for src, want := range map[string]string{
		"circuit_breaker: {backend: redis}\n" + obs:     "x.yaml:1:28: circuit_breaker.backend is redis but redis.url is not set",
		"circuit_breaker: {backend: memcached}\n" + obs: `x.yaml:1:28: unknown circuit_breaker.backend "memcached"`,
		action + "{backend: postgres}\n":                "x.yaml:8:27: observers.o.actions[0].circuit_breaker.backend: the state store is chosen once, for every breaker",
	} {
		_, diags, err := observers.Parse("x.yaml", []byte(src))
		require.Error(t, err, src)
		require.NotEmpty(t, diags.Errors(), src)
		require.Equal(t, want, firstLine(diags.Errors()[0].String()), src)
	}
}

func TestConfigConcurrency(t *testing.T) {
	t.Parallel()
	const obs = "observers:\n  o:\n    entity: A\n    events: [INSERT]\n    actions: [{type: log}]\n"
	for _, tc := range []struct {
		name, src string
		want      observers.ConcurrencyConfig
		email     int
	}{
		{"defaults", obs, observers.ConcurrencyConfig{MaxParallelism: observers.ConcurrencyMaxParallelismDefault, DeliveriesPerJob: observers.ConcurrencyDeliveriesPerJobDefault}, email.MaxParallelismDefault},
		{"workers alias", "workers: {max_workers: 50}\n" + obs, observers.ConcurrencyConfig{MaxParallelism: 50, DeliveriesPerJob: observers.ConcurrencyDeliveriesPerJobDefault}, email.MaxParallelismDefault},
		{"both, equal", "workers: {max_workers: 50}\nconcurrency: {max_parallelism: 50}\n" + obs, observers.ConcurrencyConfig{MaxParallelism: 50, DeliveriesPerJob: observers.ConcurrencyDeliveriesPerJobDefault}, email.MaxParallelismDefault},
		{"small", "concurrency: {max_parallelism: 8}\n" + obs, observers.ConcurrencyConfig{MaxParallelism: 8, DeliveriesPerJob: observers.ConcurrencyDeliveriesPerJobDefault}, 8},
		{"one delivery per job", "concurrency: {deliveries_per_job: 1}\n" + obs, observers.ConcurrencyConfig{MaxParallelism: observers.ConcurrencyMaxParallelismDefault, DeliveriesPerJob: 1}, email.MaxParallelismDefault},
		{"queues", "concurrency:\n  max_parallelism: 300\n  queues: {Email: 40, webhook: 300}\n" + obs,
			observers.ConcurrencyConfig{MaxParallelism: 300, Queues: map[string]int{"email": 40, "webhook": 300}, DeliveriesPerJob: observers.ConcurrencyDeliveriesPerJobDefault}, 40},
	} {
		cfg, diags, err := observers.Parse("x.yaml", []byte(tc.src))
		require.NoError(t, err, "%s: %v", tc.name, diags)
		require.Equal(t, withInFlightDefault(tc.want), cfg.Concurrency, tc.name)
		require.Equal(t, tc.want.MaxParallelism, cfg.Workers.MaxWorkers, "%s: workers.max_workers follows", tc.name)
		require.Equal(t, tc.email, cfg.Concurrency.MaxWorkers(email.Name), tc.name)
		require.Equal(t, cfg.Concurrency.MaxParallelism, cfg.Concurrency.MaxWorkers(slack.Name), tc.name)
	}

	for src, want := range map[string]string{
		"workers: {max_workers: 50}\nconcurrency: {max_parallelism: 60}\n": "x.yaml:2:32: concurrency.max_parallelism (60) and workers.max_workers (50) differ",
		"concurrency: {max_parallelism: 0}\n":                              "x.yaml:1:32: concurrency.max_parallelism must be positive, got 0",
		"concurrency: {max_parallelism: 20000}\n":                          "x.yaml:1:32: concurrency.max_parallelism (20000) is more than River's 10000 workers per queue",
		"workers: {max_workers: 20000}\n":                                  "x.yaml:1:1: workers.max_workers (20000) is more than River's 10000 workers per queue",
		"concurrency: {max_paralelism: 5}\n":                               `x.yaml:1:15: unknown key "max_paralelism" in concurrency`,
		"concurrency: {queues: {sms: 5}}\n":                                `x.yaml:1:24: unknown action type "sms" in concurrency.queues`,
		"concurrency: {queues: {email: many}}\n":                           "x.yaml:1:31: concurrency.queues.email must be an integer, got a string",
		"concurrency:\n  max_parallelism: 10\n  queues: {webhook: 11}\n":   "x.yaml:3:21: concurrency.queues.webhook (11) is more than max_parallelism (10)",
		"concurrency: [1]\n":                                               "x.yaml:1:14: concurrency must be a mapping, got a list",
		"concurrency: {deliveries_per_job: 5000}\n":                        "x.yaml:1:35: concurrency.deliveries_per_job (5000) is more than 1000",
		"concurrency: {deliveries_per_job: 0}\n":                           "x.yaml:1:35: concurrency.deliveries_per_job must be positive, got 0",
	} {
		_, diags, err := observers.Parse("x.yaml", []byte(src+obs))
		require.Error(t, err, src)
		require.NotEmpty(t, diags.Errors(), src)
		require.Equal(t, want, firstLine(diags.Errors()[0].String()), src)
	}
	_, diags, _ := observers.Parse("x.yaml", []byte("concurrency: {queues: {emial: 5}}\n"+obs))
	require.Contains(t, diags.Errors()[0].Hint, `did you mean "email"?`)
	_, diags, _ = observers.Parse("x.yaml", []byte("workers: {max_workers: 50}\nconcurrency: {max_parallelism: 60}\n"+obs))
	require.Contains(t, diags.Errors()[0].Hint, "older name")
}

package observers_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// The admin: block: a bearer token and/or basic auth from variables,
// River UI on and read-only by default; the schema accepts the same.
func TestConfigAdmin(t *testing.T) {
	t.Parallel()
	s := compileSchema(t)
	for src, want := range map[string]observers.AdminConfig{
		"":                                  {RiverUI: true},
		"admin: {token_env: ADMIN_TOKEN}\n": {TokenEnv: "ADMIN_TOKEN", RiverUI: true},
		"admin:\n  basic_auth: {username: ops, password_env: ADMIN_PASSWORD}\n  riverui_write: true\n": {
			BasicAuth: &observers.AdminBasicAuth{Username: "ops", PasswordEnv: "ADMIN_PASSWORD"}, RiverUI: true, RiverUIWrite: true},
		"admin: {riverui: false}\n": {},
	} {
		cfg, diags, err := observers.Parse("a.yaml", []byte(src+retentionObs))
		require.NoError(t, err, "%s: %v", src, diags)
		require.Equal(t, want, cfg.Admin, src)
		require.NoError(t, schemaValidate(t, s, []byte(src+retentionObs)), "the schema accepts it: %s", src)
	}
	creds, err := observers.AdminConfig{TokenEnv: "T", BasicAuth: &observers.AdminBasicAuth{Username: "ops", PasswordEnv: "P"}}.
		ResolvedCredentials(func(k string) (string, bool) { return map[string]string{"T": "tok", "P": "pw"}[k], true })
	require.NoError(t, err)
	require.Equal(t, observers.AdminCredentials{Token: "tok", Username: "ops", Password: "pw"}, creds)
	_, err = observers.AdminConfig{TokenEnv: "T"}.ResolvedCredentials(func(string) (string, bool) { return "", false })
	require.EqualError(t, err, "environment variable T (admin.token_env) is not set")
}

// Mistakes are reported at their place with a hint; writes without
// credentials are a warning.
func TestConfigAdminErrors(t *testing.T) {
	t.Parallel()
	s := compileSchema(t)
	for src, want := range map[string]struct{ msg, hint string }{
		"admin: {tokenenv: X}\n":                                    {`x.yaml:1:9: unknown key "tokenenv" in admin`, `did you mean "token_env"?`},
		"admin: {token_env: 'my secret'}\n":                         {`x.yaml:1:20: admin.token_env must name an environment variable, got "my secret"`, "the variable's name"},
		"admin: {basic_auth: {username: ops}}\n":                    {"x.yaml:1:9: admin.basic_auth needs username and password_env", "password_env: ADMIN_PASSWORD"},
		"admin: {riverui_write: yes please}\n":                      {"x.yaml:1:24: admin.riverui_write must be true or false, got a string", ""},
		"admin: {basic_auth: {username: 'a:b', password_env: P}}\n": {"x.yaml:1:32: admin.basic_auth.username must not contain a colon", "colon"},
	} {
		_, diags, err := observers.Parse("x.yaml", []byte(src+retentionObs))
		require.Error(t, err, src)
		d := diags.Errors()[0]
		require.Equal(t, want.msg, firstLine(d.String()), src)
		require.Contains(t, d.Hint, want.hint, src)
		if src != "admin: {basic_auth: {username: 'a:b', password_env: P}}\n" {
			require.Error(t, schemaValidate(t, s, []byte(src+retentionObs)), "the schema rejects it too: %s", src)
		}
	}
	_, diags, err := observers.Parse("w.yaml", []byte("admin: {riverui_write: true}\n"+retentionObs))
	require.NoError(t, err)
	require.Len(t, diags.Warnings(), 1)
	require.Contains(t, diags.Warnings()[0].String(), "w.yaml:1:1: warning: admin.riverui_write is true but the admin server asks for no credentials")
}

package observers

// Decoding of the admin: block (config_decode.go holds the rest of the
// loader). The daemon's admin server (daemon/admin.go) enforces it.

import (
	"fmt"
	"strings"

	"github.com/cockroachdb/errors"
)

var (
	adminKeys     = []string{"token_env", "basic_auth", "riverui", "riverui_write"}
	basicAuthKeys = []string{"username", "password_env"}
)

// AdminConfig is the admin: block: who may use the admin HTTP server
// (everything but /healthz: /readyz, /metrics, /debug/pprof/ and River UI
// at /riverui/) and what River UI may change. With neither TokenEnv nor
// BasicAuth set the server is open (it binds to loopback by default).
type AdminConfig struct {
	// TokenEnv names the variable holding a bearer token
	// (Authorization: Bearer <token>); "" for none.
	TokenEnv string
	// BasicAuth is the basic_auth: block; nil for none. A request may use
	// either credential when both are set.
	BasicAuth *AdminBasicAuth
	// RiverUI serves River UI at /riverui/; default true.
	RiverUI bool
	// RiverUIWrite lets River UI cancel, retry and delete jobs and pause
	// queues; default false (River UI is read-only: its API answers 403 to
	// anything but GET and HEAD).
	RiverUIWrite bool
}

// AdminBasicAuth is admin.basic_auth: a user name and the variable holding
// the password (never logged or printed).
type AdminBasicAuth struct {
	Username    string
	PasswordEnv string
}

// AuthEnabled reports whether the admin server asks for credentials.
func (c AdminConfig) AuthEnabled() bool { return c.TokenEnv != "" || c.BasicAuth != nil }

// AdminCredentials are the admin server's credentials read from the
// environment; empty fields are not accepted.
type AdminCredentials struct {
	Token    string
	Username string
	Password string
}

// ResolvedCredentials reads the token and the password from the
// environment at call time. The error names the variable, never its value.
func (c AdminConfig) ResolvedCredentials(getenv func(string) (string, bool)) (AdminCredentials, error) {
	var out AdminCredentials
	var err error
	if c.TokenEnv != "" {
		if out.Token, err = lookupSet(getenv, c.TokenEnv, "admin.token_env"); err != nil {
			return AdminCredentials{}, err
		}
	}
	if c.BasicAuth != nil {
		out.Username = c.BasicAuth.Username
		if out.Password, err = lookupSet(getenv, c.BasicAuth.PasswordEnv, "admin.basic_auth.password_env"); err != nil {
			return AdminCredentials{}, err
		}
	}
	return out, nil
}

func (l *loader) adminBlock(e entry) AdminConfig {
	c := AdminConfig{RiverUI: true}
	fields, _ := l.mapping(e.value, e.keyN, "admin", adminKeys)
	for _, f := range fields {
		switch f.key {
		case "token_env":
			c.TokenEnv = l.envName(f, "admin.token_env")
			if c.TokenEnv == "" {
				l.errorf(cmpNode(f.value, f.keyN), "admin.token_env is empty", "name the variable holding the bearer token, e.g. ADMIN_TOKEN")
			}
			l.warnUnsetEnv(f, c.TokenEnv, "admin.token_env")
		case "basic_auth":
			c.BasicAuth = l.basicAuth(f)
		case "riverui":
			c.RiverUI = l.boolean(f, "admin.riverui")
		case "riverui_write":
			c.RiverUIWrite = l.boolean(f, "admin.riverui_write")
		}
	}
	if c.RiverUIWrite && !c.AuthEnabled() {
		l.warnf(e.keyN, "admin.riverui_write is true but the admin server asks for no credentials",
			"anyone who reaches the admin address can cancel and delete jobs; set admin.token_env or admin.basic_auth")
	}
	return c
}

func (l *loader) basicAuth(e entry) *AdminBasicAuth {
	b := &AdminBasicAuth{}
	var passE *entry
	fields, _ := l.mapping(e.value, e.keyN, "admin.basic_auth", basicAuthKeys)
	for _, f := range fields {
		switch f.key {
		case "username":
			b.Username = strings.TrimSpace(l.str(f, "admin.basic_auth.username"))
			if strings.Contains(b.Username, ":") {
				l.errorf(f.value, "admin.basic_auth.username must not contain a colon", "basic auth separates the user name from the password with a colon")
			}
		case "password_env":
			passE, b.PasswordEnv = &f, l.envName(f, "admin.basic_auth.password_env")
		}
	}
	if b.Username == "" || b.PasswordEnv == "" {
		l.errorf(e.keyN, "admin.basic_auth needs username and password_env",
			"write username: ops and password_env: ADMIN_PASSWORD (the variable holding the password)")
	}
	if passE != nil {
		l.warnUnsetEnv(*passE, b.PasswordEnv, "admin.basic_auth.password_env")
	}
	return b
}

// lookupSet reads the variable name (named by the key where) and refuses
// it unset or empty. The error names the variable, never a value.
func lookupSet(getenv func(string) (string, bool), name, where string) (string, error) {
	v, ok := getenv(name)
	if !ok || v == "" {
		return "", errors.WithHint(errors.Newf("environment variable %s (%s) is not set", name, where),
			fmt.Sprintf("export %s before starting the observer", name))
	}
	return v, nil
}

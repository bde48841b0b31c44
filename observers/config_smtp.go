package observers

import (
	"cmp"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// SMTP defaults and TLS modes.
const (
	SMTPPortDefault    = 587 // 465 with tls: tls
	SMTPPortImplicit   = 465
	SMTPTimeoutDefault = 30 * time.Second

	SMTPTLSStartTLS = "starttls" // STARTTLS required (default)
	SMTPTLSImplicit = "tls"      // TLS from the first byte (SMTPS)
	SMTPTLSNone     = "none"     // plain text: only for a relay on a trusted network
)

var (
	smtpTLSModes = []string{SMTPTLSStartTLS, SMTPTLSImplicit, SMTPTLSNone}
	smtpKeys     = []string{"host", "port", "from", "username_env", "password_env", "tls", "timeout"}
)

// SMTPConfig is the top-level smtp: block that email actions send through
// (observers/action/email checks that it exists when an email action does).
type SMTPConfig struct {
	Host        string        // required when any email action exists
	Port        int           // default 587 (465 with tls: tls)
	From        string        // sender address; required when any email action exists
	UsernameEnv string        // environment variable holding the user name; empty: no AUTH
	PasswordEnv string        // environment variable holding the password (never logged or printed)
	TLS         string        // starttls (default), tls or none
	Timeout     time.Duration // connection and command timeout; default 30s
}

// ResolvedAuth returns the SMTP user name and password read from the
// environment at call time; both "" when no username_env is set. The error
// names the variable, never its value.
func (c *SMTPConfig) ResolvedAuth(getenv func(string) (string, bool)) (user, password string, err error) {
	if c.UsernameEnv == "" {
		return "", "", nil
	}
	vals := [2]string{}
	for i, v := range []struct{ name, key string }{{c.UsernameEnv, "username_env"}, {c.PasswordEnv, "password_env"}} {
		val, err := lookupSet(getenv, v.name, "smtp."+v.key) // config_admin.go
		if err != nil {
			return "", "", err
		}
		vals[i] = val
	}
	return vals[0], vals[1], nil
}

// DialPort returns the port to dial: Port, or the TLS mode's default.
func (c *SMTPConfig) DialPort() int {
	if c.Port != 0 {
		return c.Port
	}
	if c.TLS == SMTPTLSImplicit {
		return SMTPPortImplicit
	}
	return SMTPPortDefault
}

func (l *loader) smtp(e entry) *SMTPConfig {
	c := &SMTPConfig{}
	var userE, passE *entry
	fields, _ := l.mapping(e.value, e.keyN, "smtp", smtpKeys)
	for _, f := range fields {
		switch f.key {
		case "host":
			c.Host = strings.TrimSpace(l.str(f, "smtp.host"))
		case "port":
			c.Port = l.positiveInt(f, "smtp.port")
			if c.Port > 65535 {
				l.errorf(f.value, fmt.Sprintf("smtp.port %d is not a TCP port", c.Port), "use 587 (STARTTLS), 465 (tls) or 25")
				c.Port = 0
			}
		case "from":
			c.From = strings.TrimSpace(l.str(f, "smtp.from"))
			if c.From != "" {
				if _, err := mail.ParseAddress(c.From); err != nil {
					l.errorf(f.value, fmt.Sprintf("smtp.from %s is not an email address", QuoteShort(c.From)),
						`write an address: alerts@example.com or "Alerts <alerts@example.com>"`)
				}
			}
		case "username_env":
			userE, c.UsernameEnv = &f, l.envName(f, "smtp.username_env")
		case "password_env":
			passE, c.PasswordEnv = &f, l.envName(f, "smtp.password_env")
		case "tls":
			c.TLS = strings.ToLower(strings.TrimSpace(l.str(f, "smtp.tls")))
			if c.TLS != "" && !contains(smtpTLSModes, c.TLS) {
				l.errorf(f.value, fmt.Sprintf("unknown smtp.tls mode %s", QuoteShort(c.TLS)),
					"use starttls (default), tls (implicit TLS, port 465) or none")
				c.TLS = ""
			}
		case "timeout":
			c.Timeout = l.actionTimeout(f, "smtp")
		}
	}
	if (userE == nil) != (passE == nil) {
		l.errorf(e.keyN, "smtp: username_env and password_env go together", "set both, or neither for a relay without AUTH")
	}
	if userE != nil {
		l.warnUnsetEnv(*userE, c.UsernameEnv, "smtp.username_env")
	}
	if passE != nil {
		l.warnUnsetEnv(*passE, c.PasswordEnv, "smtp.password_env")
	}
	c.TLS = cmp.Or(c.TLS, SMTPTLSStartTLS)
	c.Port = cmp.Or(c.Port, c.DialPort())
	c.Timeout = cmpDuration(c.Timeout, SMTPTimeoutDefault)
	return c
}

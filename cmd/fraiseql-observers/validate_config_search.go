package main

import (
	"fmt"
	"io"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// esView shows the elasticsearch: block; it holds variable names, never
// the credentials themselves.
type esView struct {
	URL         string `json:"url"`
	Auth        string `json:"auth"` // none, api_key, basic
	APIKeyEnv   string `json:"api_key_env,omitempty"`
	UsernameEnv string `json:"username_env,omitempty"`
	PasswordEnv string `json:"password_env,omitempty"`
	CAFile      string `json:"ca_file,omitempty"`
}

func viewES(c *observers.ElasticsearchConfig) *esView {
	if c == nil {
		return nil
	}
	return &esView{URL: observers.RedactURL(c.URL), Auth: c.Auth(), APIKeyEnv: c.APIKeyEnv, UsernameEnv: c.UsernameEnv,
		PasswordEnv: c.PasswordEnv, CAFile: c.CAFile}
}

// searchView shows the search: block.
type searchView struct {
	Backend string `json:"backend"`
}

// auditView shows the audit: block with its defaults.
type auditView struct {
	Enabled       bool   `json:"enabled"`
	Backend       string `json:"backend"`
	Buffer        int    `json:"buffer"`
	BatchSize     int    `json:"batch_size"`
	FlushInterval string `json:"flush_interval"`
}

func viewAudit(c observers.AuditConfig) *auditView {
	return &auditView{Enabled: c.Enabled, Backend: c.Backend, Buffer: c.Buffer, BatchSize: c.BatchSize,
		FlushInterval: observers.ShortDuration(c.FlushInterval)}
}

// writeSearchDetailed prints the elasticsearch:, search: and audit: lines
// of --detailed.
func writeSearchDetailed(w io.Writer, cfg *observers.Config) {
	if ev := viewES(cfg.Elasticsearch); ev != nil {
		fmt.Fprintf(w, "elasticsearch: url=%s auth=%s", ev.URL, ev.Auth)
		switch {
		case ev.APIKeyEnv != "":
			fmt.Fprintf(w, " api_key_env=%s", ev.APIKeyEnv)
		case ev.UsernameEnv != "":
			fmt.Fprintf(w, " username_env=%s password_env=%s", ev.UsernameEnv, ev.PasswordEnv)
		}
		if ev.CAFile != "" {
			fmt.Fprintf(w, " ca_file=%s", ev.CAFile)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "search:   backend=%s\n", cfg.Search.Backend)
	a := viewAudit(cfg.Audit)
	if !a.Enabled {
		fmt.Fprintln(w, "audit:    off")
		return
	}
	fmt.Fprintf(w, "audit:    backend=%s buffer=%d batch_size=%d flush_interval=%s\n", a.Backend, a.Buffer, a.BatchSize, a.FlushInterval)
}

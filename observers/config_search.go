package observers

// Decoding of the elasticsearch:, search: and audit: blocks (config_decode.go
// holds the rest of the loader). The daemon opens the backends they name
// (daemon/stores.go); observers/audit records the trail.

import (
	"cmp"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// BackendElasticsearch is the search: and audit: backend kept in the
// elasticsearch: block's cluster.
const BackendElasticsearch = "elasticsearch"

var searchBackends = []string{BackendPostgres, BackendElasticsearch}

// Defaults and bounds of the audit: block.
const (
	// AuditBufferDefault is how many records wait for the writer before
	// new ones are dropped (and counted).
	AuditBufferDefault = 50_000
	AuditBufferMax     = 1_000_000
	// AuditBatchSizeDefault is the most records one write sends.
	AuditBatchSizeDefault = 5_000
	AuditBatchSizeMax     = 10_000
	// AuditFlushIntervalDefault is the longest a record waits for a full
	// batch.
	AuditFlushIntervalDefault = time.Second
	AuditFlushIntervalMax     = time.Minute
)

var (
	elasticsearchKeys = []string{"url", "api_key_env", "username_env", "password_env", "ca_file"}
	searchKeys        = []string{"backend"}
	auditKeys         = []string{"enabled", "backend", "buffer", "batch_size", "flush_interval"}
)

// ElasticsearchConfig is the top-level elasticsearch: block: the cluster
// the search: and audit: blocks may name as their backend. Credentials are
// environment variables, read when `run` starts (ResolvedCredentials).
type ElasticsearchConfig struct {
	URL         string // http(s)://host[:port][/path], without credentials; required
	APIKeyEnv   string // variable holding an API key (the encoded id:key); or UsernameEnv and PasswordEnv; or neither
	UsernameEnv string // variable holding the basic-auth user name (with PasswordEnv)
	PasswordEnv string // variable holding the basic-auth password (never logged or printed)
	CAFile      string // PEM file of the CA that signed the cluster's certificate; "": the system's roots
}

// ElasticsearchCredentials are the elasticsearch: block's credentials read
// from the environment: an API key, or a user name and password, or none.
type ElasticsearchCredentials struct {
	APIKey   string
	Username string
	Password string
}

// ResolvedCredentials reads the credentials from the environment at call
// time. The error names the variable, never a value.
func (c *ElasticsearchConfig) ResolvedCredentials(getenv func(string) (string, bool)) (ElasticsearchCredentials, error) {
	var out ElasticsearchCredentials
	for _, v := range []struct {
		name, key string
		to        *string
	}{{c.APIKeyEnv, "api_key_env", &out.APIKey}, {c.UsernameEnv, "username_env", &out.Username}, {c.PasswordEnv, "password_env", &out.Password}} {
		if v.name == "" {
			continue
		}
		val, err := lookupSet(getenv, v.name, "elasticsearch."+v.key)
		if err != nil {
			return ElasticsearchCredentials{}, err
		}
		*v.to = val
	}
	return out, nil
}

// Auth names the credential kind: api_key, basic or none.
func (c *ElasticsearchConfig) Auth() string {
	switch {
	case c.APIKeyEnv != "":
		return "api_key"
	case c.UsernameEnv != "":
		return "basic"
	}
	return "none"
}

// SearchConfig is the search: block: where the search action writes.
type SearchConfig struct {
	Backend string // postgres (default) or elasticsearch (needs the elasticsearch: block)
}

// AuditConfig is the audit: block: the audit trail of every event read and
// every delivery outcome, recorded asynchronously (observers/audit).
type AuditConfig struct {
	// Enabled records the trail. Default true when the file has an audit:
	// block, false when it has none.
	Enabled bool
	Backend string // postgres (default) or elasticsearch (needs the elasticsearch: block)
	// Buffer is how many records may wait for the writer; when it is full
	// new records are dropped and counted (observer_audit_dropped_total),
	// never waited for. Default 50,000.
	Buffer int
	// BatchSize is the most records one write sends. Default 5,000.
	BatchSize int
	// FlushInterval is the longest a record waits for a full batch.
	// Default 1s.
	FlushInterval time.Duration
}

// WithDefaults returns c with zero fields set to their defaults.
func (c AuditConfig) WithDefaults() AuditConfig {
	c.Backend = cmp.Or(c.Backend, BackendPostgres)
	c.Buffer = cmp.Or(c.Buffer, AuditBufferDefault)
	c.BatchSize = cmp.Or(c.BatchSize, AuditBatchSizeDefault)
	c.FlushInterval = cmp.Or(c.FlushInterval, AuditFlushIntervalDefault)
	return c
}

// searchSpec keeps the positions the checks after decoding report at.
type searchSpec struct {
	searchBackendAt, auditBackendAt ast.Node
	batchSizeAt                     ast.Node
}

const elasticsearchURLHint = "write the cluster's address, e.g. https://es.example.com:9200"

func (l *loader) elasticsearchBlock(e entry) *ElasticsearchConfig {
	c := &ElasticsearchConfig{}
	var apiKeyE, userE, passE *entry
	fields, ok := l.mapping(e.value, e.keyN, "elasticsearch", elasticsearchKeys)
	for _, f := range fields {
		switch f.key {
		case "url":
			c.URL = strings.TrimSpace(l.str(f, "elasticsearch.url"))
			l.checkElasticsearchURL(f, c.URL)
		case "api_key_env":
			apiKeyE, c.APIKeyEnv = &f, l.envName(f, "elasticsearch.api_key_env")
		case "username_env":
			userE, c.UsernameEnv = &f, l.envName(f, "elasticsearch.username_env")
		case "password_env":
			passE, c.PasswordEnv = &f, l.envName(f, "elasticsearch.password_env")
		case "ca_file":
			c.CAFile = strings.TrimSpace(l.str(f, "elasticsearch.ca_file"))
		}
	}
	if c.URL == "" && ok {
		l.errorf(e.keyN, "elasticsearch.url is required", elasticsearchURLHint)
	}
	switch {
	case apiKeyE != nil && (userE != nil || passE != nil):
		l.errorf(apiKeyE.keyN, "elasticsearch: api_key_env and username_env/password_env exclude each other",
			"authenticate with an API key or with a user name and password, not both")
	case (userE == nil) != (passE == nil):
		l.errorf(e.keyN, "elasticsearch: username_env and password_env go together", "set both, or use api_key_env instead")
	}
	for _, v := range []struct {
		e         *entry
		name, key string
	}{{apiKeyE, c.APIKeyEnv, "elasticsearch.api_key_env"}, {userE, c.UsernameEnv, "elasticsearch.username_env"}, {passE, c.PasswordEnv, "elasticsearch.password_env"}} {
		if v.e != nil {
			l.warnUnsetEnv(*v.e, v.name, v.key)
		}
	}
	return c
}

// checkElasticsearchURL reports a URL that is not http(s) with a host, or
// that carries credentials. Messages never quote the URL: it may hold a
// password.
func (l *loader) checkElasticsearchURL(f entry, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "":
		l.errorf(f.value, "elasticsearch.url is not an http or https URL with a host", elasticsearchURLHint)
	case u.User != nil:
		l.errorf(f.value, "elasticsearch.url must not hold credentials",
			"remove user:password@ from the URL and name the variables that hold them in username_env and password_env (or use api_key_env)")
	case u.RawQuery != "" || u.Fragment != "":
		l.errorf(f.value, "elasticsearch.url must not have a query or fragment", elasticsearchURLHint)
	}
}

func (l *loader) searchBlock(e entry, s *searchSpec) SearchConfig {
	var c SearchConfig
	fields, _ := l.mapping(e.value, e.keyN, "search", searchKeys)
	for _, f := range fields {
		if f.key == "backend" {
			s.searchBackendAt = f.value
			c.Backend = l.oneOf(f, "search.backend", searchBackends) // config_storage.go
		}
	}
	return c
}

func (l *loader) auditBlock(e entry, s *searchSpec) AuditConfig {
	c := AuditConfig{Enabled: true}
	fields, _ := l.mapping(e.value, e.keyN, "audit", auditKeys)
	for _, f := range fields {
		switch f.key {
		case "enabled":
			c.Enabled = l.boolean(f, "audit.enabled")
		case "backend":
			s.auditBackendAt = f.value
			c.Backend = l.oneOf(f, "audit.backend", searchBackends)
		case "buffer":
			c.Buffer = l.boundedInt(f, "audit.buffer", AuditBufferMax) // config_limits.go
		case "batch_size":
			s.batchSizeAt = f.value
			c.BatchSize = l.boundedInt(f, "audit.batch_size", AuditBatchSizeMax)
		case "flush_interval":
			c.FlushInterval = l.duration(f, "audit.flush_interval")
			if c.FlushInterval > AuditFlushIntervalMax {
				l.errorf(f.value, fmt.Sprintf("audit.flush_interval (%s) is longer than %s", ShortDuration(c.FlushInterval),
					ShortDuration(AuditFlushIntervalMax)), "records wait this long at most before they are written; use 1s to 10s")
				c.FlushInterval = 0
			}
		}
	}
	return c
}

// checkSearch applies the search: and audit: defaults and checks that an
// elasticsearch backend has its block.
func (l *loader) checkSearch(cfg *Config, s *searchSpec) {
	cfg.Search.Backend = cmp.Or(cfg.Search.Backend, BackendPostgres)
	cfg.Audit = cfg.Audit.WithDefaults()
	need := func(at ast.Node, where string) {
		if cfg.Elasticsearch == nil && at != nil {
			l.errorf(at, where+" is elasticsearch but the file has no elasticsearch: block",
				"add a top-level elasticsearch: {url: https://es.example.com:9200, api_key_env: ES_API_KEY}, or use backend: postgres")
		}
	}
	if cfg.Search.Backend == BackendElasticsearch {
		need(s.searchBackendAt, "search.backend")
	}
	if cfg.Audit.Enabled && cfg.Audit.Backend == BackendElasticsearch {
		need(s.auditBackendAt, "audit.backend")
	}
	if cfg.Audit.BatchSize > cfg.Audit.Buffer && s.batchSizeAt != nil {
		l.errorf(s.batchSizeAt, fmt.Sprintf("audit.batch_size (%d) is more than audit.buffer (%d)", cfg.Audit.BatchSize, cfg.Audit.Buffer),
			"a batch is taken from the buffer: lower batch_size or raise buffer")
	}
}

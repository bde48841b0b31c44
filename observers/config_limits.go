package observers

// Decoding of the limits that guard HTTP endpoints: the top-level
// rate_limit: and http: blocks, an action's rate_limit: (config_decode.go
// holds the rest of the loader).

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Defaults and bounds of the http: block.
const (
	// HTTPMaxResponseBytesDefault is http.max_response_bytes' default: as
	// much of a response as is read before its connection is dropped.
	HTTPMaxResponseBytesDefault = 64 << 10
	// HTTPMaxResponseBytesMax bounds http.max_response_bytes.
	HTTPMaxResponseBytesMax = 64 << 20
	// HTTPResponseReadTimeoutDefault is http.response_read_timeout's
	// default.
	HTTPResponseReadTimeoutDefault = 5 * time.Second
)

// HTTPConfig is the http: block: how much of a receiver's response webhook
// and Slack deliveries read. The status decides the outcome; the body only
// adds its first 4 KiB to an error's message and is otherwise read to reuse
// the connection. A body that is longer, or slower, than allowed closes the
// connection instead: a hostile receiver cannot hold a worker or grow
// memory with it.
type HTTPConfig struct {
	// MaxResponseBytes bounds the bytes of a response body read per
	// request. Default HTTPMaxResponseBytesDefault (64 KiB).
	MaxResponseBytes int
	// ResponseReadTimeout bounds the time reading the body may take once
	// the response's headers have arrived, within the action's timeout.
	// Default HTTPResponseReadTimeoutDefault (5s).
	ResponseReadTimeout time.Duration
}

// WithDefaults returns c with zero fields set to their defaults.
func (c HTTPConfig) WithDefaults() HTTPConfig {
	c.MaxResponseBytes = cmp.Or(c.MaxResponseBytes, HTTPMaxResponseBytesDefault)
	c.ResponseReadTimeout = cmp.Or(c.ResponseReadTimeout, HTTPResponseReadTimeoutDefault)
	return c
}

// Keys of the limits' blocks.
var (
	rateLimitKeys = []string{"default", "scope", "backend"}
	httpKeys      = []string{"max_response_bytes", "response_read_timeout"}
)

// rateNone lifts the top-level default rate limit for one action.
const rateNone = "none"

// limitsSpec keeps positions for checkLimits.
type limitsSpec struct {
	backendAt ast.Node
}

func (l *loader) rateLimitBlock(e entry, s *limitsSpec) (c RateLimitConfig, backend string) {
	fields, _ := l.mapping(e.value, e.keyN, "rate_limit", rateLimitKeys)
	for _, f := range fields {
		switch f.key {
		case "default":
			if r, ok := l.rate(f, "rate_limit.default", false); ok {
				c.Limit, c.Per = r.Limit, r.Per
			}
		case "scope":
			c.Scope = l.oneOf(f, "rate_limit.scope", scopes)
		case "backend":
			s.backendAt = f.value
			backend = l.oneOf(f, "rate_limit.backend", storageBackends)
		}
	}
	return c, backend
}

// rate reads a rate (50/s); with none, "none" is the zero rate. ok is false
// when the value is reported.
func (l *loader) rate(f entry, where string, none bool) (RateLimitConfig, bool) {
	s := strings.TrimSpace(l.str(f, where))
	if none && strings.EqualFold(s, rateNone) {
		return RateLimitConfig{}, true
	}
	hint := RateHint
	if none {
		hint += `; "none" lifts the top-level rate_limit.default`
	}
	if s == "" {
		l.errorf(cmpNode(f.value, f.keyN), where+" is empty", hint)
		return RateLimitConfig{}, false
	}
	r, err := ParseRate(s)
	if err != nil {
		l.errorf(f.value, fmt.Sprintf("invalid %s: %s", where, err), hint)
		return RateLimitConfig{}, false
	}
	return r, true
}

func (l *loader) httpBlock(e entry) HTTPConfig {
	var c HTTPConfig
	fields, _ := l.mapping(e.value, e.keyN, "http", httpKeys)
	for _, f := range fields {
		switch f.key {
		case "max_response_bytes":
			c.MaxResponseBytes = l.boundedInt(f, "http.max_response_bytes", HTTPMaxResponseBytesMax)
		case "response_read_timeout":
			c.ResponseReadTimeout = l.duration(f, "http.response_read_timeout")
		}
	}
	return c
}

// boundedInt reads a positive integer of at most limit.
func (l *loader) boundedInt(f entry, where string, limit int) int {
	n := l.positiveInt(f, where)
	if n > limit {
		l.errorf(f.value, fmt.Sprintf("%s (%d) is more than %d", where, n, limit), fmt.Sprintf("use at most %d", limit))
		return 0
	}
	return n
}

// checkLimits applies the limits' defaults and checks that a Redis backend
// has a redis.url.
func (l *loader) checkLimits(cfg *Config, s *limitsSpec) {
	cfg.RateLimit.Scope = cmp.Or(cfg.RateLimit.Scope, ScopeEndpoint)
	cfg.RateLimitBackend = cmp.Or(cfg.RateLimitBackend, BackendPostgres)
	cfg.HTTP = cfg.HTTP.WithDefaults()
	if cfg.RateLimitBackend == BackendRedis && cfg.Redis.URL == "" {
		l.errorf(s.backendAt, "rate_limit.backend is redis but redis.url is not set",
			"add a top-level redis: {url: redis://127.0.0.1:6379/0}, or use backend: postgres")
	}
}

// RateLimitOverride is an action's rate_limit: as written; nil when the
// action has none (the top-level default applies). Its zero rate ("none")
// lifts the default.
type RateLimitOverride struct {
	rate RateLimitConfig
}

// RateLimit reads an action's rate_limit: a rate such as 50/s, or none.
// CheckConfig merges it over the top-level block with ConfigCheck.RateLimit.
func (f ActionField) RateLimit() *RateLimitOverride {
	r, ok := f.b.l.rate(f.e, f.Where(), true)
	if !ok {
		return nil
	}
	return &RateLimitOverride{rate: r}
}

// RateLimit is an action's rate limit: its own rate (o; nil: none written)
// or the top-level rate_limit.default, with the top-level scope.
func (c *ConfigCheck) RateLimit(o *RateLimitOverride) RateLimitConfig {
	r := c.cfg.RateLimit
	if o != nil {
		r.Limit, r.Per = o.rate.Limit, o.rate.Per
	}
	return r
}

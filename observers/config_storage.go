package observers

import (
	"cmp"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Storage backends of the dedup: and cache: blocks.
const (
	BackendPostgres = "postgres"
	BackendRedis    = "redis"
)

var storageBackends = []string{BackendPostgres, BackendRedis}

// What the listener does when the dedup backend fails (dedup.on_error).
const (
	DedupOnErrorProcess = "process" // enqueue the batch's events anyway; count and log
	DedupOnErrorPause   = "pause"   // fail the batch; it is read again later
)

var dedupOnErrors = []string{DedupOnErrorProcess, DedupOnErrorPause}

// Defaults of the dedup: and cache: blocks.
const (
	DedupWindowDefault  = 5 * time.Minute
	DedupOnErrorDefault = DedupOnErrorProcess
	CacheTTLDefault     = 5 * time.Minute
)

// RedisConfig is the top-level redis: block: one client shared by every
// Redis-backed layer.
type RedisConfig struct {
	URL string // redis://host:6379/0 or rediss://…; empty when Redis is not used
	// KeyPrefix starts every key the observer writes (then "dedup:" or
	// "cache:"); give each deployment sharing a server its own. Default
	// "fraiseql-observers:".
	KeyPrefix string
}

// RedisKeyPrefixDefault is the default redis.key_prefix.
const RedisKeyPrefixDefault = "fraiseql-observers:"

// DedupConfig is the dedup: block.
type DedupConfig struct {
	// Enabled turns deduplication on. Default true when the file has a
	// dedup: block, false when it has none.
	Enabled bool
	Backend string        // postgres (default) or redis
	Window  time.Duration // how long a content key stays seen; default 5m
	OnError string        // process (default) or pause: when the backend fails
}

// WithDefaults returns c with zero fields set to their defaults.
func (c DedupConfig) WithDefaults() DedupConfig {
	c.Backend = cmp.Or(c.Backend, BackendPostgres)
	c.Window = cmp.Or(c.Window, DedupWindowDefault)
	c.OnError = cmp.Or(c.OnError, DedupOnErrorDefault)
	return c
}

// CacheConfig is the cache: block (the result cache's store).
type CacheConfig struct {
	// Enabled is true when the file has a cache: block: successful webhook
	// and Slack results are then cached for TTL. Default false.
	Enabled bool
	Backend string        // postgres (default) or redis
	TTL     time.Duration // default 5m
}

// WithDefaults returns c with zero fields set to their defaults.
func (c CacheConfig) WithDefaults() CacheConfig {
	c.Backend = cmp.Or(c.Backend, BackendPostgres)
	c.TTL = cmp.Or(c.TTL, CacheTTLDefault)
	return c
}

// Keys of the storage blocks.
var (
	redisKeys = []string{"url", "key_prefix"}
	dedupKeys = []string{"enabled", "backend", "window", "on_error"}
	cacheKeys = []string{"backend", "ttl"}
)

// storageSpec keeps the positions of the storage blocks for checkStorage.
type storageSpec struct {
	dedupBackendAt, cacheBackendAt ast.Node
}

func (l *loader) redisBlock(e entry, s *storageSpec) RedisConfig {
	var c RedisConfig
	fields, _ := l.mapping(e.value, e.keyN, "redis", redisKeys)
	for _, f := range fields {
		switch f.key {
		case "url":
			c.URL = l.str(f, "redis.url")
			if c.URL != "" && !validRedisURL(c.URL) {
				l.errorf(f.value, "redis.url is not a Redis URL", "write redis://host:6379/0, or rediss://host:6380/0 for TLS")
			}
		case "key_prefix":
			c.KeyPrefix = l.str(f, "redis.key_prefix")
		}
	}
	return c
}

func validRedisURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "redis", "rediss":
		return u.Host != ""
	case "unix":
		return u.Path != ""
	}
	return false
}

func (l *loader) dedupBlock(e entry, s *storageSpec) DedupConfig {
	c := DedupConfig{Enabled: true}
	fields, _ := l.mapping(e.value, e.keyN, "dedup", dedupKeys)
	for _, f := range fields {
		switch f.key {
		case "enabled":
			c.Enabled = l.boolean(f, "dedup.enabled")
		case "backend":
			s.dedupBackendAt = f.value
			c.Backend = l.oneOf(f, "dedup.backend", storageBackends)
		case "window":
			c.Window = l.duration(f, "dedup.window")
		case "on_error":
			c.OnError = l.oneOf(f, "dedup.on_error", dedupOnErrors)
		}
	}
	return c
}

func (l *loader) cacheBlock(e entry, s *storageSpec) CacheConfig {
	c := CacheConfig{Enabled: true}
	fields, _ := l.mapping(e.value, e.keyN, "cache", cacheKeys)
	for _, f := range fields {
		switch f.key {
		case "backend":
			s.cacheBackendAt = f.value
			c.Backend = l.oneOf(f, "cache.backend", storageBackends)
		case "ttl":
			c.TTL = l.duration(f, "cache.ttl")
		}
	}
	return c
}

// oneOf reads a lower-cased string that must be one of valid ("" when not).
func (l *loader) oneOf(f entry, where string, valid []string) string {
	v := strings.ToLower(strings.TrimSpace(l.str(f, where)))
	if v != "" && !contains(valid, v) {
		l.errorf(f.value, fmt.Sprintf("unknown %s %s", where, QuoteShort(v)), "use one of "+strings.Join(valid, ", "))
		return ""
	}
	return v
}

// checkStorage applies the storage defaults and checks that a Redis backend
// has a redis.url.
func (l *loader) checkStorage(cfg *Config, s *storageSpec) {
	cfg.Redis.KeyPrefix = cmp.Or(cfg.Redis.KeyPrefix, RedisKeyPrefixDefault)
	cfg.Dedup = cfg.Dedup.WithDefaults()
	cfg.Cache = cfg.Cache.WithDefaults()
	need := func(at ast.Node, where string) {
		if cfg.Redis.URL == "" && at != nil {
			l.errorf(at, where+" is redis but redis.url is not set",
				"add a top-level redis: {url: redis://127.0.0.1:6379/0}, or use backend: postgres")
		}
	}
	if cfg.Dedup.Enabled && cfg.Dedup.Backend == BackendRedis {
		need(s.dedupBackendAt, "dedup.backend")
	}
	if cfg.Cache.Backend == BackendRedis {
		need(s.cacheBackendAt, "cache.backend")
	}
}

package daemon

import (
	"context"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers"
	obsriver "github.com/fraiseql/fraiseql-observers/river"
	"github.com/fraiseql/fraiseql-observers/storage"
	"github.com/fraiseql/fraiseql-observers/storage/elasticsearch"
	"github.com/fraiseql/fraiseql-observers/storage/postgres"
	storeredis "github.com/fraiseql/fraiseql-observers/storage/redis"
)

// stores are the storage layers chosen by the configuration.
type stores struct {
	Dedup       storage.Dedup          // nil when dedup is off
	Cache       storage.Cache          // the action result cache's store
	Breaker     storage.BreakerStore   // circuit-breaker state (circuit_breaker.backend)
	RateLimit   storage.RateLimitStore // rate-limit buckets (rate_limit.backend)
	Invalidator storage.Invalidator    // the redis: block's keys (cache actions); nil without redis.url
	Search      storage.Search         // documents of search actions (search.backend)
	Audit       storage.Audit          // the audit trail (audit.backend); nil when audit: is off
	ES          *elasticsearch.Client  // the elasticsearch: block's cluster; nil when neither search: nor audit: uses it
	Cleanups    []obsriver.Cleanup     // expired dedup keys, cache rows, claim tokens, idle breakers, full rate-limit buckets
	Close       func()
}

// openStores makes the Redis client (when redis.url is set; one client for
// every Redis-backed layer), the Elasticsearch client (when search: or
// audit: names it) and the dedup, cache, breaker, rate-limit, search and
// audit stores.
// An unreachable Redis is logged, not fatal: dedup.on_error decides at each
// batch. So is an unreachable Elasticsearch: search deliveries fail and
// are retried, audit records wait in the outbox.
func openStores(ctx context.Context, cfg *observers.Config, pool *pgxpool.Pool, getenv func(string) (string, bool),
	logger *slog.Logger) (*stores, error) {
	s := &stores{Close: func() {}}
	var rdb *goredis.Client
	if cfg.Redis.URL != "" {
		c, err := storeredis.NewClient(cfg.Redis.URL)
		if err != nil {
			return nil, err
		}
		rdb, s.Invalidator, s.Close = c, storeredis.NewInvalidator(c), func() { _ = c.Close() }
		if err := storeredis.Ping(ctx, c); err != nil {
			logger.Warn("run: Redis does not answer; Redis-backed layers degrade until it does", slog.String("error", err.Error()))
		}
	}
	if cfg.Dedup.Enabled {
		if cfg.Dedup.Backend == observers.BackendRedis {
			s.Dedup = storeredis.NewDedup(rdb, pool, storeredis.DedupConfig{Window: cfg.Dedup.Window, Prefix: cfg.Redis.KeyPrefix + "dedup:"})
		} else {
			s.Dedup = postgres.NewDedup(pool, postgres.DedupConfig{Window: cfg.Dedup.Window})
		}
		s.Cleanups = append(s.Cleanups, s.Dedup.Cleanup)
	}
	pgBreaker := postgres.NewBreakerStore(pool, postgres.BreakerStoreConfig{})
	s.Breaker = pgBreaker
	s.Cleanups = append(s.Cleanups, pgBreaker.Cleanup) // status's rows, either backend
	if cfg.CircuitBreakerBackend == observers.BackendRedis {
		// status reads observer_circuit_breakers: mirror each state write there.
		s.Breaker = storeredis.NewBreakerStore(rdb, storeredis.BreakerStoreConfig{
			Prefix: cfg.Redis.KeyPrefix + "breaker:", Mirror: pgBreaker.SetData, Logger: logger,
		})
	}
	if cfg.RateLimitBackend == observers.BackendRedis {
		s.RateLimit = storeredis.NewRateLimitStore(rdb, storeredis.RateLimitStoreConfig{Prefix: cfg.Redis.KeyPrefix + "ratelimit:"})
	} else {
		rl := postgres.NewRateLimitStore(pool)
		s.RateLimit = rl
		s.Cleanups = append(s.Cleanups, rl.Cleanup)
	}
	if cfg.Cache.Backend == observers.BackendRedis {
		s.Cache = storeredis.NewCache(rdb, storeredis.CacheConfig{Prefix: cfg.Redis.KeyPrefix + "cache:"})
	} else {
		pc := postgres.NewCache(pool)
		s.Cache = pc
		s.Cleanups = append(s.Cleanups, pc.Cleanup)
	}
	return s, s.openSearch(ctx, cfg, pool, getenv, logger)
}

// openSearch makes the search and audit stores, and the Elasticsearch
// client when either is kept there; when the audit trail is, it installs
// the trail's index template and ILM policy where absent. A cluster that
// does not answer is logged, not fatal.
func (s *stores) openSearch(ctx context.Context, cfg *observers.Config, pool *pgxpool.Pool, getenv func(string) (string, bool),
	logger *slog.Logger) error {
	b, err := OpenSearchBackends(cfg, pool, getenv)
	if err != nil {
		return err
	}
	s.Search, s.Audit, s.ES = b.Search, b.Audit, b.ES
	if s.ES == nil || !cfg.Audit.Enabled || cfg.Audit.Backend != observers.BackendElasticsearch {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, esStartTimeout)
	defer cancel()
	if err := s.ES.EnsureTemplates(pctx); err != nil {
		logger.Warn("run: Elasticsearch: the index template and ILM policy are not checked yet; audit records wait in the "+
			"outbox until they are (tried again before each write)",
			slog.String("url", observers.RedactURL(cfg.Elasticsearch.URL)), slog.String("error", err.Error()))
	}
	return nil
}

// esStartTimeout bounds the start's template check.
const esStartTimeout = 10 * time.Second

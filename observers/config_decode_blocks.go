package observers

// Decoding of the concurrency: and circuit_breaker: blocks (config_decode.go
// holds the rest of the loader).

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

type concurrencySpec struct {
	maxAt   ast.Node            // max_parallelism's value; nil when absent
	queueAt map[string]ast.Node // each queues: value
}

func (l *loader) concurrency(e entry, s *concurrencySpec) ConcurrencyConfig {
	var c ConcurrencyConfig
	fields, _ := l.mapping(e.value, e.keyN, "concurrency", concurrencyKeys)
	for _, f := range fields {
		switch f.key {
		case "max_parallelism":
			s.maxAt = f.value
			c.MaxParallelism = l.positiveInt(f, "concurrency.max_parallelism")
		case "deliveries_per_job":
			c.DeliveriesPerJob = l.positiveInt(f, "concurrency.deliveries_per_job")
			if c.DeliveriesPerJob > ConcurrencyDeliveriesPerJobMax {
				l.errorf(f.value, fmt.Sprintf("concurrency.deliveries_per_job (%d) is more than %d", c.DeliveriesPerJob,
					ConcurrencyDeliveriesPerJobMax), fmt.Sprintf("use at most %d; 1 gives every delivery its own job", ConcurrencyDeliveriesPerJobMax))
			}
		case "max_in_flight":
			c.MaxInFlight = l.boundedInt(f, "concurrency.max_in_flight", ConcurrencyMaxInFlightMax) // config_limits.go
		case "queues":
			queues, _ := l.mapping(f.value, f.keyN, "concurrency.queues", nil)
			names := ActionTypeNames()
			for _, q := range queues {
				t := strings.ToLower(q.key)
				if !contains(names, t) {
					l.errorf(q.keyN, fmt.Sprintf("unknown action type %s in concurrency.queues", QuoteShort(q.key)),
						keyHint(q.key, names))
					continue
				}
				if n := l.positiveInt(q, "concurrency.queues."+t); n > 0 {
					if c.Queues == nil {
						c.Queues = map[string]int{}
					}
					c.Queues[t], s.queueAt[t] = n, q.value
				}
			}
		}
	}
	return c
}

// checkConcurrency merges workers.max_workers (the older name of
// concurrency.max_parallelism) into cfg.Concurrency, applies its default and
// checks the per-type queues against it. workersAt is the workers: key.
func (l *loader) checkConcurrency(cfg *Config, s *concurrencySpec, workersAt ast.Node) {
	c, alias := &cfg.Concurrency, cfg.Workers.MaxWorkers
	switch {
	case c.MaxParallelism != 0 && alias != 0 && c.MaxParallelism != alias:
		l.errorf(s.maxAt, fmt.Sprintf("concurrency.max_parallelism (%d) and workers.max_workers (%d) differ",
			c.MaxParallelism, alias), "workers.max_workers is the older name of concurrency.max_parallelism; keep one of them")
	case c.MaxParallelism == 0:
		c.MaxParallelism = alias
	}
	*c = c.WithDefaults()
	if c.MaxParallelism > ConcurrencyMaxParallelismMax {
		field, at := "concurrency.max_parallelism", s.maxAt
		if at == nil {
			field, at = "workers.max_workers", workersAt
		}
		l.errorf(at, fmt.Sprintf("%s (%d) is more than River's %d workers per queue", field, c.MaxParallelism,
			ConcurrencyMaxParallelismMax), fmt.Sprintf("use at most %d", ConcurrencyMaxParallelismMax))
	}
	cfg.Workers.MaxWorkers = c.MaxParallelism
	for t, n := range c.Queues {
		if n > c.MaxParallelism {
			l.errorf(s.queueAt[t], fmt.Sprintf("concurrency.queues.%s (%d) is more than max_parallelism (%d)", t, n, c.MaxParallelism),
				"max_parallelism caps every action type: raise it, or lower this queue")
		}
	}
}

// BreakerOverride is a circuit_breaker: block as written: nil fields are
// absent and inherit from the enclosing level. An action's own block is
// merged over the top-level one (ConfigCheck.CircuitBreaker).
type BreakerOverride struct {
	at               ast.Node
	where            string
	enabled          *bool
	failureThreshold *float64
	successThreshold *float64
	timeout          *time.Duration
	sampleSize       *int
	minRequests      *int
	window           *time.Duration
	scope            *string
	backend          string   // top level only: where the state is shared
	backendAt        ast.Node // its value, for messages
}

func (l *loader) circuitBreaker(e entry, where string) *BreakerOverride {
	s := &BreakerOverride{at: e.keyN, where: where}
	fields, _ := l.mapping(e.value, e.keyN, where, breakerKeys)
	for _, f := range fields {
		w := where + "." + f.key
		switch f.key {
		case "enabled":
			if v, ok := l.resolve(f.value).(*ast.BoolNode); ok {
				s.enabled = &v.Value
			} else {
				l.boolean(f, w) // reports the error
			}
		case "failure_threshold":
			s.failureThreshold = nonZero(l.ratio(f, w))
		case "success_threshold":
			s.successThreshold = nonZero(l.ratio(f, w))
		case "timeout":
			s.timeout = nonZero(l.duration(f, w))
		case "window":
			s.window = nonZero(l.duration(f, w))
		case "sample_size":
			s.sampleSize = nonZero(l.positiveInt(f, w))
		case "min_requests":
			s.minRequests = nonZero(l.positiveInt(f, w))
		case "scope":
			s.scope = nonZero(l.oneOf(f, w, scopes))
		case "backend":
			if where != "circuit_breaker" {
				l.errorf(f.keyN, w+": the state store is chosen once, for every breaker",
					"move backend: to the top-level circuit_breaker: block")
				continue
			}
			s.backendAt = f.value
			s.backend = l.oneOf(f, w, storageBackends) // config_storage.go
		}
	}
	return s
}

// nonZero returns &v, or nil for the zero value (a field whose error is
// already reported).
func nonZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

// over returns c with the fields that s sets replaced.
func (s *BreakerOverride) over(c CircuitBreakerConfig) CircuitBreakerConfig {
	if s == nil {
		return c
	}
	if s.enabled != nil {
		c.Disabled = !*s.enabled
	}
	c.FailureThreshold = derefOr(s.failureThreshold, c.FailureThreshold)
	c.SuccessThreshold = derefOr(s.successThreshold, c.SuccessThreshold)
	c.Timeout = derefOr(s.timeout, c.Timeout)
	c.SampleSize = derefOr(s.sampleSize, c.SampleSize)
	c.MinRequests = derefOr(s.minRequests, c.MinRequests)
	c.Window = derefOr(s.window, c.Window)
	c.Scope = derefOr(s.scope, c.Scope)
	return c
}

func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// mergeBreakers resolves the top-level circuit_breaker: block and checks
// what only the merged values show. An action's own block is merged over it
// by its type's CheckConfig (ConfigCheck.CircuitBreaker).
func (l *loader) mergeBreakers(cfg *Config, global *BreakerOverride) {
	cfg.CircuitBreaker = global.over(CircuitBreakerConfig{}).WithDefaults()
	l.checkBreaker(global, cfg.CircuitBreaker)
	if global != nil {
		cfg.CircuitBreakerBackend = global.backend
	}
	cfg.CircuitBreakerBackend = cmp.Or(cfg.CircuitBreakerBackend, BackendPostgres)
	if cfg.CircuitBreakerBackend == BackendRedis && cfg.Redis.URL == "" {
		l.errorf(global.backendAt, "circuit_breaker.backend is redis but redis.url is not set",
			"add a top-level redis: {url: redis://127.0.0.1:6379/0}, or use backend: postgres")
	}
}

func (l *loader) checkBreaker(s *BreakerOverride, c CircuitBreakerConfig) {
	if s == nil || c.Disabled || c.MinRequests <= c.SampleSize {
		return
	}
	l.errorf(s.at, fmt.Sprintf("%s: min_requests (%d) is larger than sample_size (%d); the breaker could never open",
		s.where, c.MinRequests, c.SampleSize), "lower min_requests or raise sample_size")
}

// ratio reads a number in (0, 1].

package observers

import (
	"cmp"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
)

// Defaults of the configuration file.
const (
	ListenerIDDefault           = "default"
	ListenerTableDefault        = "core.tb_entity_change_log"
	ListenerBatchSizeDefault    = 500
	ListenerPollIntervalDefault = time.Second
	// ListenerBatchBytesDefault bounds a batch's change data (object_data,
	// object_data_before and extra_metadata as JSON text): big rows are
	// read a few at a time, never 500 at once.
	ListenerBatchBytesDefault = 8 << 20
	// ListenerMaxEventBytesDefault is the largest row processed; a larger
	// one is recorded in observer_skipped_events and the log moves on.
	ListenerMaxEventBytesDefault = 16 << 20
	// ListenerBatchTimeoutDefault bounds one batch: read, decode, match,
	// enqueue and commit.
	ListenerBatchTimeoutDefault = 30 * time.Second

	// Worker defaults come from `just bench` on a 2-core machine (see
	// BENCHMARKS.md): River's own 100 workers and 10ms cooldown cap a queue
	// near 9k jobs/s; 200 workers and 5ms lift that ceiling to 15k+ and cut
	// commit→delivery latency, at no idle cost.
	WorkersMaxWorkersDefault        = 200
	WorkersFetchCooldownDefault     = 5 * time.Millisecond
	WorkersFetchPollIntervalDefault = time.Second

	// ConcurrencyMaxParallelismDefault is concurrency.max_parallelism's
	// default: the measured WorkersMaxWorkersDefault. An action type may
	// default lower (ParallelismLimiter; email: SMTP servers throttle
	// parallel senders).
	ConcurrencyMaxParallelismDefault = WorkersMaxWorkersDefault
	// ConcurrencyMaxParallelismMax is River's limit of workers per queue.
	ConcurrencyMaxParallelismMax = 10_000
	// ConcurrencyDeliveriesPerJobDefault is concurrency.deliveries_per_job's
	// default, from `just bench` (BENCHMARKS.md): River's per-job cost is
	// the wall of one job per delivery on a 2-core machine.
	ConcurrencyDeliveriesPerJobDefault = 100
	// ConcurrencyDeliveriesPerJobMax bounds a batch job's row.
	ConcurrencyDeliveriesPerJobMax = 1000
	// ConcurrencyMaxInFlightDefault is concurrency.max_in_flight's default:
	// more than the webhook and Slack queues run at their default
	// max_parallelism, so it only binds when queues are raised.
	ConcurrencyMaxInFlightDefault = 1000
	// ConcurrencyMaxInFlightMax bounds concurrency.max_in_flight.
	ConcurrencyMaxInFlightMax = 100_000

	RetryMaxAttemptsDefault  = 5
	RetryInitialDelayDefault = time.Second
	RetryMaxDelayDefault     = 5 * time.Minute

	CircuitBreakerFailureThresholdDefault = 0.5
	CircuitBreakerSuccessThresholdDefault = 0.8
	CircuitBreakerTimeoutDefault          = 60 * time.Second
	CircuitBreakerSampleSizeDefault       = 100
	CircuitBreakerMinRequestsDefault      = 10
	CircuitBreakerWindowDefault           = 60 * time.Second
)

// Backoff strategies of a retry policy.
const (
	BackoffExponential = "exponential"
	BackoffLinear      = "linear"
	BackoffFixed       = "fixed"
)

var backoffStrategies = []string{BackoffExponential, BackoffLinear, BackoffFixed}

// Config is a loaded observer configuration file. It is immutable once
// loaded: a reload builds a new Config.
type Config struct {
	Listener ListenerConfig
	// AllowPrivateTargets lets webhooks reach private and loopback addresses
	// (SSRF guard). Default false.
	AllowPrivateTargets bool
	// Workers is the workers: block; Workers.MaxWorkers always equals
	// Concurrency.MaxParallelism (workers.max_workers is its older name).
	Workers     WorkersConfig
	Concurrency ConcurrencyConfig
	// CircuitBreaker is the top-level circuit_breaker: block with defaults
	// applied; each webhook action's own block overrides it field by field.
	CircuitBreaker CircuitBreakerConfig
	// RateLimit is the top-level rate_limit: block: the rate limit of every
	// webhook and Slack endpoint without its own (default none) and the
	// scope of every limit; an action's rate_limit: replaces the rate.
	RateLimit RateLimitConfig
	// RateLimitBackend is rate_limit.backend: where every instance shares
	// the limits, postgres (default) or redis (needs redis.url).
	RateLimitBackend string
	// HTTP is the http: block: how much of a response webhook and Slack
	// deliveries read, and for how long.
	HTTP HTTPConfig
	// Retention is the retention: block with defaults applied: how long
	// finished rows are kept (config_retention.go).
	Retention RetentionConfig
	// Admin is the admin: block: the admin server's credentials and River
	// UI (config_admin.go).
	Admin AdminConfig
	// CircuitBreakerBackend is circuit_breaker.backend: where every
	// instance shares the breakers' state, postgres (default) or redis
	// (needs redis.url). `status` reads the breakers from Postgres either
	// way: the Redis store mirrors each state write there.
	CircuitBreakerBackend string
	// SMTP is the top-level smtp: block with defaults applied; nil when the
	// file has none (it is required when any email action exists).
	SMTP *SMTPConfig
	// ObserversTable is observers_table: FraiseQL's tb_observer table whose
	// rows are observers too (tableobservers.go); "" when not set.
	ObserversTable string
	Observers      []*Observer // sorted by Name, the file's and the table's
	// Source is the raw file bytes as loaded, followed by the table's rows
	// when observers_table is set (ParseVersion reads it back).
	Source   []byte
	Hash     string // hex sha256 of Source: the config version identity
	Filename string

	tableRead bool // the observers_table rows were read (Source holds them)

	// Redis, Dedup and Cache are the redis:, dedup: and cache: blocks,
	// defaults applied (config_storage.go).
	Redis RedisConfig
	Dedup DedupConfig
	Cache CacheConfig

	// Elasticsearch is the elasticsearch: block; nil when the file has
	// none (it is required when search: or audit: names it). Search and
	// Audit are the search: and audit: blocks, defaults applied
	// (config_search.go).
	Elasticsearch *ElasticsearchConfig
	Search        SearchConfig
	Audit         AuditConfig
}

// ListenerConfig configures the change-log listener.
type ListenerConfig struct {
	ID           string        // checkpoint and leader group name; default "default"
	Table        string        // change-log table; default core.tb_entity_change_log
	BatchSize    int           // rows read per batch; default 500
	PollInterval time.Duration // poll when no NOTIFY arrives; default 1s
	// BatchBytes bounds the change data a batch reads (JSON text bytes);
	// the first row of a batch is read whatever its size. Default 8 MiB.
	BatchBytes int64
	// MaxEventBytes is the largest change processed (JSON text bytes of its
	// data, before image and metadata); a larger one is skipped and
	// recorded in observer_skipped_events. Default 16 MiB.
	MaxEventBytes int64
	// BatchTimeout bounds one batch; a batch that fails is read again,
	// smaller. Default 30s.
	BatchTimeout time.Duration
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ListenerConfig) WithDefaults() ListenerConfig {
	c.ID = cmp.Or(c.ID, ListenerIDDefault)
	c.Table = cmp.Or(c.Table, ListenerTableDefault)
	c.BatchSize = cmp.Or(c.BatchSize, ListenerBatchSizeDefault)
	c.PollInterval = cmp.Or(c.PollInterval, ListenerPollIntervalDefault)
	c.BatchBytes = cmp.Or(c.BatchBytes, ListenerBatchBytesDefault)
	c.MaxEventBytes = cmp.Or(c.MaxEventBytes, ListenerMaxEventBytesDefault)
	c.BatchTimeout = cmp.Or(c.BatchTimeout, ListenerBatchTimeoutDefault)
	return c
}

// WorkersConfig configures the River workers that run actions.
type WorkersConfig struct {
	MaxWorkers        int           // alias of ConcurrencyConfig.MaxParallelism; default 200
	FetchCooldown     time.Duration // minimum time between fetches; default 5ms
	FetchPollInterval time.Duration // fetch poll when no notification arrives; default 1s
}

// WithDefaults returns c with zero fields set to their defaults.
func (c WorkersConfig) WithDefaults() WorkersConfig {
	c.MaxWorkers = cmp.Or(c.MaxWorkers, WorkersMaxWorkersDefault)
	c.FetchCooldown = cmp.Or(c.FetchCooldown, WorkersFetchCooldownDefault)
	c.FetchPollInterval = cmp.Or(c.FetchPollInterval, WorkersFetchPollIntervalDefault)
	return c
}

// ConcurrencyConfig is the concurrency: block. Each action type runs on its
// own River queue, so a slow email server cannot starve webhooks.
type ConcurrencyConfig struct {
	// MaxParallelism is the most jobs of one action type that run at once;
	// default 200 (ConcurrencyMaxParallelismDefault). workers.max_workers is
	// an alias.
	MaxParallelism int
	// Queues overrides MaxParallelism per action type (at most
	// MaxParallelism each); nil when the file sets none.
	Queues map[string]int
	// DeliveriesPerJob is how many deliveries of one action type, from one
	// listener batch, share a River job for their first attempt (default
	// ConcurrencyDeliveriesPerJobDefault). A delivery that does not succeed
	// there continues as its own job, so retries, snoozes and the
	// dead-letter queue stay per delivery. 1 gives every delivery its own
	// job from the start.
	DeliveriesPerJob int
	// MaxInFlight caps the HTTP requests (webhook, Slack) in flight in one
	// process, every action type and endpoint together; default
	// ConcurrencyMaxInFlightDefault. A delivery that finds no free slot
	// for a while is snoozed (no attempt spent).
	MaxInFlight int
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ConcurrencyConfig) WithDefaults() ConcurrencyConfig {
	c.MaxParallelism = cmp.Or(c.MaxParallelism, ConcurrencyMaxParallelismDefault)
	c.DeliveriesPerJob = cmp.Or(c.DeliveriesPerJob, ConcurrencyDeliveriesPerJobDefault)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, ConcurrencyMaxInFlightDefault)
	return c
}

// MaxWorkers returns how many jobs of actionType run at once: its queues:
// entry, else MaxParallelism, capped by the type's own default when it has
// one (ParallelismLimiter: email).
func (c ConcurrencyConfig) MaxWorkers(actionType string) int {
	if n := c.Queues[actionType]; n > 0 {
		return n
	}
	mp := cmp.Or(c.MaxParallelism, ConcurrencyMaxParallelismDefault)
	if t, ok := LookupActionType(actionType); ok {
		if pl, ok := t.(ParallelismLimiter); ok {
			return min(pl.MaxParallelismDefault(), mp)
		}
	}
	return mp
}

// Observer reacts to the changes of one entity type (or every one, "*").
type Observer struct {
	Name      string
	Entity    string     // entity type, or "*" for every entity
	Events    []Kind     // kinds that trigger the observer, never empty
	Condition *Condition // nil when no condition
	Actions   []Action   // never empty
	Retry     RetryPolicy
}

// MatchesEntity reports whether the observer watches entity type t.
func (o *Observer) MatchesEntity(t string) bool {
	return o.Entity == "*" || o.Entity == t
}

// MatchesKind reports whether the observer watches events of kind k.
func (o *Observer) MatchesKind(k Kind) bool {
	if k == "" {
		return false
	}
	for _, e := range o.Events {
		if e == k {
			return true
		}
	}
	return false
}

// RetryPolicy says how often and how fast a failed action is retried.
type RetryPolicy struct {
	MaxAttempts     int           // attempts in all, the first included; default 5
	InitialDelay    time.Duration // default 1s
	MaxDelay        time.Duration // cap of any delay; default 5m; 0 means no cap
	BackoffStrategy string        // exponential (default), linear or fixed
}

// WithDefaults returns p with zero fields set to their defaults.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	p.MaxAttempts = cmp.Or(p.MaxAttempts, RetryMaxAttemptsDefault)
	p.InitialDelay = cmp.Or(p.InitialDelay, RetryInitialDelayDefault)
	p.MaxDelay = cmp.Or(p.MaxDelay, RetryMaxDelayDefault)
	p.BackoffStrategy = cmp.Or(p.BackoffStrategy, BackoffExponential)
	return p
}

// Delay returns the wait after the attempt-th failure (attempt is 1-based):
// exponential initial*2^(n-1), linear initial*n, fixed initial; capped by
// MaxDelay.
func (p RetryPolicy) Delay(attempt int) time.Duration {
	n := max(attempt, 1)
	var d time.Duration
	switch p.BackoffStrategy {
	case BackoffFixed:
		d = p.InitialDelay
	case BackoffLinear:
		if p.InitialDelay > 0 && time.Duration(n) > time.Duration(1<<62)/p.InitialDelay {
			d = time.Duration(1<<63 - 1)
		} else {
			d = p.InitialDelay * time.Duration(n)
		}
	default: // exponential
		d = p.InitialDelay
		for i := 1; i < n; i++ {
			if d > time.Duration(1<<62) {
				d = time.Duration(1<<63 - 1)
				break
			}
			d *= 2
		}
	}
	if p.MaxDelay > 0 && d > p.MaxDelay {
		d = p.MaxDelay
	}
	return d
}

// CircuitBreakerConfig configures the circuit breaker of a webhook's target
// endpoint (scheme, host, port and path; with Scope host, scheme, host and
// port: see EndpointName). The breaker opens when, over its current
// sample, at least MinRequests requests were made and the failure ratio
// reached FailureThreshold; after Timeout it lets a few probes through and
// closes when they succeed (see package observers/breaker for the exact rules).
type CircuitBreakerConfig struct {
	Disabled         bool          // enabled: false turns the breaker off; default enabled
	FailureThreshold float64       // failure ratio that opens the breaker, in (0, 1]; default 0.5
	SuccessThreshold float64       // success ratio of the probes that closes it, in (0, 1]; default 0.8
	Timeout          time.Duration // how long it stays open before probing; default 60s
	SampleSize       int           // requests per sample; a full sample starts afresh; default 100
	MinRequests      int           // requests in the sample before it may open; default 10
	Window           time.Duration // rolling time window of the sample; default 60s
	// Scope is what one breaker guards: ScopeEndpoint (the default) an
	// endpoint URL, ScopeHost every path of a host together.
	Scope string
}

// WithDefaults returns c with zero fields set to their defaults.
func (c CircuitBreakerConfig) WithDefaults() CircuitBreakerConfig {
	c.FailureThreshold = cmp.Or(c.FailureThreshold, CircuitBreakerFailureThresholdDefault)
	c.SuccessThreshold = cmp.Or(c.SuccessThreshold, CircuitBreakerSuccessThresholdDefault)
	c.Timeout = cmp.Or(c.Timeout, CircuitBreakerTimeoutDefault)
	c.SampleSize = cmp.Or(c.SampleSize, CircuitBreakerSampleSizeDefault)
	c.MinRequests = cmp.Or(c.MinRequests, CircuitBreakerMinRequestsDefault)
	c.Window = cmp.Or(c.Window, CircuitBreakerWindowDefault)
	c.Scope = cmp.Or(c.Scope, ScopeEndpoint)
	return c
}

// Observer returns the observer named name, or nil.
func (c *Config) Observer(name string) *Observer {
	i := sort.Search(len(c.Observers), func(i int) bool { return c.Observers[i].Name >= name })
	if i < len(c.Observers) && c.Observers[i].Name == name {
		return c.Observers[i]
	}
	return nil
}

// Resolve checks that every environment variable the configuration names
// (the smtp: and elasticsearch: blocks', and those of every action that is a Resolver:
// url_env, signing_secret_env, webhook_url_env, …) is set. Parse only
// warns about them; `run` and a reload call Resolve and refuse an unset
// one. The error names the observer, the action and the variable, never a
// value.
func (c *Config) Resolve(getenv func(string) (string, bool)) error {
	var problems []string
	if _, err := c.Admin.ResolvedCredentials(getenv); err != nil {
		problems = append(problems, err.Error())
	}
	if c.SMTP != nil {
		if _, _, err := c.SMTP.ResolvedAuth(getenv); err != nil {
			problems = append(problems, "smtp: "+err.Error())
		}
	}
	if c.Elasticsearch != nil {
		if _, err := c.Elasticsearch.ResolvedCredentials(getenv); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, o := range c.Observers {
		for i, a := range o.Actions {
			r, ok := a.(Resolver)
			if !ok {
				continue
			}
			if err := r.Resolve(getenv); err != nil {
				problems = append(problems, fmt.Sprintf("observer %s actions[%d] (%s): %s", QuoteShort(o.Name), i, a.Type(), err))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.WithHint(errors.Newf("%s: %s", cmp.Or(c.Filename, "config"), strings.Join(problems, "; ")),
		"set the environment variables named above; `validate-config` lists every one as a warning")
}

package river

import (
	"cmp"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// ClientParams configures the River client of a `run` process: the action
// worker's dependencies plus the client's own settings.
type ClientParams struct {
	WorkerParams
	Config *observers.Config // worker settings come from its workers: and concurrency: blocks
	// InsertOnly builds a client that enqueues but works no jobs.
	InsertOnly bool
	// Cleanups run as a River periodic job every CleanupInterval (default
	// CleanupIntervalDefault) on the group's River leader: expired dedup
	// keys, cache rows, Redis claim tokens.
	Cleanups        []Cleanup
	CleanupInterval time.Duration
	// Retention runs as a River periodic job every RetentionInterval
	// (default RetentionIntervalDefault) on the group's River leader; nil
	// runs none. Either way River's own cleaner deletes no finished job:
	// retention does (retention.completed_jobs, dead_letters).
	Retention         Retention
	RetentionInterval time.Duration
	// BatchHandoffAfter overrides the package's BatchHandoffAfter (tests).
	BatchHandoffAfter time.Duration
}

// NewClient builds a River client that works observer actions: one queue
// per action type (QueueFor), each with the concurrency: block's workers,
// and the pre-upgrade QueueName with LegacyQueueMaxWorkers.
func NewClient(p ClientParams) (*river.Client[pgx.Tx], error) {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Metrics == nil {
		p.Metrics = NewMetrics(nil)
	}
	if p.Concurrency == nil && p.Config != nil {
		c := p.Config.Concurrency.WithDefaults()
		p.Concurrency = &c
	}
	workers := river.NewWorkers()
	aw := NewActionWorker(p.WorkerParams)
	river.AddWorker(workers, aw)
	bw := NewBatchWorker(aw)
	bw.handoff = cmp.Or(p.BatchHandoffAfter, BatchHandoffAfter)
	river.AddWorker(workers, bw)
	rc := &river.Config{
		Logger:                      slog.New(&jobLogHandler{h: p.Logger.Handler(), jobs: aw.jobs}).With(slog.String("component", "river")),
		Workers:                     workers,
		CompletedJobRetentionPeriod: riverJobsKeptByRiver, // retention/ deletes them (retention.go)
		CancelledJobRetentionPeriod: riverJobsKeptByRiver,
		DiscardedJobRetentionPeriod: riverJobsKeptByRiver,
		RescueStuckJobsAfter:        rescueAfter(p.Config),
	}
	if job := cleanupJob(workers, p.Cleanups, cmp.Or(p.CleanupInterval, CleanupIntervalDefault), p.Logger); job != nil {
		rc.PeriodicJobs = append(rc.PeriodicJobs, job)
	}
	if job := retentionJob(workers, p.Retention, cmp.Or(p.RetentionInterval, RetentionIntervalDefault), p.Logger); job != nil {
		rc.PeriodicJobs = append(rc.PeriodicJobs, job)
	}
	if !p.InsertOnly {
		w := p.Config.Workers
		rc.FetchCooldown = w.FetchCooldown
		rc.FetchPollInterval = w.FetchPollInterval
		rc.Queues = Queues(p.Config)
	}
	client, err := river.NewClient(riverpgxv5.New(p.Pool), rc)
	if err != nil {
		return nil, errors.Wrap(err, "create river client")
	}
	return client, nil
}

// Queues returns the River queues of a `run` process: one per action type
// that cfg uses (each idle queue's producer polls, so unused types get none),
// plus the legacy QueueName. AddQueues starts more after a reload.
func Queues(cfg *observers.Config) map[string]river.QueueConfig {
	c := cfg.Concurrency
	qs := map[string]river.QueueConfig{
		QueueName: {MaxWorkers: min(LegacyQueueMaxWorkers, c.MaxWorkers(""))},
	}
	for _, t := range usedActionTypes(cfg) {
		qs[QueueFor(t)] = river.QueueConfig{MaxWorkers: c.MaxWorkers(t)}
	}
	return qs
}

// AddQueues starts the queues of action types that cfg uses and that are
// not in have (the queues already worked), and records them in have.
func AddQueues(client *river.Client[pgx.Tx], have *QueueSet, cfg *observers.Config) error {
	for name, qc := range Queues(cfg) {
		if have.Has(name) {
			continue
		}
		if err := client.Queues().Add(name, qc); err != nil {
			return errors.Wrapf(err, "start queue %s", name)
		}
		have.add(name, qc.MaxWorkers)
	}
	return nil
}

// QueueSet is the River queues a process works, each with the MaxWorkers
// it was started with: NewClient's Queues, then those AddQueues starts
// after a reload. River keeps them only in the process; the heartbeat
// records them for `status` (Snapshot), and the queue-depth metric reports
// them even when empty (Names). Safe for concurrent use.
type QueueSet struct {
	mu sync.Mutex
	m  map[string]int
}

// NewQueueSet returns the queues a client built by NewClient for cfg works.
func NewQueueSet(cfg *observers.Config) *QueueSet {
	s := &QueueSet{m: map[string]int{}}
	for name, qc := range Queues(cfg) {
		s.m[name] = qc.MaxWorkers
	}
	return s
}

// Has reports whether the queue is worked.
func (s *QueueSet) Has(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[name]
	return ok
}

func (s *QueueSet) add(name string, maxWorkers int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = maxWorkers
}

// Snapshot returns a copy: queue name → max workers.
func (s *QueueSet) Snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

// Names returns the queue names, sorted.
func (s *QueueSet) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.m))
}

func usedActionTypes(cfg *observers.Config) []string {
	var out []string
	for _, t := range observers.ActionTypeNames() {
		for _, o := range cfg.Observers {
			if slices.ContainsFunc(o.Actions, func(a observers.Action) bool { return a.Type() == t }) {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// rescueFloor is the least time after which a job left running by a process
// that died (SIGKILL, lost host) is worked again. River's own default is an
// hour, which would hold a killed instance's deliveries that long; it must
// stay above River's one-minute default job timeout.
const rescueFloor = 70 * time.Second

// rescueAfter is rescueFloor, or more when a job may legitimately run
// longer, so a slow job is not worked twice: a delivery's own job runs up to
// its webhook's timeout plus the wait for a slot; a batch job up to its
// hand-off wait, its slowest action (a minute for those without a timeout
// of their own), and the recording of its outcomes.
func rescueAfter(cfg *observers.Config) time.Duration {
	d := rescueFloor
	if cfg == nil {
		return d
	}
	const slack = 10 * time.Second
	batches := cfg.Concurrency.DeliveriesPerJob > 1
	if batches {
		d = max(d, BatchHandoffAfter+batchActionTimeout+timeoutMargin+batchRecordTimeout+slack)
	}
	for _, o := range cfg.Observers {
		for _, a := range o.Actions {
			if a.AttemptTimeout() == 0 {
				continue
			}
			d = max(d, a.AttemptTimeout()+timeoutMargin+slotWait+slack)
			if batches {
				d = max(d, BatchHandoffAfter+actionTimeout(a)+timeoutMargin+batchRecordTimeout+slack)
			}
		}
	}
	return d
}

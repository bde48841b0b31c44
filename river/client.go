package river

import (
	"log/slog"
	"os"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// ClientParams configures the River client of a `run` process.
type ClientParams struct {
	Pool     *pgxpool.Pool
	Config   *observers.Config // worker settings come from its workers: block
	Configs  *ConfigStore
	Webhooks *observers.WebhookClient
	Mailer   *observers.Mailer          // sends email actions; nil: one reading Getenv
	Breakers *observers.BreakerRegistry // circuit breakers per endpoint; nil: none
	Metrics  *observers.Metrics
	Logger   *slog.Logger
	Getenv   func(string) (string, bool) // default os.LookupEnv
	Cache    storage.Cache               // action result cache (see WorkerParams.Cache); nil: none
	// InsertOnly builds a client that enqueues but works no jobs.
	InsertOnly bool
}

// Retention of finished jobs. Discarded and cancelled jobs are the
// dead-letter queue and are kept longer.
const (
	CompletedRetentionDefault  = 24 * time.Hour
	DeadLetterRetentionDefault = 30 * 24 * time.Hour
)

// NewClient builds a River client that works observer actions on QueueName.
func NewClient(p ClientParams) (*river.Client[pgx.Tx], error) {
	if p.Getenv == nil {
		p.Getenv = os.LookupEnv
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Metrics == nil {
		p.Metrics = observers.NewMetrics(nil)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, NewActionWorker(WorkerParams{
		Pool: p.Pool, Configs: p.Configs, Webhooks: p.Webhooks, Mailer: p.Mailer, Breakers: p.Breakers,
		Metrics: p.Metrics, Logger: p.Logger, Getenv: p.Getenv, Cache: p.Cache,
	}))
	rc := &river.Config{
		Logger:                      p.Logger.With(slog.String("component", "river")),
		Workers:                     workers,
		CompletedJobRetentionPeriod: CompletedRetentionDefault,
		CancelledJobRetentionPeriod: DeadLetterRetentionDefault,
		DiscardedJobRetentionPeriod: DeadLetterRetentionDefault,
	}
	if !p.InsertOnly {
		w := p.Config.Workers
		rc.FetchCooldown = w.FetchCooldown
		rc.FetchPollInterval = w.FetchPollInterval
		rc.Queues = map[string]river.QueueConfig{QueueName: {MaxWorkers: w.MaxWorkers}}
	}
	client, err := river.NewClient(riverpgxv5.New(p.Pool), rc)
	if err != nil {
		return nil, errors.Wrap(err, "create river client")
	}
	return client, nil
}

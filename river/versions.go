package river

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/observers"
	"github.com/fraiseql/fraiseql-observers/observers/changelog"
	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Version is one immutable configuration version with its change-log reader.
type Version struct {
	ID     int64
	Config *observers.Config
	Log    *changelog.ChangeLog
}

// ConfigStore stores each loaded configuration once, as an immutable version
// (observer_config_versions), and gives workers the version a job was matched
// under. Versions are cached in memory for the life of the process.
type ConfigStore struct {
	pool *pgxpool.Pool
	mu   sync.Mutex
	byID map[int64]*Version
}

// NewConfigStore returns a store reading observer_config_versions through pool.
func NewConfigStore(pool *pgxpool.Pool) *ConfigStore {
	return &ConfigStore{pool: pool, byID: map[int64]*Version{}}
}

// Register records cfg as a version (once per distinct content), loaded by
// a `run` process now (Latest), and returns it.
func (s *ConfigStore) Register(ctx context.Context, cfg *observers.Config) (*Version, error) {
	id, err := dbsqlc.New(s.pool).ConfigVersionUpsert(ctx, dbsqlc.ConfigVersionUpsertParams{
		Hash: cfg.Hash, Source: string(cfg.Source),
	})
	if err != nil {
		return nil, errors.Wrap(err, "store config version")
	}
	return s.add(id, cfg)
}

// Store records cfg as a version (once per distinct content) without
// marking it loaded: `replay --config` names it in its jobs, but no `run`
// process uses it, so Latest does not return it.
func (s *ConfigStore) Store(ctx context.Context, cfg *observers.Config) (*Version, error) {
	id, err := dbsqlc.New(s.pool).ConfigVersionStore(ctx, dbsqlc.ConfigVersionStoreParams{
		Hash: cfg.Hash, Source: string(cfg.Source),
	})
	if err != nil {
		return nil, errors.Wrap(err, "store config version")
	}
	return s.add(id, cfg)
}

// Latest returns the version a `run` process loaded last (at its start or
// a reload): the configuration the running daemon uses. It wraps
// is marked storage.ErrNotFound when no `run` process loaded one since
// migration 00016.
func (s *ConfigStore) Latest(ctx context.Context) (*Version, error) {
	id, err := dbsqlc.New(s.pool).ConfigVersionLatest(ctx)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errors.WithHint(errors.Mark(errors.New("no configuration version was loaded by a `run` process"), storage.ErrNotFound),
			"start `fraiseql-observers run` against this database once, or pass --config observers.yaml")
	}
	if err != nil {
		return nil, errors.Wrap(err, "find the latest config version")
	}
	return s.Get(ctx, id)
}

// Get returns configuration version id, loading and compiling it on first use.
func (s *ConfigStore) Get(ctx context.Context, id int64) (*Version, error) {
	if v := s.cached(id); v != nil {
		return v, nil
	}
	row, err := dbsqlc.New(s.pool).ConfigVersionGet(ctx, id)
	if err != nil {
		return nil, errors.Wrapf(err, "load config version %d", id)
	}
	cfg, _, err := observers.ParseVersion(fmt.Sprintf("config-version-%d.yaml", id), []byte(row.Source))
	if err != nil {
		return nil, errors.Wrapf(err, "compile config version %d", id)
	}
	return s.add(id, cfg)
}

func (s *ConfigStore) add(id int64, cfg *observers.Config) (*Version, error) {
	cl, err := changelog.New(cfg.Listener.Table)
	if err != nil {
		return nil, err
	}
	v := &Version{ID: id, Config: cfg, Log: cl}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.byID[id]; old != nil {
		return old, nil
	}
	s.byID[id] = v
	return v, nil
}

// cached returns a version only if it is already in memory (no I/O).
func (s *ConfigStore) cached(id int64) *Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// lookup is Get for callers without a context (River's Timeout and
// NextRetry hooks): the cached version, else one read bounded by
// lookupTimeout; nil when it cannot be had.
func (s *ConfigStore) lookup(id int64) *Version {
	if v := s.cached(id); v != nil {
		return v
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	v, err := s.Get(ctx, id)
	if err != nil {
		return nil
	}
	return v
}

// lookupTimeout bounds lookup's read.
const lookupTimeout = 5 * time.Second

// latestScan bounds the versions Latest looks at.
const latestScan = 20

// LatestFor returns the version a `run` process loaded last among those
// whose listener reads the change log table ("" for any), looking at the
// latestScan most recently loaded (then stored) versions; nil when there
// is none (the daemon has never run, or only on other tables).
func (s *ConfigStore) LatestFor(ctx context.Context, table string) (*Version, error) {
	ids, err := dbsqlc.New(s.pool).ConfigVersionRecent(ctx, latestScan)
	if err != nil {
		return nil, errors.Wrap(err, "list config versions")
	}
	for _, id := range ids {
		v, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if table == "" || observers.SameTable(v.Config.Listener.Table, table) {
			return v, nil
		}
	}
	return nil, nil
}

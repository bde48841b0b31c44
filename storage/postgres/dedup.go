package postgres

import (
	"cmp"
	"context"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Defaults of DedupConfig.
const (
	DedupWindowDefault    = 5 * time.Minute
	DedupOpTimeoutDefault = 10 * time.Second
)

// DedupConfig configures a Dedup.
type DedupConfig struct {
	// Window is how long a claimed key stays seen. Default 5m.
	Window time.Duration
	// OpTimeout bounds Cleanup. Default 10s.
	OpTimeout time.Duration
}

// WithDefaults returns c with zero fields set to their defaults.
func (c DedupConfig) WithDefaults() DedupConfig {
	c.Window = cmp.Or(c.Window, DedupWindowDefault)
	c.OpTimeout = cmp.Or(c.OpTimeout, DedupOpTimeoutDefault)
	return c
}

// Dedup keeps claimed keys in observer_dedup_keys. Claim inserts them in the
// caller's enqueue transaction with one statement for the whole batch, so a
// key exists exactly when that transaction committed: nothing else is needed
// for the no-loss guarantee. It implements storage.Dedup.
type Dedup struct {
	pool *pgxpool.Pool
	cfg  DedupConfig
}

var _ storage.Dedup = (*Dedup)(nil)

// NewDedup returns a Dedup on pool (used only by Cleanup; Claim uses the
// caller's transaction).
func NewDedup(pool *pgxpool.Pool, cfg DedupConfig) *Dedup {
	return &Dedup{pool: pool, cfg: cfg.WithDefaults()}
}

// Backend returns "postgres".
func (d *Dedup) Backend() string { return "postgres" }

// Claim claims keys in tx; see storage.Dedup.
func (d *Dedup) Claim(ctx context.Context, tx pgx.Tx, keys []string) ([]bool, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	distinct := storage.Distinct(keys)
	got, err := dbsqlc.New(tx).DedupClaim(ctx, dbsqlc.DedupClaimParams{
		Keys: distinct, WindowSeconds: d.cfg.Window.Seconds(),
	})
	if err != nil {
		return nil, errors.Wrap(interpretError(err), "dedup: claim keys")
	}
	fresh := make(map[string]bool, len(got))
	for _, k := range got {
		fresh[k] = true
	}
	return storage.FirstFresh(keys, fresh), nil
}

// Cleanup deletes expired keys.
func (d *Dedup) Cleanup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.OpTimeout)
	defer cancel()
	if _, err := dbsqlc.New(d.pool).DedupCleanup(ctx); err != nil {
		return errors.Wrap(interpretError(err), "dedup: delete expired keys")
	}
	return nil
}

package redis

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/fraiseql/fraiseql-observers/sql/dbsqlc"
	"github.com/fraiseql/fraiseql-observers/storage"
)

// Defaults of DedupConfig.
const (
	DedupPrefixDefault = "fraiseql-observers:dedup:"
	DedupWindowDefault = 5 * time.Minute
	// DedupTokenGraceDefault is how long a token row outlives the window: a
	// key's TTL starts when it is written, a little after its token's row, and
	// a batch lasts at most 30s.
	DedupTokenGraceDefault = 2 * time.Minute
	// dedupMaxRounds bounds the claim/judge/take-over rounds of one Claim; a
	// key still undecided after them is processed (a duplicate is acceptable,
	// a loss is not). One round is the normal case, two after a crash.
	dedupMaxRounds = 4
)

// DedupConfig configures a Dedup.
type DedupConfig struct {
	Prefix     string        // prepended to every key in Redis; default "fraiseql-observers:dedup:"
	Window     time.Duration // how long a key stays seen; default 5m
	OpTimeout  time.Duration // bounds each round trip to Redis; default 2s
	TokenGrace time.Duration // token rows are kept Window+TokenGrace; default 2m
}

// WithDefaults returns c with zero fields set to their defaults.
func (c DedupConfig) WithDefaults() DedupConfig {
	c.Prefix = cmp.Or(c.Prefix, DedupPrefixDefault)
	c.Window = cmp.Or(c.Window, DedupWindowDefault)
	c.OpTimeout = cmp.Or(c.OpTimeout, OpTimeoutDefault)
	c.TokenGrace = cmp.Or(c.TokenGrace, DedupTokenGraceDefault)
	return c
}

// Dedup keeps claimed keys in Redis, with the window as their TTL, and ties
// each claim to the Postgres enqueue transaction that made it.
//
// Why not simply SET NX? Redis is not part of the enqueue transaction: a key
// written to Redis by a transaction that then rolls back (or whose process
// dies before COMMIT) would make the replay of the batch skip the event, and
// it would be lost. So every Claim works with a fresh random token:
//
//  1. It inserts (token, committed=true) into observer_dedup_tokens inside the
//     enqueue transaction. The row becomes visible only if that transaction
//     commits.
//  2. For each key, one Lua script (pipelined, one round trip) sets
//     key = token with the window as TTL if the key is absent, and otherwise
//     returns the token the key holds.
//  3. A key holding another token T is judged by T's row. The claimer first
//     inserts (T, committed=false) ON CONFLICT DO NOTHING: if T's writer is
//     still open, this waits for it; if T has no row (its transaction rolled
//     back, or died), the insert succeeds and is a tombstone that would make
//     a late writer of T fail on the primary key instead of committing. Then
//     a key whose T is committed is seen (skipped); any other key is taken
//     over (compare-and-set from T to our token) and processed.
//
// So a key counts as seen exactly when the transaction that enqueued the
// event's jobs committed: a crash between the Redis write and the commit
// leaves a key whose token is never committed, and the replay takes it over
// and processes the event. Keys expire by TTL; Cleanup deletes token rows
// older than the window plus TokenGrace. Losing Redis data (a restart without
// persistence) can only let duplicates through, never drop an event.
//
// Errors from Redis are marked storage.ErrUnavailable; the transaction is
// then intact and the caller applies its on_error policy.
type Dedup struct {
	rdb  goredis.UniversalClient
	pool *pgxpool.Pool
	cfg  DedupConfig
}

var _ storage.Dedup = (*Dedup)(nil)

// NewDedup returns a Dedup on rdb; pool is used by Cleanup (Claim uses the
// caller's transaction).
func NewDedup(rdb goredis.UniversalClient, pool *pgxpool.Pool, cfg DedupConfig) *Dedup {
	return &Dedup{rdb: rdb, pool: pool, cfg: cfg.WithDefaults()}
}

// Backend returns "redis".
func (d *Dedup) Backend() string { return "redis" }

// claimScript sets KEYS[1] to ARGV[1] (our token) for ARGV[2] ms when the key
// is absent or holds ARGV[3] (a token judged void), and returns the token the
// key holds afterwards.
var claimScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return cur
`)

// Claim claims keys in tx; see the type's comment and storage.Dedup.
func (d *Dedup) Claim(ctx context.Context, tx pgx.Tx, keys []string) ([]bool, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	q := dbsqlc.New(tx)
	token := newToken()
	if err := q.DedupTokenCommit(ctx, token); err != nil {
		return nil, errors.Wrap(err, "dedup: record claim token")
	}
	fresh := map[string]bool{}
	pending := storage.Distinct(keys)
	void := map[string]string{} // key → the token it holds, judged void
	for round := 0; len(pending) > 0; round++ {
		if round == dedupMaxRounds {
			for _, k := range pending {
				fresh[k] = true // undecided: process rather than risk a loss
			}
			break
		}
		held, err := d.claimRound(ctx, pending, token, void)
		if err != nil {
			return nil, err
		}
		var others []string // keys held by another token
		tokens := map[string]struct{}{}
		for i, k := range pending {
			if held[i] == token {
				fresh[k] = true
				continue
			}
			others = append(others, k)
			tokens[held[i]] = struct{}{}
		}
		if len(others) == 0 {
			break
		}
		list := make([]string, 0, len(tokens))
		for t := range tokens {
			list = append(list, t)
		}
		// Waits for open writers of these tokens; tombstones the dead ones.
		if _, err := q.DedupTokenTombstone(ctx, list); err != nil {
			return nil, errors.Wrap(err, "dedup: judge claim tokens")
		}
		committed, err := q.DedupTokenCommitted(ctx, list)
		if err != nil {
			return nil, errors.Wrap(err, "dedup: read committed tokens")
		}
		ok := make(map[string]bool, len(committed))
		for _, t := range committed {
			ok[t] = true
		}
		heldBy := make(map[string]string, len(others))
		for i, k := range pending {
			heldBy[k] = held[i]
		}
		pending = pending[:0:0]
		for _, k := range others {
			if ok[heldBy[k]] {
				continue // seen: claimed by a committed transaction
			}
			void[k] = heldBy[k]
			pending = append(pending, k)
		}
	}
	return storage.FirstFresh(keys, fresh), nil
}

// claimRound runs claimScript for every key in one pipelined round trip and
// returns the token each key holds afterwards.
func (d *Dedup) claimRound(ctx context.Context, keys []string, token string, void map[string]string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.OpTimeout)
	defer cancel()
	ttl := strconv.FormatInt(max(d.cfg.Window.Milliseconds(), 1), 10)
	pipe := d.rdb.Pipeline()
	cmds := make([]*goredis.Cmd, len(keys))
	for i, k := range keys {
		cmds[i] = claimScript.Eval(ctx, pipe, []string{d.cfg.Prefix + k}, token, ttl, void[k])
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable(err, "dedup claim")
	}
	out := make([]string, len(keys))
	for i, c := range cmds {
		s, err := c.Text()
		if err != nil {
			return nil, unavailable(err, "dedup claim")
		}
		out[i] = s
	}
	return out, nil
}

// Cleanup deletes token rows that no live key can still name.
func (d *Dedup) Cleanup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := dbsqlc.New(d.pool).DedupTokenCleanup(ctx, (d.cfg.Window + d.cfg.TokenGrace).Seconds()); err != nil {
		return errors.Wrap(err, "dedup: delete old claim tokens")
	}
	return nil
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

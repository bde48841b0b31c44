package storage

import (
	"context"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
)

// ErrLocked is returned by BreakerStore.Lock when another holder has the lock.
var ErrLocked = errors.New("storage: locked by another holder")

// BreakerName maps a gobreaker key ("gobreaker:mutex:NAME" or
// "gobreaker:state:NAME") to the breaker's name, NAME; any other key is
// returned as is.
func BreakerName(key string) string {
	for _, p := range []string{"gobreaker:mutex:", "gobreaker:state:"} {
		if s, ok := strings.CutPrefix(key, p); ok {
			return s
		}
	}
	return key
}

// BreakerStore shares circuit-breaker state between instances. Its method
// set is gobreaker's SharedDataStore (github.com/sony/gobreaker/v2), so any
// store written for gobreaker fits, and a BreakerStore can be handed to
// gobreaker.NewDistributedCircuitBreaker as is.
//
// gobreaker names its keys "gobreaker:mutex:NAME" (Lock, Unlock) and
// "gobreaker:state:NAME" (GetData, SetData); a store may map both to NAME.
// Calls take no context: each bounds itself with its own timeout.
type BreakerStore interface {
	// Lock takes the lock named key without waiting: ErrLocked (possibly
	// wrapped) when another holder has it. A lock whose holder dies is freed
	// after a bounded time (a lease), never held for ever.
	Lock(key string) error
	// Unlock releases a lock taken by this store; releasing a lock that was
	// lost (its lease expired) is not an error.
	Unlock(key string) error
	// GetData returns the value stored under key, or nil and no error when
	// there is none.
	GetData(key string) ([]byte, error)
	// SetData stores data (gobreaker's JSON-encoded SharedState) under key.
	SetData(key string, data []byte) error
}

// RateLimitStore keeps the token buckets of rate limits, shared by every
// instance (observers/ratelimit). A bucket is named by key; it holds burst
// tokens and gains one every interval, and a bucket never used is full.
type RateLimitStore interface {
	// Take takes one token of key's bucket, atomically for every instance.
	// It returns 0 when the token was taken; otherwise nothing is taken and
	// it returns how long the request should wait: its place in a wait line
	// of refused requests, each told to come back one interval after the one
	// before, so that a backlog returns spread out rather than all at once
	// (it is then asked again, and may have to wait again).
	Take(ctx context.Context, key string, interval time.Duration, burst int) (wait time.Duration, err error)
	// Backend names the implementation ("postgres", "redis") for metrics.
	Backend() string
}

// ErrNotFound is returned by Cache.Get when the key is absent or expired.
var ErrNotFound = errors.New("storage: not found")

// ErrUnavailable marks an error of a backend outside Postgres (Redis) that
// left the caller's Postgres transaction intact: the caller may apply its
// degradation policy and carry on. Test it with errors.Is.
var ErrUnavailable = errors.New("storage: backend unavailable")

// Dedup remembers the content keys of events for a window, so that the same
// change logged twice within it runs its actions once.
//
// Claims are tied to the enqueue transaction: a key counts as seen only once
// the transaction that claimed it has committed. If it rolls back (or the
// process dies before COMMIT), the claim is void and a replay claims the key
// afresh, so a claim never drops an event.
type Dedup interface {
	// Claim claims keys inside the enqueue transaction tx and returns, for
	// each keys[i], whether it is fresh: not claimed by a committed
	// transaction within the window. Of a key repeated in keys, only the
	// first occurrence is fresh. An error wrapping ErrUnavailable leaves tx
	// usable (the backend failed, Postgres did not); any other error may
	// have aborted tx.
	Claim(ctx context.Context, tx pgx.Tx, keys []string) ([]bool, error)
	// Cleanup removes expired state. The caller runs it periodically
	// (the listener: at most once a minute, outside any batch).
	Cleanup(ctx context.Context) error
	// Backend names the implementation ("postgres", "redis") for metrics.
	Backend() string
}

// Cache stores values under keys for a time to live. Values are opaque bytes.
type Cache interface {
	// Get returns the value under key, or ErrNotFound (possibly wrapped)
	// when it is absent or expired.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key for ttl, replacing any value.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// SetNX stores value under key for ttl only when the key is absent or
	// expired, and reports whether it did. Of concurrent SetNX calls on one
	// key, from any number of processes, exactly one wins.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Delete removes keys; absent keys are not an error.
	Delete(ctx context.Context, keys ...string) error
	// Backend names the implementation ("postgres", "redis") for metrics.
	Backend() string
}

// ErrRejected marks a backend error that a retry would meet again (the
// document or the request is invalid, a constraint refused it): the caller
// gives up instead of retrying. Test it with errors.Is.
var ErrRejected = errors.New("storage: rejected by the backend")

// Invalidator deletes an application's cache keys, for the cache action.
// Patterns use Redis glob syntax: a pattern without an unescaped *, ? or [
// names one key; any other deletes every key it matches.
type Invalidator interface {
	// Invalidate deletes the keys pattern names and returns how many there
	// were. Errors wrap ErrUnavailable.
	Invalidate(ctx context.Context, pattern string) (deleted int64, err error)
}

// Distinct returns keys without repeats, in first-seen order. Dedup
// implementations use it to claim each key once.
func Distinct(keys []string) []string {
	seen := make(map[string]struct{}, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			out = append(out, k)
		}
	}
	return out
}

// FirstFresh maps the set of freshly claimed keys back onto keys: keys[i] is
// fresh when it is in fresh and is the first occurrence of that key.
func FirstFresh(keys []string, fresh map[string]bool) []bool {
	out := make([]bool, len(keys))
	used := make(map[string]bool, len(fresh))
	for i, k := range keys {
		if fresh[k] && !used[k] {
			out[i], used[k] = true, true
		}
	}
	return out
}

package redis

import (
	"context"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fraiseql/fraiseql-observers/storage"
)

// scanCount is the COUNT hint of each SCAN and the UNLINK batch.
const scanCount = 500

// Invalidator deletes an application's keys by pattern on a Redis server:
// DEL for an exact key, SCAN MATCH and UNLINK in batches for a glob. It
// implements storage.Invalidator.
type Invalidator struct {
	rdb goredis.Cmdable
}

var _ storage.Invalidator = (*Invalidator)(nil)

// NewInvalidator returns an Invalidator on rdb (the redis: block's client;
// redis.key_prefix does not apply: the keys are the application's).
func NewInvalidator(rdb goredis.Cmdable) *Invalidator { return &Invalidator{rdb: rdb} }

// Invalidate implements storage.Invalidator.
func (i *Invalidator) Invalidate(ctx context.Context, pattern string) (int64, error) {
	if key, exact := ExactKey(pattern); exact {
		n, err := i.rdb.Del(ctx, key).Result()
		if err != nil {
			return 0, unavailable(err, "DEL "+quote(key))
		}
		return n, nil
	}
	var removed int64
	var cursor uint64
	for {
		keys, next, err := i.rdb.Scan(ctx, cursor, pattern, scanCount).Result()
		if err != nil {
			return removed, unavailable(err, "SCAN MATCH "+quote(pattern))
		}
		if len(keys) > 0 {
			n, err := i.rdb.Unlink(ctx, keys...).Result()
			if err != nil {
				return removed, unavailable(err, "UNLINK keys matching "+quote(pattern))
			}
			removed += n
		}
		if next == 0 {
			return removed, nil
		}
		cursor = next
	}
}

// ExactKey reports whether pattern has no unescaped wildcard (* ? [), and
// then returns the key it names, escapes removed.
func ExactKey(pattern string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '\\':
			if i+1 < len(pattern) {
				i++
				b.WriteByte(pattern[i])
			}
		case '*', '?', '[':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

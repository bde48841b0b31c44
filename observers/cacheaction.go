package observers

import (
	"context"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/goccy/go-yaml/ast"
	goredis "github.com/redis/go-redis/v9"
)

// Cache action settings.
const (
	CacheActionInvalidate = "invalidate"
	CacheActionDefault    = CacheActionInvalidate
	// CacheActionTimeoutDefault bounds one invalidation (a whole SCAN).
	CacheActionTimeoutDefault = 30 * time.Second
	// cacheScanCount is the COUNT hint of each SCAN and the UNLINK batch.
	cacheScanCount = 500
)

var (
	cacheActionKeys = []string{"type", "key_pattern", "action"}
	cacheActions    = []string{CacheActionInvalidate}
)

// CacheAction invalidates application keys in the Redis of the top-level
// redis: block (redis.key_prefix does not apply: the keys are the
// application's). KeyPattern is a template: event values are glob-escaped
// before substitution, so only the pattern's literal text can hold wildcards
// ("app:order:{{ id }}:*"). A rendered pattern without wildcards names one
// key (DEL); otherwise its matches are found with SCAN and UNLINKed.
type CacheAction struct {
	KeyPattern string // template source; required
	Action     string // invalidate (the default and only action)

	keyPattern *Template // compiled KeyPattern, set by the loader
	at         ast.Node  // position, for the redis.url check; cleared after loading
}

// Pattern renders the key pattern over the event with every substituted
// value glob-escaped. A placeholder without a value (missing, null or "")
// is an error: it could widen the pattern ("{{ id }}*" → "*").
func (c *CacheAction) Pattern(ev *Event) (string, error) {
	t := c.keyPattern
	if t == nil {
		var err error
		if t, err = CompileTemplate(c.KeyPattern); err != nil {
			return "", errors.Wrap(err, "cache action: key_pattern")
		}
	}
	data := TemplateData(ev)
	if ev.Kind == KindDelete && len(ev.Data) == 0 && len(ev.Before) > 0 {
		data = templateData(ev, ev.Before) // a DELETE's values are in its before image
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.path == nil {
			b.WriteString(p.text)
			continue
		}
		v, ok := lookupPath(data, p.name, p.path)
		s := ""
		if ok {
			s = renderValue(v)
		}
		if s == "" {
			return "", errors.WithHint(errors.Newf("cache action: key_pattern placeholder {{ %s }} has no value in the event", p.name),
				"the event's data must carry every field the key_pattern names")
		}
		b.WriteString(EscapeGlob(s))
	}
	return b.String(), nil
}

// EscapeGlob escapes Redis glob metacharacters (* ? [ ] \) in s.
func EscapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
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

// InvalidateCache deletes the key pattern names: DEL for an exact key, SCAN
// MATCH and UNLINK in batches for a glob. It returns the number of keys
// removed. Redis errors are transient *DeliveryError.
func InvalidateCache(ctx context.Context, rdb goredis.Cmdable, pattern string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, CacheActionTimeoutDefault)
	defer cancel()
	if key, exact := ExactKey(pattern); exact {
		n, err := rdb.Del(ctx, key).Result()
		if err != nil {
			return 0, &DeliveryError{Err: errors.Wrapf(err, "cache action: DEL %q", key)}
		}
		return n, nil
	}
	var removed int64
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, pattern, cacheScanCount).Result()
		if err != nil {
			return removed, &DeliveryError{Err: errors.Wrapf(err, "cache action: SCAN MATCH %q", pattern)}
		}
		if len(keys) > 0 {
			n, err := rdb.Unlink(ctx, keys...).Result()
			if err != nil {
				return removed, &DeliveryError{Err: errors.Wrapf(err, "cache action: UNLINK keys matching %q", pattern)}
			}
			removed += n
		}
		if next == 0 {
			return removed, nil
		}
		cursor = next
	}
}

func (l *loader) cacheAction(fields []entry, at ast.Node, where string) (*CacheAction, bool) {
	c := &CacheAction{at: at}
	ok := true
	for _, f := range l.actionFields(fields, cacheActionKeys, where) {
		switch f.key {
		case "key_pattern":
			c.KeyPattern, c.keyPattern = l.templateField(f, where)
			if c.KeyPattern != "" && c.keyPattern == nil {
				ok = false
			}
		case "action":
			c.Action = l.oneOf(f, where+".action", cacheActions) // reports an unknown one
		}
	}
	if c.KeyPattern == "" && ok {
		l.errorf(at, where+": cache action needs key_pattern",
			`set key_pattern: "app:order:{{ id }}" (a glob such as "app:order:{{ id }}:*" deletes every match)`)
		ok = false
	}
	if c.Action == "" {
		c.Action = CacheActionDefault
	}
	return c, ok
}

// checkCacheActions reports, at the first cache action, a configuration
// without redis.url.
func (l *loader) checkCacheActions(cfg *Config) {
	var first ast.Node
	for _, o := range cfg.Observers {
		for _, a := range o.Actions {
			if a.Cache == nil {
				continue
			}
			if first == nil {
				first = a.Cache.at
			}
			a.Cache.at = nil // the syntax tree is not kept
		}
	}
	if first != nil && cfg.Redis.URL == "" {
		l.errorf(first, "cache actions need redis.url",
			"add a top-level redis: {url: redis://127.0.0.1:6379/0}: the keys are deleted in that Redis")
	}
}

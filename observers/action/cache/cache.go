package cache

import (
	"context"
	_ "embed"
	"log/slog"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Name is the cache action's type:.
const Name = "cache"

// Cache action settings.
const (
	ActionInvalidate = "invalidate"
	ActionDefault    = ActionInvalidate
	// TimeoutDefault bounds one invalidation (a whole SCAN).
	TimeoutDefault = 30 * time.Second
)

func init() { observers.RegisterActionType(Type{}) }

//go:embed schema.json
var schema []byte

// Type is the cache action type: invalidate application cache keys.
type Type struct{}

// Name implements observers.ActionType.
func (Type) Name() string { return Name }

// Schema implements observers.ActionType.
func (Type) Schema() []byte { return schema }

// Action invalidates application keys in the Redis of the top-level redis:
// block (redis.key_prefix does not apply: the keys are the application's).
// KeyPattern is a template: event values are glob-escaped before
// substitution, so only the pattern's literal text can hold wildcards
// ("app:order:{{ id }}:*"). A rendered pattern without wildcards names one
// key; otherwise every match is deleted (storage.Invalidator).
type Action struct {
	KeyPattern string // template source; required
	Action     string // invalidate (the default and only action)

	keyPattern *observers.Template // compiled KeyPattern, set by Decode
}

// Type implements observers.Action.
func (*Action) Type() string { return Name }

// AttemptTimeout implements observers.Action.
func (*Action) AttemptTimeout() time.Duration { return TimeoutDefault }

// Pattern renders the key pattern over the event with every substituted
// value glob-escaped. A placeholder without a value (missing, null or "")
// is an error: it could widen the pattern ("{{ id }}*" → "*").
func (c *Action) Pattern(ev *observers.Event) (string, error) {
	t := c.keyPattern
	if t == nil {
		var err error
		if t, err = observers.CompileTemplate(c.KeyPattern); err != nil {
			return "", errors.Wrap(err, "cache action: key_pattern")
		}
	}
	data := observers.TemplateData(ev)
	if ev.Kind == observers.KindDelete && len(ev.Data) == 0 && len(ev.Before) > 0 {
		data = observers.TemplateDataOf(ev, ev.Before) // a DELETE's values are in its before image
	}
	return t.RenderFunc(data, func(name string, v any, found bool) (string, error) {
		s := ""
		if found {
			s = observers.RenderValue(v)
		}
		if s == "" {
			return "", errors.WithHint(errors.Newf("cache action: key_pattern placeholder {{ %s }} has no value in the event", name),
				"the event's data must carry every field the key_pattern names")
		}
		return EscapeGlob(s), nil
	})
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

// Run implements observers.Action: the keys the pattern names are deleted
// through the process's Invalidator (the redis: block's client). Its errors
// are transient.
func (c *Action) Run(ctx context.Context, d *observers.Delivery) error {
	if d.Env == nil || d.Env.Invalidator == nil {
		return observers.Permanent(errors.WithHint(errors.New("cache action: no Redis client"),
			"set a top-level redis: {url: …}; it is read at start"))
	}
	pattern, err := c.Pattern(d.Event)
	if err != nil {
		return observers.Permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, TimeoutDefault)
	defer cancel()
	n, err := d.Env.Invalidator.Invalidate(ctx, pattern)
	if err != nil {
		return &observers.DeliveryError{Err: errors.Wrap(err, "cache action")}
	}
	d.Env.Log().LogAttrs(ctx, slog.LevelDebug, "worker: cache keys invalidated",
		append(d.LogAttrs(), slog.String("pattern", pattern), slog.Int64("deleted", n))...)
	return nil
}

// Settings implements observers.Action.
func (c *Action) Settings() []observers.Setting {
	return []observers.Setting{{Key: "key_pattern", Value: c.KeyPattern}, {Key: "action", Value: c.Action}}
}

// CheckConfig implements observers.ConfigChecker: the keys are deleted in
// the Redis of the redis: block, which must be set.
func (Type) CheckConfig(c *observers.ConfigCheck) {
	if c.Config().Redis.URL == "" {
		c.Errorf(c.Actions()[0], "cache actions need redis.url",
			"add a top-level redis: {url: redis://127.0.0.1:6379/0}: the keys are deleted in that Redis")
	}
}

// Decode implements observers.ActionType.
func (Type) Decode(b *observers.ActionBlock) observers.Action {
	c := &Action{}
	bad := false
	for _, f := range b.Fields() {
		switch f.Key() {
		case "key_pattern":
			c.KeyPattern, c.keyPattern = f.Template()
			bad = bad || (c.KeyPattern != "" && c.keyPattern == nil)
		case "action":
			c.Action = f.OneOf(ActionInvalidate) // reports an unknown one
		}
	}
	if c.KeyPattern == "" && !bad {
		b.Errorf(b.Where()+": cache action needs key_pattern",
			`set key_pattern: "app:order:{{ id }}" (a glob such as "app:order:{{ id }}:*" deletes every match)`)
	}
	if c.Action == "" {
		c.Action = ActionDefault
	}
	return c
}

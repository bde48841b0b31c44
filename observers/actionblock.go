package observers

import (
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// ActionBlock is one action's block of an observer's actions: list (YAML,
// or the JSON of an observers_table row) while an ActionType decodes it. It
// gives the block's fields and the readers that report a problem at the
// field's position, with a hint, so `validate-config` shows
// file:line:column for every action type alike.
type ActionBlock struct {
	l      *loader
	at     ast.Node // the block, for problems of the whole block
	where  string   // "observers.order_created.actions[0]"
	fields []entry  // every known key but type, in file order
}

// Where names the block in messages: "observers.order_created.actions[0]",
// or "actions[0]" in an observers_table row (whose name the diagnostic
// carries).
func (b *ActionBlock) Where() string { return b.where }

// Fields returns the block's fields, type excluded, in the order written.
// Unknown and duplicate keys were reported and are not among them.
func (b *ActionBlock) Fields() []ActionField {
	out := make([]ActionField, len(b.fields))
	for i, e := range b.fields {
		out[i] = ActionField{b: b, e: e}
	}
	return out
}

// Errorf reports a problem of the whole block, at its first line.
func (b *ActionBlock) Errorf(msg, hint string) { b.l.errorf(b.at, msg, hint) }

// ActionField is one key: value of an ActionBlock. Its readers return the
// zero value after reporting a problem at the value's position.
type ActionField struct {
	b *ActionBlock
	e entry
}

// Key is the field's key.
func (f ActionField) Key() string { return f.e.key }

// Where names the field in messages: "<block>.<key>".
func (f ActionField) Where() string { return f.b.where + "." + f.e.key }

// Errorf reports a problem at the field's value.
func (f ActionField) Errorf(msg, hint string) { f.b.l.errorf(cmpNode(f.e.value, f.e.keyN), msg, hint) }

// KeyErrorf reports a problem at the field's key (a key that conflicts
// with another, say).
func (f ActionField) KeyErrorf(msg, hint string) { f.b.l.errorf(f.e.keyN, msg, hint) }

// String reads a scalar; numbers and booleans give their text; null is "".
func (f ActionField) String() string { return f.b.l.str(f.e, f.Where()) }

// EnvName reads the name of an environment variable (a *_env key) and
// warns, once per variable, when it is unset: `run` refuses to start
// without it.
func (f ActionField) EnvName() string {
	name := f.b.l.envName(f.e, f.Where())
	f.b.l.warnUnsetEnv(f.e, name, f.e.key)
	return name
}

// Bool reads true or false.
func (f ActionField) Bool() bool { return f.b.l.boolean(f.e, f.Where()) }

// PositiveInt reads an integer greater than zero.
func (f ActionField) PositiveInt() int { return f.b.l.positiveInt(f.e, f.Where()) }

// Duration reads a positive duration with a unit (500ms, 30s, 5m).
func (f ActionField) Duration() time.Duration { return f.b.l.duration(f.e, f.Where()) }

// Timeout reads a positive duration of at most ActionTimeoutMax, for
// actions whose deliveries River bounds with its default job timeout.
func (f ActionField) Timeout() time.Duration { return f.b.l.actionTimeout(f.e, f.b.where) }

// OneOf reads a string, lower-cased, that must be one of valid; "" when it
// is not (reported) or absent.
func (f ActionField) OneOf(valid ...string) string { return f.b.l.oneOf(f.e, f.Where(), valid) }

// Template reads and compiles a template. A template that does not compile
// is reported and gives a nil *Template with the source.
func (f ActionField) Template() (string, *Template) { return f.b.l.templateField(f.e, f.b.where) }

// Mapping reads a mapping (null is empty) and returns its entries as
// fields; ok is false when the value is not a mapping (reported).
func (f ActionField) Mapping() (fields []ActionField, ok bool) {
	entries, ok := f.b.l.mapping(f.e.value, f.e.keyN, f.Where(), nil)
	block := &ActionBlock{l: f.b.l, at: f.e.keyN, where: f.Where()}
	for _, e := range entries {
		fields = append(fields, ActionField{b: block, e: e})
	}
	return fields, ok
}

// Items returns a list's items as fields of the same key, or the field
// itself when the value is not a list: for keys that take one value or a
// list of them (to: a@x or to: [a@x, b@x]).
func (f ActionField) Items() []ActionField {
	seq, ok := f.b.l.resolve(f.e.value).(*ast.SequenceNode)
	if !ok {
		return []ActionField{f}
	}
	out := make([]ActionField, len(seq.Values))
	for i, item := range seq.Values {
		out[i] = ActionField{b: f.b, e: entry{key: f.e.key, keyN: f.e.keyN, value: item}}
	}
	return out
}

// Values reads a mapping of plain values (strings, numbers, booleans,
// lists, mappings) that must encode as JSON; nil when absent or reported.
func (f ActionField) Values() map[string]any { return f.b.l.params(f.e, f.Where()) }

// CircuitBreaker reads an action's own circuit_breaker: block; CheckConfig
// merges it over the top-level one with ConfigCheck.CircuitBreaker.
func (f ActionField) CircuitBreaker() *BreakerOverride {
	return f.b.l.circuitBreaker(f.e, f.Where())
}

// ConfigCheck is what an ActionType's CheckConfig is given: the decoded
// configuration and that type's actions, with a way to report a problem at
// an action's block or at a top-level block.
type ConfigCheck struct {
	l       *loader
	cfg     *Config
	actions []decodedAction
	blocks  map[string]ast.Node // top-level keys, for BlockErrorf
}

// decodedAction is an action and where it was decoded.
type decodedAction struct {
	a     Action
	at    ast.Node
	file  string // diagnostic file: the YAML file or the observers_table row
	row   bool
	where string
}

// Config is the decoded configuration, top-level blocks defaulted.
func (c *ConfigCheck) Config() *Config { return c.cfg }

// Actions are the type's actions, in the order decoded (file, then rows).
func (c *ConfigCheck) Actions() []Action {
	out := make([]Action, len(c.actions))
	for i, d := range c.actions {
		out[i] = d.a
	}
	return out
}

// at runs fn with the loader positioned on a's source.
func (c *ConfigCheck) at(a Action, fn func(d decodedAction)) {
	for _, d := range c.actions {
		if d.a != a {
			continue
		}
		file, row := c.l.file, c.l.row
		c.l.file, c.l.row = d.file, d.row
		fn(d)
		c.l.file, c.l.row = file, row
		return
	}
}

// Errorf reports a problem at action a's block.
func (c *ConfigCheck) Errorf(a Action, msg, hint string) {
	c.at(a, func(d decodedAction) { c.l.errorf(d.at, msg, hint) })
}

// Where names action a in messages ("observers.x.actions[0]").
func (c *ConfigCheck) Where(a Action) string {
	w := ""
	c.at(a, func(d decodedAction) { w = d.where })
	return w
}

// BlockErrorf reports a problem at the top-level key named key (smtp,
// redis, …), or at the first action of the type when the file has no such
// block.
func (c *ConfigCheck) BlockErrorf(key, msg, hint string) {
	if n := c.blocks[key]; n != nil {
		c.l.errorf(n, msg, hint)
		return
	}
	if len(c.actions) > 0 {
		c.Errorf(c.actions[0].a, msg, hint)
	}
}

// CircuitBreaker merges o (nil: none) over the top-level circuit_breaker:
// block and reports, at o, a merged configuration that could never open.
func (c *ConfigCheck) CircuitBreaker(a Action, o *BreakerOverride) CircuitBreakerConfig {
	merged := o.over(c.cfg.CircuitBreaker)
	c.at(a, func(decodedAction) { c.l.checkBreaker(o, merged) })
	return merged
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

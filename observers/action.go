package observers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// ActionType is one kind of action (webhook, email, …): a plug-in that
// decodes its block of an observer's actions: list, checks it against the
// rest of the configuration, and whose decoded actions run deliveries.
// Register each type once with RegisterActionType; the configuration
// decoder, the JSON Schema test, `validate-config` and the River workers
// find it by name and never switch on it. The built-in types live in
// observers/action/<type> and are registered by importing
// observers/action/builtin.
type ActionType interface {
	// Name is the value of type: that selects the type, in lower case.
	Name() string
	// Schema is the JSON Schema definition of the type's block (the
	// `$defs/<name>Action` of schema/observers.schema.json), a JSON object
	// with "properties" and "additionalProperties": false. Its properties,
	// type included, are the keys the decoder accepts; any other key is
	// reported with a "did you mean" hint before Decode is called.
	Schema() []byte
	// Decode builds the action from its block. Problems are reported
	// through b, with their positions; the action may be nil when the block
	// cannot make one (the configuration is then invalid anyway).
	Decode(b *ActionBlock) Action
}

// Action is one decoded action of an observer. It is immutable once the
// configuration is loaded and safe for concurrent use.
type Action interface {
	// Type is the name of the action's ActionType.
	Type() string
	// Run makes one delivery attempt. It returns nil when delivered;
	// ErrCached when the result cache answered and nothing was sent; a
	// *SnoozeError when nothing was attempted and the delivery should wait
	// (an open circuit breaker); a *DeliveryError that says whether a retry
	// can help (Permanent) and how long the receiver asked to wait
	// (RetryAfter). Any other error is transient. Run honours ctx.
	Run(ctx context.Context, d *Delivery) error
	// AttemptTimeout bounds one attempt, which Run enforces itself; 0 when
	// the action has none of its own (ActionTimeoutDefault then applies).
	AttemptTimeout() time.Duration
	// Settings are the action's settings with defaults filled in, for
	// `validate-config --detailed`. Secrets never appear in them.
	Settings() []Setting
}

// ActionTimeoutDefault bounds one attempt of an action without a timeout of
// its own, as River's default job timeout does.
const ActionTimeoutDefault = time.Minute

// ConfigChecker is implemented by an ActionType whose actions depend on the
// rest of the configuration: email needs the smtp: block, cache needs
// redis.url, a webhook's circuit_breaker: merges over the top-level one.
// CheckConfig runs once per type after the whole configuration (file and
// observers_table rows) is decoded, with every action of the type.
type ConfigChecker interface {
	CheckConfig(c *ConfigCheck)
}

// Resolver is implemented by an Action that reads environment variables
// when it runs (url_env, signing_secret_env, …). Resolve reports one that is
// unset or invalid, so that `run` refuses to start, and a reload is
// rejected, instead of every delivery failing. Errors name the variable,
// never its value.
type Resolver interface {
	Resolve(getenv func(string) (string, bool)) error
}

// ParallelismLimiter is implemented by an ActionType whose deliveries
// should run fewer at a time than concurrency.max_parallelism unless
// concurrency.queues says otherwise (SMTP servers throttle parallel
// senders).
type ParallelismLimiter interface {
	MaxParallelismDefault() int
}

// Setting is one line of an action's `validate-config --detailed` output.
// Value is a string, a []string, a map[string]string or a map[string]any;
// an empty value is not shown.
type Setting struct {
	Key   string
	Value any
}

// ShortDuration renders d for people: 5m rather than 5m0s.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// actionType is a registered ActionType and what the registry read from
// its schema.
type actionType struct {
	ActionType
	keys   []string       // the schema's properties, sorted
	schema map[string]any // the decoded schema
}

var actionTypes = struct {
	sync.RWMutex
	byName map[string]*actionType
}{byName: map[string]*actionType{}}

// RegisterActionType makes t available to configurations as type:
// t.Name(). Like sql.Register, it panics when the name is taken or empty,
// or when the schema is not a JSON object with properties (type among
// them): both are programming errors.
func RegisterActionType(t ActionType) {
	name := t.Name()
	if name == "" || name != strings.ToLower(name) {
		panic(fmt.Sprintf("observers: action type name %q must be non-empty lower case", name))
	}
	var schema map[string]any
	if err := json.Unmarshal(t.Schema(), &schema); err != nil {
		panic(fmt.Sprintf("observers: action type %q: schema: %v", name, err))
	}
	props, _ := schema["properties"].(map[string]any)
	if _, ok := props["type"]; !ok {
		panic(fmt.Sprintf("observers: action type %q: schema has no properties.type", name))
	}
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	actionTypes.Lock()
	defer actionTypes.Unlock()
	if _, dup := actionTypes.byName[name]; dup {
		panic(fmt.Sprintf("observers: action type %q registered twice", name))
	}
	actionTypes.byName[name] = &actionType{ActionType: t, keys: keys, schema: schema}
}

// ActionTypeNames returns the names of every registered action type, sorted.
func ActionTypeNames() []string {
	actionTypes.RLock()
	defer actionTypes.RUnlock()
	names := make([]string, 0, len(actionTypes.byName))
	for n := range actionTypes.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LookupActionType returns the registered type named name.
func LookupActionType(name string) (ActionType, bool) {
	t := lookupActionType(name)
	if t == nil {
		return nil, false
	}
	return t.ActionType, true
}

func lookupActionType(name string) *actionType {
	actionTypes.RLock()
	defer actionTypes.RUnlock()
	return actionTypes.byName[name]
}

// ActionTypeKeys returns the keys a block of the named type accepts (its
// schema's properties), sorted; nil for an unknown type.
func ActionTypeKeys(name string) []string {
	if t := lookupActionType(name); t != nil {
		return slices.Clone(t.keys)
	}
	return nil
}

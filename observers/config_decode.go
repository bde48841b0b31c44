package observers

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Valid keys at each level of the file.
var (
	topKeys         = []string{"listener", "allow_private_targets", "workers", "concurrency", "circuit_breaker", "smtp", "redis", "dedup", "cache", "observers", "observers_table", "rate_limit", "http", "retention", "admin", "elasticsearch", "search", "audit"}
	listenerKeys    = []string{"id", "table", "batch_size", "poll_interval", "batch_bytes", "max_event_bytes", "batch_timeout"}
	workersKeys     = []string{"max_workers", "fetch_cooldown", "fetch_poll_interval"}
	concurrencyKeys = []string{"max_parallelism", "queues", "deliveries_per_job", "max_in_flight"} // queues: action type → workers
	observerKeys    = []string{"entity", "events", "condition", "actions", "retry"}
	retryKeys       = []string{"max_attempts", "initial_delay", "max_delay", "backoff_strategy"}
	breakerKeys     = []string{"enabled", "failure_threshold", "success_threshold", "timeout", "sample_size",
		"min_requests", "window", "scope", "backend"} // backend: top level only
)

const durationHint = "use a duration with a unit, such as 500ms, 30s, 5m, 1h or 30d"

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (l *loader) config(root ast.Node) *Config {
	cfg := &Config{}
	entries, ok := l.mapping(root, root, "the configuration", topKeys)
	if !ok {
		return cfg
	}
	warnEmpty, haveAdmin := true, false
	workersAt := root
	var breaker *BreakerOverride
	var stores storageSpec // config_storage.go
	var limits limitsSpec  // config_limits.go
	var search searchSpec  // config_search.go
	conc := concurrencySpec{queueAt: map[string]ast.Node{}}
	for _, e := range entries {
		l.blocks[e.key] = e.keyN
		switch e.key {
		case "listener":
			cfg.Listener = l.listener(e)
		case "allow_private_targets":
			cfg.AllowPrivateTargets = l.boolean(e, "allow_private_targets")
		case "workers":
			workersAt = e.keyN
			cfg.Workers = l.workers(e)
		case "concurrency":
			cfg.Concurrency = l.concurrency(e, &conc)
		case "circuit_breaker":
			breaker = l.circuitBreaker(e, "circuit_breaker")
		case "smtp":
			cfg.SMTP = l.smtp(e) // config_smtp.go
		case "redis": // config_storage.go
			cfg.Redis = l.redisBlock(e, &stores)
		case "dedup":
			cfg.Dedup = l.dedupBlock(e, &stores)
		case "cache":
			cfg.Cache = l.cacheBlock(e, &stores)
		case "rate_limit": // config_limits.go
			cfg.RateLimit, cfg.RateLimitBackend = l.rateLimitBlock(e, &limits)
		case "http":
			cfg.HTTP = l.httpBlock(e)
		case "retention": // config_retention.go
			cfg.Retention = l.retentionBlock(e)
		case "admin": // config_admin.go
			cfg.Admin = l.adminBlock(e)
			haveAdmin = true
		case "elasticsearch": // config_search.go
			cfg.Elasticsearch = l.elasticsearchBlock(e)
		case "search":
			cfg.Search = l.searchBlock(e, &search)
		case "audit":
			cfg.Audit = l.auditBlock(e, &search)
		case "observers":
			cfg.Observers, warnEmpty = l.observers(e)
		case "observers_table":
			cfg.ObserversTable = strings.TrimSpace(l.str(e, "observers_table"))
			if _, err := ParseTableName(cfg.ObserversTable); err != nil && cfg.ObserversTable != "" {
				l.errorf(e.value, fmt.Sprintf("observers_table %s is not a table name", QuoteShort(cfg.ObserversTable)),
					`use "schema.table", e.g. core.tb_observer`)
			}
		}
	}
	if cfg.ObserversTable != "" && !l.withRows && l.readRows != nil {
		if l.rows, l.rowsErr = l.readRows(cfg.ObserversTable); l.rowsErr == nil {
			l.withRows = true
		}
	}
	if l.withRows { // tableobservers.go
		l.tableObservers(cfg)
		sort.Slice(cfg.Observers, func(i, j int) bool { return cfg.Observers[i].Name < cfg.Observers[j].Name })
	}
	if !haveAdmin {
		cfg.Admin = AdminConfig{RiverUI: true}
	}
	cfg.Listener = cfg.Listener.WithDefaults()
	cfg.Retention = cfg.Retention.WithDefaults()
	l.checkConcurrency(cfg, &conc, workersAt)
	cfg.Workers = cfg.Workers.WithDefaults()
	if cfg.Workers.FetchPollInterval < cfg.Workers.FetchCooldown {
		l.errorf(workersAt, fmt.Sprintf("workers.fetch_poll_interval (%s) is shorter than workers.fetch_cooldown (%s)",
			cfg.Workers.FetchPollInterval, cfg.Workers.FetchCooldown), "fetch_poll_interval must be at least fetch_cooldown")
	}
	l.mergeBreakers(cfg, breaker)
	l.checkStorage(cfg, &stores)
	l.checkLimits(cfg, &limits)
	l.checkSearch(cfg, &search)
	l.checkActions(cfg)
	if warnEmpty && len(cfg.Observers) == 0 && cfg.ObserversTable == "" {
		l.warnf(root, "no observers are defined", "add an observers: map; without it no event triggers anything")
	}
	return cfg
}

func (l *loader) listener(e entry) ListenerConfig {
	var c ListenerConfig
	fields, _ := l.mapping(e.value, e.keyN, "listener", listenerKeys)
	for _, f := range fields {
		switch f.key {
		case "id":
			c.ID = l.str(f, "listener.id")
		case "table":
			c.Table = l.str(f, "listener.table")
		case "batch_size":
			c.BatchSize = l.positiveInt(f, "listener.batch_size")
		case "poll_interval":
			c.PollInterval = l.duration(f, "listener.poll_interval")
		case "batch_bytes":
			c.BatchBytes = l.byteSize(f, "listener.batch_bytes")
		case "max_event_bytes":
			c.MaxEventBytes = l.byteSize(f, "listener.max_event_bytes")
		case "batch_timeout":
			c.BatchTimeout = l.duration(f, "listener.batch_timeout")
		}
	}
	return c
}

func (l *loader) workers(e entry) WorkersConfig {
	var c WorkersConfig
	fields, _ := l.mapping(e.value, e.keyN, "workers", workersKeys)
	for _, f := range fields {
		switch f.key {
		case "max_workers":
			c.MaxWorkers = l.positiveInt(f, "workers.max_workers")
		case "fetch_cooldown":
			c.FetchCooldown = l.duration(f, "workers.fetch_cooldown")
		case "fetch_poll_interval":
			c.FetchPollInterval = l.duration(f, "workers.fetch_poll_interval")
		}
	}
	return c
}

// observers decodes the observers map; ok is false when it is not a map.
func (l *loader) observers(e entry) (out []*Observer, ok bool) {
	entries, ok := l.mapping(e.value, e.keyN, "observers", nil)
	for _, oe := range entries {
		if o := l.observer(oe); o != nil {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, ok
}

func (l *loader) observer(e entry) *Observer {
	o := &Observer{Name: e.key}
	where := "observers." + Shorten(e.key, quoteMax) + "."
	if l.row { // a table row: the diagnostic's file names the observer
		where = ""
	}
	if strings.TrimSpace(e.key) == "" {
		l.errorf(e.keyN, "observer name is empty", "name each observer, e.g. order_created:")
	}
	fields, ok := l.mapping(e.value, e.keyN, fmt.Sprintf("observer %s", QuoteShort(e.key)), observerKeys)
	if !ok {
		return nil
	}
	var haveEntity, haveEvents, haveActions bool
	retryAt := e.keyN
	for _, f := range fields {
		switch f.key {
		case "entity":
			o.Entity = strings.TrimSpace(l.str(f, where+"entity"))
			v := l.resolve(f.value)
			haveEntity = o.Entity != "" || (!isNull(v) && !isScalar(v)) // a type error is already reported
		case "events":
			haveEvents = true
			o.Events = l.events(f, where+"events")
		case "condition":
			o.Condition = l.condition(f)
		case "actions":
			haveActions = true
			o.Actions = l.actions(f, where+"actions")
		case "retry":
			retryAt = f.keyN
			o.Retry = l.retry(f, where+"retry")
		}
	}
	if !haveEntity {
		l.errorf(e.keyN, fmt.Sprintf("observer %s has no entity", QuoteShort(e.key)),
			`add entity: <entity type> (the change log's object_type), or entity: "*" for every entity`)
	}
	if !haveEvents {
		l.errorf(e.keyN, fmt.Sprintf("observer %s has no events", QuoteShort(e.key)), "add events: [INSERT, UPDATE, DELETE] (or a subset)")
	}
	if !haveActions {
		l.errorf(e.keyN, fmt.Sprintf("observer %s has no actions", QuoteShort(e.key)),
			"add actions: with at least one item, e.g. - type: webhook")
	}
	o.Retry = o.Retry.WithDefaults()
	if o.Retry.MaxDelay < o.Retry.InitialDelay {
		l.errorf(retryAt, fmt.Sprintf("observer %s: retry.max_delay (%s) is shorter than retry.initial_delay (%s)",
			QuoteShort(e.key), o.Retry.MaxDelay, o.Retry.InitialDelay), "raise max_delay or lower initial_delay")
	}
	return o
}

func (l *loader) events(e entry, where string) []Kind {
	seq, ok := l.resolve(e.value).(*ast.SequenceNode)
	if !ok {
		l.errorf(cmpNode(e.value, e.keyN), fmt.Sprintf("%s must be a list, got %s", where, typeName(l.resolve(e.value))),
			"write events: [INSERT] or events: [INSERT, UPDATE]")
		return nil
	}
	if len(seq.Values) == 0 {
		l.errorf(seq, where+" is empty", "list at least one of INSERT, UPDATE, DELETE, CUSTOM")
		return nil
	}
	var out []Kind
	for _, item := range seq.Values {
		v := l.resolve(item)
		if !isScalar(v) || isNull(v) {
			l.errorf(item, fmt.Sprintf("%s: an event kind must be a string, got %s", where, typeName(v)), kindHint)
			continue
		}
		k, ok := ParseKind(scalarText(v))
		if !ok {
			l.errorf(item, fmt.Sprintf("unknown event kind %s", QuoteShort(scalarText(v))), kindHint)
			continue
		}
		if !containsKind(out, k) {
			out = append(out, k)
		}
	}
	return out
}

const kindHint = "use INSERT, UPDATE, DELETE or CUSTOM (created, updated and deleted are accepted too)"

func containsKind(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func (l *loader) condition(e entry) *Condition {
	v := l.resolve(e.value)
	if isNull(v) {
		return nil
	}
	if !isScalar(v) {
		l.errorf(e.value, fmt.Sprintf("condition must be a string, got %s", typeName(v)),
			`quote the expression: condition: "status == 'new'"`)
		return nil
	}
	c, msg := compileCondition(scalarText(v))
	if c == nil {
		l.errorf(e.value, "invalid condition: "+msg, conditionHint)
	}
	return c
}

func (l *loader) actions(e entry, where string) []Action {
	v := l.resolve(e.value)
	seq, ok := v.(*ast.SequenceNode)
	if !ok {
		l.errorf(cmpNode(e.value, e.keyN), fmt.Sprintf("%s must be a list, got %s", where, typeName(v)),
			"write each action as a list item: - type: webhook")
		return nil
	}
	if len(seq.Values) == 0 {
		l.errorf(seq, where+" is empty", "add at least one action, e.g. - type: webhook")
		return nil
	}
	var out []Action
	for i, item := range seq.Values {
		at := item
		if i < len(seq.Entries) && seq.Entries[i] != nil && seq.Entries[i].Start != nil {
			at = seq.Entries[i]
		}
		if a, ok := l.action(item, at, fmt.Sprintf("%s[%d]", where, i)); ok {
			out = append(out, a)
		}
	}
	return out
}

func (l *loader) action(item, at ast.Node, where string) (Action, bool) {
	fields, ok := l.mapping(item, at, where, nil)
	if !ok {
		return nil, false
	}
	names := ActionTypeNames()
	var typ *entry
	for i := range fields {
		if fields[i].key == "type" {
			typ = &fields[i]
		}
	}
	if typ == nil {
		l.errorf(at, where+" has no type", "add type: "+strings.Join(names, " | "))
		return nil, false
	}
	name := l.str(*typ, where+".type")
	t := lookupActionType(strings.ToLower(name))
	if t == nil {
		hint := "valid action types: " + strings.Join(names, ", ")
		if s := suggest(name, names); s != "" {
			hint = fmt.Sprintf("did you mean %q? %s", s, hint)
		}
		l.errorf(typ.value, fmt.Sprintf("unknown action type %s", QuoteShort(name)), hint)
		return nil, false
	}
	b := &ActionBlock{l: l, at: at, where: where}
	for _, f := range fields {
		switch {
		case !contains(t.keys, f.key):
			l.errorf(f.keyN, fmt.Sprintf("unknown key %s in %s", QuoteShort(f.key), where), keyHint(f.key, t.keys))
		case f.key != "type":
			b.fields = append(b.fields, f)
		}
	}
	a := t.Decode(b)
	if a == nil {
		return nil, false
	}
	l.decoded = append(l.decoded, decodedAction{a: a, at: at, file: l.file, row: l.row, where: where})
	return a, true
}

// checkActions runs each action type's CheckConfig with its actions.
func (l *loader) checkActions(cfg *Config) {
	byType := map[string][]decodedAction{}
	for _, d := range l.decoded {
		byType[d.a.Type()] = append(byType[d.a.Type()], d)
	}
	for _, name := range ActionTypeNames() {
		t := lookupActionType(name)
		checker, ok := t.ActionType.(ConfigChecker)
		if !ok || len(byType[name]) == 0 {
			continue
		}
		checker.CheckConfig(&ConfigCheck{l: l, cfg: cfg, actions: byType[name], blocks: l.blocks})
	}
	l.decoded = nil // the syntax tree is not kept
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (l *loader) retry(e entry, where string) RetryPolicy {
	var p RetryPolicy
	fields, _ := l.mapping(e.value, e.keyN, where, retryKeys)
	for _, f := range fields {
		switch f.key {
		case "max_attempts":
			p.MaxAttempts = l.positiveInt(f, where+".max_attempts")
		case "initial_delay":
			p.InitialDelay = l.duration(f, where+".initial_delay")
		case "max_delay":
			p.MaxDelay = l.duration(f, where+".max_delay")
		case "backoff_strategy":
			p.BackoffStrategy = strings.ToLower(l.str(f, where+".backoff_strategy"))
			if p.BackoffStrategy != "" && !contains(backoffStrategies, p.BackoffStrategy) {
				l.errorf(f.value, fmt.Sprintf("unknown backoff_strategy %s", QuoteShort(p.BackoffStrategy)),
					"use one of "+strings.Join(backoffStrategies, ", "))
				p.BackoffStrategy = ""
			}
		}
	}
	return p
}

// ratio reads a number in (0, 1].
func (l *loader) ratio(e entry, where string) float64 {
	var f float64
	switch v := l.resolve(e.value).(type) {
	case *ast.FloatNode:
		f = v.Value
	case *ast.IntegerNode:
		n, err := strconv.ParseFloat(v.GetToken().Value, 64)
		if err != nil {
			n = -1
		}
		f = n
	default:
		l.errorf(cmpNode(e.value, e.keyN), fmt.Sprintf("%s must be a number, got %s", where, typeName(v)),
			"write a ratio between 0 and 1, such as 0.5")
		return 0
	}
	if math.IsNaN(f) || f <= 0 || f > 1 {
		l.errorf(e.value, fmt.Sprintf("%s must be greater than 0 and at most 1, got %s", where, scalarText(l.resolve(e.value))),
			"write a ratio such as 0.5 (50%)")
		return 0
	}
	return f
}

// str reads a scalar as a string; numbers and booleans give their text.
func (l *loader) str(e entry, where string) string {
	v := l.resolve(e.value)
	if isNull(v) {
		return ""
	}
	if !isScalar(v) {
		l.errorf(e.value, fmt.Sprintf("%s must be a string, got %s", where, typeName(v)), "write a single value after the colon")
		return ""
	}
	return scalarText(v)
}

func (l *loader) envName(e entry, where string) string {
	s := l.str(e, where)
	if s != "" && !envNameRE.MatchString(s) {
		l.errorf(e.value, fmt.Sprintf("%s must name an environment variable, got %s", where, QuoteShort(s)),
			"write the variable's name (WEBHOOK_URL), not its value; put a literal value in the key without _env")
		return ""
	}
	return s
}

func (l *loader) boolean(e entry, where string) bool {
	v := l.resolve(e.value)
	b, ok := v.(*ast.BoolNode)
	if !ok {
		l.errorf(cmpNode(e.value, e.keyN), fmt.Sprintf("%s must be true or false, got %s", where, typeName(v)), "")
		return false
	}
	return b.Value
}

func (l *loader) positiveInt(e entry, where string) int {
	v := l.resolve(e.value)
	in, ok := v.(*ast.IntegerNode)
	if !ok {
		l.errorf(cmpNode(e.value, e.keyN), fmt.Sprintf("%s must be an integer, got %s", where, typeName(v)), "")
		return 0
	}
	var n int64
	switch x := in.Value.(type) {
	case int64:
		n = x
	case uint64:
		if x > math.MaxInt32 {
			n = math.MaxInt32 + 1
		} else {
			n = int64(x)
		}
	default:
		n, _ = strconv.ParseInt(in.GetToken().Value, 0, 64)
	}
	if n <= 0 {
		l.errorf(e.value, fmt.Sprintf("%s must be positive, got %d", where, n), "")
		return 0
	}
	if n > math.MaxInt32 {
		l.errorf(e.value, fmt.Sprintf("%s is too large: %d", where, n), "")
		return 0
	}
	return int(n)
}

func (l *loader) duration(e entry, where string) time.Duration {
	v := l.resolve(e.value)
	if _, isNum := v.(*ast.IntegerNode); isNum {
		l.errorf(e.value, fmt.Sprintf("%s: %s has no unit", where, scalarText(v)), durationHint)
		return 0
	}
	if _, isNum := v.(*ast.FloatNode); isNum {
		l.errorf(e.value, fmt.Sprintf("%s: %s has no unit", where, scalarText(v)), durationHint)
		return 0
	}
	if isNull(v) || !isScalar(v) {
		l.errorf(cmpNode(e.value, e.keyN), fmt.Sprintf("%s must be a duration, got %s", where, typeName(v)), durationHint)
		return 0
	}
	s := scalarText(v)
	d, err := ParseDuration(s)
	if err != nil {
		l.errorf(e.value, fmt.Sprintf("invalid duration %s for %s", QuoteShort(s), where), durationHint)
		return 0
	}
	if d <= 0 {
		l.errorf(e.value, fmt.Sprintf("%s must be positive, got %s", where, s), durationHint)
		return 0
	}
	return d
}

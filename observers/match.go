package observers

// Match is one action to run for an event: the observer and the index of
// the action in Observer.Actions.
type Match struct {
	Observer    *Observer
	ActionIndex int
}

// Action returns the matched action.
func (m Match) Action() Action { return m.Observer.Actions[m.ActionIndex] }

// Match returns one Match per action of every observer that the event
// triggers: entity ("*" or equal, case-sensitive), event kind and condition
// all match. The order is stable: observer name, then action index. An
// event of unknown kind ("") matches nothing. A condition that fails at run
// time is reported through onErr (which may be nil) and does not match.
func (c *Config) Match(ev *Event, onErr func(o *Observer, err error)) []Match {
	if !matchable(ev) {
		return nil
	}
	var (
		out []Match
		env *ConditionEnv // built once, for the first observer with a condition
	)
	for _, o := range c.Observers { // sorted by name
		why, err := o.match(ev, &env)
		if why == MissConditionError && onErr != nil {
			onErr(o, err)
		}
		if why != "" {
			continue
		}
		for i := range o.Actions {
			out = append(out, Match{Observer: o, ActionIndex: i})
		}
	}
	return out
}

// Miss says why an observer does not match an event; "" when it does.
type Miss string

// The reasons of a Miss, in the order the checks run.
const (
	MissUnknownKind    Miss = "unknown_kind"    // the event's kind is not one ParseKind knows: nothing matches it
	MissEntity         Miss = "entity"          // the observer watches another entity type
	MissKind           Miss = "kind"            // the observer does not watch this kind of change
	MissConditionFalse Miss = "condition_false" // the condition evaluated to false (or nil)
	MissConditionError Miss = "condition_error" // the condition failed at run time: treated as no match
)

// Explanation is whether one observer matches an event and, when not, why.
type Explanation struct {
	Observer *Observer
	Miss     Miss  // "" when the observer matches
	Err      error // the condition's error, with MissConditionError
}

// Matched reports whether the observer matches the event.
func (x Explanation) Matched() bool { return x.Miss == "" }

// Explain tells, for every observer in Match's order, whether ev triggers
// it and, if not, why. It runs the very checks Match runs (Observer.match),
// conditions sharing one environment in the same order, so an explanation
// is what the listener decided for the event under the same configuration.
func (c *Config) Explain(ev *Event) []Explanation {
	out := make([]Explanation, 0, len(c.Observers))
	var env *ConditionEnv
	for _, o := range c.Observers {
		x := Explanation{Observer: o, Miss: MissUnknownKind}
		if matchable(ev) {
			x.Miss, x.Err = o.match(ev, &env)
		}
		out = append(out, x)
	}
	return out
}

// matchable reports whether ev can match any observer: a nil event or one
// of unknown kind matches none.
func matchable(ev *Event) bool { return ev != nil && ev.Kind != "" }

// match checks o against ev: entity, then kind, then condition, evaluated
// in *env (built on first use and shared by the event's observers). It
// returns "" when o matches, else why not, with the condition's error for
// MissConditionError.
func (o *Observer) match(ev *Event, env **ConditionEnv) (Miss, error) {
	if !o.MatchesEntity(ev.EntityType) {
		return MissEntity, nil
	}
	if !o.MatchesKind(ev.Kind) {
		return MissKind, nil
	}
	if o.Condition == nil {
		return "", nil
	}
	if *env == nil {
		*env = NewConditionEnv(ev)
	}
	ok, err := o.Condition.EvalEnv(*env)
	switch {
	case err != nil:
		return MissConditionError, err
	case !ok:
		return MissConditionFalse, nil
	}
	return "", nil
}

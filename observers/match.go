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
	if ev == nil || ev.Kind == "" {
		return nil
	}
	var (
		out []Match
		env *ConditionEnv // built once, for the first observer with a condition
	)
	for _, o := range c.Observers { // sorted by name
		if !o.MatchesEntity(ev.EntityType) || !o.MatchesKind(ev.Kind) {
			continue
		}
		if o.Condition != nil {
			if env == nil {
				env = NewConditionEnv(ev)
			}
			ok, err := o.Condition.EvalEnv(env)
			if err != nil {
				if onErr != nil {
					onErr(o, err)
				}
				continue
			}
			if !ok {
				continue
			}
		}
		for i := range o.Actions {
			out = append(out, Match{Observer: o, ActionIndex: i})
		}
	}
	return out
}

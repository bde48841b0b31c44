package observers

import (
	"fmt"
	"time"
)

// Readers shared by the action blocks (ActionField) and the top-level
// blocks.

const templateHint = `placeholders look like {{ field }} or {{ customer.name }}; every "{{" needs a "}}"`

// templateField reads and compiles a template; a template that does not
// compile is an error at its position and gives a nil *Template.
func (l *loader) templateField(f entry, where string) (string, *Template) {
	src := l.str(f, where+"."+f.key)
	if src == "" {
		return "", nil
	}
	t, err := CompileTemplate(src)
	if err != nil {
		l.errorf(f.value, fmt.Sprintf("invalid %s: %s", f.key, err.Error()), templateHint)
		return src, nil
	}
	return src, t
}

// warnUnsetEnv warns (once per variable) when the variable named by an
// *_env key is unset: `run` refuses to start without it.
func (l *loader) warnUnsetEnv(f entry, name, key string) {
	if name == "" || l.warnedEnv[name] {
		return
	}
	if v, set := l.getenv(name); !set || v == "" {
		l.warnedEnv[name] = true
		l.warnf(f.value, fmt.Sprintf("environment variable %s (%s) is not set", name, key),
			fmt.Sprintf("export %s before `run`, which refuses to start without it", name))
	}
}

// ActionTimeoutMax bounds the timeout: of actions whose deliveries River
// bounds with its default job timeout of one minute (slack, database, the
// smtp: block).
const ActionTimeoutMax = 50 * time.Second

// actionTimeout reads a per-action timeout of at most ActionTimeoutMax.
func (l *loader) actionTimeout(f entry, where string) time.Duration {
	d := l.duration(f, where+".timeout")
	if d > ActionTimeoutMax {
		l.errorf(f.value, fmt.Sprintf("%s.timeout (%s) is longer than %s", where, d, ActionTimeoutMax),
			"the job itself times out after one minute; use a shorter timeout")
		return 0
	}
	return d
}

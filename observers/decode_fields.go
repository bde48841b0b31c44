package observers

import (
	"fmt"
	"strconv"
	"strings"
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

// byteSizeMax bounds a byte size in the configuration.
const byteSizeMax = 1 << 30

var byteUnits = map[string]int64{
	"": 1, "b": 1, "kb": 1000, "kib": 1 << 10, "mb": 1000 * 1000, "mib": 1 << 20, "gb": 1000 * 1000 * 1000, "gib": 1 << 30,
}

const byteSizeHint = "write a size such as 16MiB, 512KiB or 1GiB (or a number of bytes)"

// byteSize reads a positive size: a number of bytes, or a number with a
// unit (B, KB, KiB, MB, MiB, GB, GiB), at most 1 GiB.
func (l *loader) byteSize(e entry, where string) int64 {
	v := l.resolve(e.value)
	if isNull(v) || !isScalar(v) {
		l.errorf(cmpNode(e.value, e.keyN), fmt.Sprintf("%s must be a size, got %s", where, typeName(v)), byteSizeHint)
		return 0
	}
	s := strings.TrimSpace(scalarText(v))
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = strings.TrimSpace(s[:i]), strings.ToLower(strings.TrimSpace(s[i:]))
	}
	mult, okUnit := byteUnits[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !okUnit || err != nil || num == "" {
		l.errorf(e.value, fmt.Sprintf("invalid size %q for %s", Shorten(s, 40), where), byteSizeHint)
		return 0
	}
	n := f * float64(mult)
	if n < 1 || n > byteSizeMax {
		l.errorf(e.value, fmt.Sprintf("%s must be between 1 byte and 1GiB, got %s", where, s), byteSizeHint)
		return 0
	}
	return int64(n)
}

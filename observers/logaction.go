package observers

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// LogMessageTemplateDefault is the message of a log (and slack) action
// without a message_template: "Order 42 INSERT".
const LogMessageTemplateDefault = "{{ event.entity_type }} {{ event.entity_id }} {{ event.kind }}"

// Log levels of a log action.
const (
	LogLevelDebug   = "debug"
	LogLevelInfo    = "info"
	LogLevelWarn    = "warn"
	LogLevelError   = "error"
	LogLevelDefault = LogLevelInfo
)

var logLevels = []string{LogLevelDebug, LogLevelInfo, LogLevelWarn, LogLevelError}

var logKeys = []string{"type", "level", "message_template"}

// LogAction writes one structured log line per event.
type LogAction struct {
	Level           string // debug, info (default), warn or error
	MessageTemplate string // template source; default LogMessageTemplateDefault

	message *Template // compiled MessageTemplate, set by the loader
}

// SlogLevel returns the slog level of Level (info when unknown).
func (a *LogAction) SlogLevel() slog.Level {
	switch a.Level {
	case LogLevelDebug:
		return slog.LevelDebug
	case LogLevelWarn:
		return slog.LevelWarn
	case LogLevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Message returns the compiled message template (the default when none is
// set). A LogAction built by hand compiles its template on each call.
func (a *LogAction) Message() *Template {
	return compiledOr(a.message, a.MessageTemplate, LogMessageTemplateDefault)
}

// Write logs the event at the action's level: the rendered message with the
// attributes observer, event_seq, event_id, entity, entity_id and kind.
func (a *LogAction) Write(ctx context.Context, logger *slog.Logger, observer string, ev *Event) {
	msg := a.Message().Render(TemplateData(ev), false)
	logger.LogAttrs(ctx, a.SlogLevel(), msg,
		slog.String("action_type", ActionTypeLog),
		slog.String("observer", observer),
		slog.Int64("event_seq", ev.Seq),
		slog.String("event_id", ev.ID),
		slog.String("entity", ev.EntityType),
		slog.String("entity_id", ev.EntityID),
		slog.String("kind", string(ev.Kind)))
}

// compiledOr returns t, or compiles src (def when src is empty). A template
// that does not compile gives the default.
func compiledOr(t *Template, src, def string) *Template {
	if t != nil {
		return t
	}
	if src == "" {
		src = def
	}
	c, err := CompileTemplate(src)
	if err != nil {
		c, _ = CompileTemplate(def)
	}
	return c
}

func (l *loader) logAction(fields []entry, _ ast.Node, where string) (*LogAction, bool) {
	a := &LogAction{}
	ok := true
	for _, f := range l.actionFields(fields, logKeys, where) {
		switch f.key {
		case "level":
			a.Level = strings.ToLower(strings.TrimSpace(l.str(f, where+".level")))
			if a.Level == "warning" {
				a.Level = LogLevelWarn
			}
			if a.Level != "" && !contains(logLevels, a.Level) {
				l.errorf(f.value, fmt.Sprintf("unknown log level %q", a.Level), "use one of "+strings.Join(logLevels, ", "))
				ok = false
			}
		case "message_template":
			a.MessageTemplate, a.message = l.templateField(f, where)
		}
	}
	if a.Level == "" {
		a.Level = LogLevelDefault
	}
	return a, ok
}

// Decoding helpers shared by the action types.

const templateHint = `placeholders look like {{ field }} or {{ customer.name }}; every "{{" needs a "}}"`

// actionFields returns the fields whose keys are valid (type included),
// reporting the others with a suggestion.
func (l *loader) actionFields(fields []entry, valid []string, where string) []entry {
	out := make([]entry, 0, len(fields))
	for _, f := range fields {
		if !contains(valid, f.key) {
			l.errorf(f.keyN, fmt.Sprintf("unknown key %q in %s", f.key, where), keyHint(f.key, valid))
			continue
		}
		if f.key != "type" {
			out = append(out, f)
		}
	}
	return out
}

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
func (l *loader) warnUnsetEnv(f *entry, name, key string) {
	if f == nil || name == "" || l.warnedEnv[name] {
		return
	}
	if v, set := l.getenv(name); !set || v == "" {
		l.warnedEnv[name] = true
		l.warnf(f.value, fmt.Sprintf("environment variable %s (%s) is not set", name, key),
			fmt.Sprintf("export %s before `run`, which refuses to start without it", name))
	}
}

// actionTimeout reads a per-action timeout; River's job timeout (one
// minute for these actions) bounds it.
func (l *loader) actionTimeout(f entry, where string) time.Duration {
	d := l.duration(f, where+".timeout")
	if d > actionTimeoutMax {
		l.errorf(f.value, fmt.Sprintf("%s.timeout (%s) is longer than %s", where, d, actionTimeoutMax),
			"the job itself times out after one minute; use a shorter timeout")
		return 0
	}
	return d
}

// actionTimeoutMax bounds the timeout of slack and database actions, below
// River's default job timeout of one minute.
const actionTimeoutMax = 50 * time.Second

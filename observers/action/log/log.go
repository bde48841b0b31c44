package log

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// Name is the log action's type:.
const Name = "log"

// Log levels of a log action.
const (
	LevelDebug   = "debug"
	LevelInfo    = "info"
	LevelWarn    = "warn"
	LevelError   = "error"
	LevelDefault = LevelInfo
)

var levels = []string{LevelDebug, LevelInfo, LevelWarn, LevelError}

func init() { observers.RegisterActionType(Type{}) }

//go:embed schema.json
var schema []byte

// Type is the log action type: one structured log line per event.
type Type struct{}

// Name implements observers.ActionType.
func (Type) Name() string { return Name }

// Schema implements observers.ActionType.
func (Type) Schema() []byte { return schema }

// Action writes one structured log line per event.
type Action struct {
	Level           string // debug, info (default), warn or error
	MessageTemplate string // template source; default observers.MessageTemplateDefault

	message *observers.Template // compiled MessageTemplate, set by Decode
}

// Type implements observers.Action.
func (*Action) Type() string { return Name }

// AttemptTimeout implements observers.Action: a log line takes no time.
func (*Action) AttemptTimeout() time.Duration { return 0 }

// SlogLevel returns the slog level of Level (info when unknown).
func (a *Action) SlogLevel() slog.Level {
	switch a.Level {
	case LevelDebug:
		return slog.LevelDebug
	case LevelWarn:
		return slog.LevelWarn
	case LevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Message returns the compiled message template (the default when none is
// set). An Action built by hand compiles its template on each call.
func (a *Action) Message() *observers.Template {
	return observers.CompiledOr(a.message, a.MessageTemplate, observers.MessageTemplateDefault)
}

// Write logs the event at the action's level: the rendered message with the
// attributes observer, event_seq, event_id, entity, entity_id and kind. A
// message larger than observers.TemplateMaxOutputBytes is not logged: the
// error says so.
func (a *Action) Write(ctx context.Context, logger *slog.Logger, observer string, ev *observers.Event) error {
	msg, err := a.Message().Render(observers.TemplateData(ev), false)
	if err != nil {
		return errors.Wrap(err, "log action: message_template")
	}
	logger.LogAttrs(ctx, a.SlogLevel(), msg,
		slog.String("action_type", Name),
		slog.String("observer", observer),
		slog.Int64("event_seq", ev.Seq),
		slog.String("event_id", ev.ID),
		slog.String("entity", ev.EntityType),
		slog.String("entity_id", ev.EntityID),
		slog.String("kind", string(ev.Kind)))
	return nil
}

// Run implements observers.Action: the line goes to the process's logger;
// it fails (permanently) only for a message too large to render.
func (a *Action) Run(ctx context.Context, d *observers.Delivery) error {
	if err := a.Write(ctx, d.Env.Log(), d.Observer.Name, d.Event); err != nil {
		return observers.Permanent(err)
	}
	return nil
}

// Settings implements observers.Action.
func (a *Action) Settings() []observers.Setting {
	return []observers.Setting{{Key: "level", Value: a.Level}, {Key: "message_template", Value: a.Message().Source()}}
}

// Decode implements observers.ActionType.
func (Type) Decode(b *observers.ActionBlock) observers.Action {
	a := &Action{}
	for _, f := range b.Fields() {
		switch f.Key() {
		case "level":
			a.Level = strings.ToLower(strings.TrimSpace(f.String()))
			if a.Level == "warning" {
				a.Level = LevelWarn
			}
			if a.Level != "" && !slices.Contains(levels, a.Level) {
				f.Errorf(fmt.Sprintf("unknown log level %q", a.Level), "use one of "+strings.Join(levels, ", "))
			}
		case "message_template":
			a.MessageTemplate, a.message = f.Template()
		}
	}
	if a.Level == "" {
		a.Level = LevelDefault
	}
	return a
}

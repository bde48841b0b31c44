package observers

import (
	"context"
	"log/slog"
)

// Log attribute keys of a delivery: every line logged while a delivery runs
// carries them (see LogHandler).
const (
	LogKeyEventID     = "event_id"     // the change's uuid
	LogKeyEventSeq    = "event_seq"    // the change's primary key in the log table
	LogKeyObserver    = "observer"     // the observer's name
	LogKeyActionType  = "action_type"  // webhook, email, …
	LogKeyActionIndex = "action_index" // of the action in the observer's actions
	LogKeyAttempt     = "attempt"      // 1-based
	LogKeyJobID       = "job_id"       // the River job (a batch's for its deliveries)
	LogKeyReplay      = "replay"       // the replay that enqueued it again
)

// LogAttrs returns the attributes that name d in a log line: the event's id
// and seq, the observer, the action's type and index, the attempt, and the
// job and replay when known. Values are identifiers only, never secrets.
func (d *Delivery) LogAttrs() []slog.Attr {
	attrs := make([]slog.Attr, 0, 8)
	if d.Event != nil {
		attrs = append(attrs, slog.String(LogKeyEventID, d.Event.ID), slog.Int64(LogKeyEventSeq, d.Event.Seq))
	}
	if d.Observer != nil {
		attrs = append(attrs, slog.String(LogKeyObserver, d.Observer.Name))
		if d.Index >= 0 && d.Index < len(d.Observer.Actions) {
			attrs = append(attrs, slog.String(LogKeyActionType, d.Action().Type()))
		}
	}
	attrs = append(attrs, slog.Int(LogKeyActionIndex, d.Index), slog.Int(LogKeyAttempt, d.Attempt))
	if d.JobID != 0 {
		attrs = append(attrs, slog.Int64(LogKeyJobID, d.JobID))
	}
	if d.Replay != 0 {
		attrs = append(attrs, slog.Int64(LogKeyReplay, d.Replay))
	}
	return attrs
}

type deliveryKey struct{}

// WithDelivery returns ctx naming d, whose LogAttrs a logger whose handler
// is a LogHandler adds to every line logged with ctx (the *Context
// methods). The worker puts each delivery there, so the lines of the
// action, the circuit breaker, the rate limit and the result cache name it
// too. Only the pointer is stored: the attributes are built when a line is
// logged, never for a delivery that logs nothing.
func WithDelivery(ctx context.Context, d *Delivery) context.Context {
	return context.WithValue(ctx, deliveryKey{}, d)
}

// LogAttrsFrom returns the log attributes of the delivery ctx names
// (WithDelivery); nil when it names none.
func LogAttrsFrom(ctx context.Context) []slog.Attr {
	if d, _ := ctx.Value(deliveryKey{}).(*Delivery); d != nil {
		return d.LogAttrs()
	}
	return nil
}

// LogHandler wraps h so that every record also gets the attributes of the
// delivery its context names (WithDelivery), except those whose key the line already has.
// Wrapping a LogHandler again returns it as it is.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(*logHandler); ok {
		return h
	}
	return &logHandler{h: h}
}

type logHandler struct {
	h    slog.Handler
	keys map[string]bool // of the attributes added by WithAttrs
}

func (l *logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

func (l *logHandler) Handle(ctx context.Context, r slog.Record) error {
	attrs := LogAttrsFrom(ctx)
	if len(attrs) == 0 {
		return l.h.Handle(ctx, r)
	}
	have := make(map[string]bool, r.NumAttrs()+len(l.keys))
	for k := range l.keys {
		have[k] = true
	}
	r.Attrs(func(a slog.Attr) bool {
		have[a.Key] = true
		return true
	})
	r = r.Clone()
	for _, a := range attrs {
		if !have[a.Key] {
			have[a.Key] = true
			r.AddAttrs(a)
		}
	}
	return l.h.Handle(ctx, r)
}

func (l *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	keys := make(map[string]bool, len(l.keys)+len(attrs))
	for k := range l.keys {
		keys[k] = true
	}
	for _, a := range attrs {
		keys[a.Key] = true
	}
	return &logHandler{h: l.h.WithAttrs(attrs), keys: keys}
}

func (l *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{h: l.h.WithGroup(name), keys: l.keys}
}

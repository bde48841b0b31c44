package observers

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
)

// Template is a compiled body template: text with "{{ field }}" or
// "{{ a.b.c }}" placeholders (spaces inside the braces optional). It is safe
// for concurrent use.
//
// Render looks placeholders up in a data map; pass TemplateData(ev) so that
// the event's fields and its `event` object ({{ event.kind }},
// {{ event.entity_type }}, {{ event.entity_id }}, {{ event.id }}) are both
// available.
type Template struct {
	src   string
	parts []templatePart
}

// ErrTemplateTooLarge is the error of a rendering larger than
// TemplateMaxOutputBytes: permanent, the same event renders the same.
var ErrTemplateTooLarge = errors.New("rendered template is larger than " + byteSize(TemplateMaxOutputBytes))

// templatePart is literal text, or a placeholder when path is non-empty.
type templatePart struct {
	text string
	name string   // placeholder as written, trimmed
	path []string // name split on "."
}

// CompileTemplate parses a template. An unclosed "{{", an empty placeholder,
// a malformed name or a source longer than TemplateMaxBytes is an error.
func CompileTemplate(src string) (*Template, error) {
	if len(src) > TemplateMaxBytes {
		return nil, errors.WithHint(errors.Newf("template is longer than %s", byteSize(TemplateMaxBytes)),
			"a template renders one message or body; keep large text out of the configuration")
	}
	t := &Template{src: src}
	rest, offset := src, 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, templatePart{text: rest})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, templatePart{text: rest[:i]})
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return nil, errors.WithHint(errors.Newf("unclosed \"{{\" at offset %d", offset+i),
				`close the placeholder with "}}"`)
		}
		name := strings.TrimSpace(rest[i+2 : i+2+j])
		if name == "" {
			return nil, errors.WithHint(errors.Newf("empty placeholder \"{{}}\" at offset %d", offset+i),
				"write a field name between the braces, e.g. {{ id }}")
		}
		path := strings.Split(name, ".")
		for _, p := range path {
			if p == "" || strings.ContainsAny(p, " \t\r\n{}") {
				return nil, errors.WithHint(errors.Newf("invalid placeholder %s at offset %d", QuoteShort(name), offset+i),
					"a placeholder is a field name or a dotted path, e.g. {{ customer.email }}")
			}
		}
		t.parts = append(t.parts, templatePart{name: name, path: path})
		consumed := i + 2 + j + 2
		rest, offset = rest[consumed:], offset+consumed
	}
}

// Source returns the template as written.
func (t *Template) Source() string { return t.src }

// Fields returns the placeholder names, in order of appearance.
func (t *Template) Fields() []string {
	var out []string
	for _, p := range t.parts {
		if p.path != nil {
			out = append(out, p.name)
		}
	}
	return out
}

// Render fills the placeholders from data. A missing (or null) value renders
// as the empty string; strings render raw; numbers as JSON numbers (100,
// 12.5); booleans as true/false; objects and arrays as compact JSON. With
// jsonEscape every substituted value is escaped as the inside of a JSON
// string (without the quotes), so that "{\"note\": \"{{ note }}\"}" stays
// valid JSON whatever the note holds. A rendering larger than
// TemplateMaxOutputBytes is an error (ErrTemplateTooLarge).
func (t *Template) Render(data map[string]any, jsonEscape bool) (string, error) {
	return t.RenderFunc(data, func(_ string, v any, found bool) (string, error) {
		if !found {
			return "", nil
		}
		if jsonEscape {
			return jsonEscapeString(renderValue(v)), nil
		}
		return renderValue(v), nil
	})
}

// RenderFunc renders t, each placeholder replaced by what value returns
// for it: its name as written, its value in data and whether it has one
// (RenderValue renders a value as Render does). An error from value stops
// the rendering and is returned, as does an output growing past
// TemplateMaxOutputBytes (ErrTemplateTooLarge).
func (t *Template) RenderFunc(data map[string]any, value func(name string, v any, found bool) (string, error)) (string, error) {
	var b strings.Builder
	b.Grow(len(t.src))
	for _, p := range t.parts {
		s := p.text
		if p.path != nil {
			v, ok := lookupPath(data, p.name, p.path)
			var err error
			if s, err = value(p.name, v, ok); err != nil {
				return "", err
			}
		}
		if b.Len()+len(s) > TemplateMaxOutputBytes {
			err := ErrTemplateTooLarge
			if p.path != nil {
				err = errors.Wrapf(err, "at {{ %s }}", p.name)
			}
			return "", errors.WithHint(err, "the event's data makes the rendering too large; render fewer or smaller fields")
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// RenderValue renders one value as template text (before any escaping):
// nil as "", strings raw, numbers as JSON numbers, booleans as true/false,
// objects and arrays as compact JSON.
func RenderValue(v any) string { return renderValue(v) }

// renderValue renders one value as template text (before any escaping).
func renderValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return x.String()
	case []byte:
		return string(x)
	}
	b, err := marshalNoHTML(v)
	if err != nil {
		return ""
	}
	if len(b) > 0 && b[0] == '"' { // a type that marshals as a JSON string (time.Time, …)
		var s string
		if json.Unmarshal(b, &s) == nil {
			return s
		}
	}
	return string(b)
}

// jsonEscapeString escapes s as the inside of a JSON string literal.
func jsonEscapeString(s string) string {
	b, err := marshalNoHTML(s)
	if err != nil || len(b) < 2 {
		return ""
	}
	return string(b[1 : len(b)-1])
}

// MarshalJSON encodes v as compact JSON without escaping HTML characters,
// so that text in event data reaches receivers as written.
func MarshalJSON(v any) ([]byte, error) { return marshalNoHTML(v) }

func marshalNoHTML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// MessageTemplateDefault is the message of a log or Slack action, and the
// subject of an email, without a template of its own: "Order 42 INSERT".
const MessageTemplateDefault = "{{ event.entity_type }} {{ event.entity_id }} {{ event.kind }}"

// CompiledOr returns t, or compiles src (def when src is empty): for
// actions built by hand rather than decoded. A template that does not
// compile gives the default.
func CompiledOr(t *Template, src, def string) *Template {
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

// TemplateData returns the data a body template renders from: the event's
// data fields plus an "event" object {id, kind, entity_type, entity_id,
// tenant_id, user_id}, unless the data has its own "event" field. The
// event's Data map is not modified.
func TemplateData(ev *Event) map[string]any { return templateData(ev, ev.Data) }

// TemplateDataOf is TemplateData with the event's fields taken from data
// (a DELETE's before image, say).
func TemplateDataOf(ev *Event, data map[string]any) map[string]any { return templateData(ev, data) }

// templateData is TemplateData with the event's fields taken from data.
func templateData(ev *Event, data map[string]any) map[string]any {
	if _, has := data["event"]; has {
		return data
	}
	out := make(map[string]any, len(data)+1)
	for k, v := range data {
		out[k] = v
	}
	out["event"] = eventMeta(ev)
	return out
}

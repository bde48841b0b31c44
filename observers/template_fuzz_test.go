package observers_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cockroachdb/errors"

	"github.com/fraiseql/fraiseql-observers/observers"
)

// FuzzTemplate compiles an arbitrary template and renders it over the
// fuzzed JSON: no panic, a source over the limit refused, a rendering
// within TemplateMaxOutputBytes or ErrTemplateTooLarge, the same every
// time, and with jsonEscape a template that is a JSON string literal
// renders one.
func FuzzTemplate(f *testing.F) {
	f.Add(`{"id": "{{ id }}", "note": "{{ note }}"}`, []byte(`{"id": 7, "note": "say \"hi\""}`), true)
	f.Add("{{ a }}{{ a }}{{ a }}", []byte(`{"a": "`+strings.Repeat("x", 600_000)+`"}`), false)
	f.Add(strings.Repeat("x", observers.TemplateMaxBytes+1), []byte(`{}`), false)
	f.Fuzz(func(t *testing.T, src string, data []byte, jsonEscape bool) {
		tpl, err := observers.CompileTemplate(src)
		if err != nil {
			if len(err.Error()) > 2000 {
				t.Fatalf("the error echoes the source: %.200s", err.Error())
			}
			return
		}
		if len(src) > observers.TemplateMaxBytes {
			t.Fatalf("a template of %d bytes compiled", len(src))
		}
		var values map[string]any
		_ = json.Unmarshal(data, &values)
		out, err := tpl.Render(values, jsonEscape)
		if err != nil {
			if !errors.Is(err, observers.ErrTemplateTooLarge) {
				t.Fatalf("Render: %v", err)
			}
			return
		}
		if len(out) > observers.TemplateMaxOutputBytes {
			t.Fatalf("a rendering of %d bytes", len(out))
		}
		if again, _ := tpl.Render(values, jsonEscape); again != out {
			t.Fatalf("two renderings differ")
		}
		// A JSON string literal stays one with its placeholders escaped.
		text := strings.NewReplacer(`"`, ``, `\`, ``).Replace(src)
		lit, err := observers.CompileTemplate(`"` + text + `"`)
		if err != nil || !jsonEscape || !plainText(text) {
			return
		}
		if s, err := lit.Render(values, true); err == nil && !json.Valid([]byte(s)) {
			t.Fatalf("escaped rendering %q is not a JSON string", s)
		}
	})
}

// plainText reports whether s can sit between quotes in JSON as it is:
// valid UTF-8 without control characters.
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return false
		}
	}
	return true
}

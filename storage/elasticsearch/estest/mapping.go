package estest

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// analyzer turns a text value into its tokens.
type analyzer func(string) []string

// standardAnalyzer approximates Elasticsearch's standard analyzer: runs
// of letters and digits, lower-cased.
func standardAnalyzer(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// field is a mapped field; the root of a mapping is an object.
type field struct {
	typ      string // keyword, text, date, long, integer, float, double, boolean, object
	analyzer string // text: an analyzer of the index ("" = standard)
	disabled bool   // object with enabled: false: kept in _source, not parsed
	dynamic  string // object: "true", "false", "strict"; "" = inherited
	props    map[string]*field
}

func (f *field) clone() *field {
	c := *f
	if f.props != nil {
		c.props = make(map[string]*field, len(f.props))
		for k, v := range f.props {
			c.props[k] = v.clone()
		}
	}
	return &c
}

// asJSON is the mapping as Elasticsearch shows it.
func (f *field) asJSON() map[string]any {
	m := map[string]any{}
	if f.typ != "object" {
		m["type"] = f.typ
	}
	if f.analyzer != "" {
		m["analyzer"] = f.analyzer
	}
	if f.disabled {
		m["type"], m["enabled"] = "object", false
	}
	if f.dynamic != "" {
		m["dynamic"] = f.dynamic
	}
	if len(f.props) > 0 {
		p := map[string]any{}
		for k, v := range f.props {
			p[k] = v.asJSON()
		}
		m["properties"] = p
	}
	return m
}

var fieldParams = map[string][]string{
	"keyword": {"type"}, "text": {"type", "analyzer"}, "date": {"type"}, "long": {"type"}, "integer": {"type"},
	"float": {"type"}, "double": {"type"}, "boolean": {"type"}, "object": {"type", "properties", "enabled", "dynamic"},
}

// parseMappings reads the "mappings" of an index or a template.
func parseMappings(raw map[string]any, analyzers map[string]analyzer) (*field, *apiError) {
	root := &field{typ: "object", props: map[string]*field{}}
	for k, v := range raw {
		switch k {
		case "properties", "dynamic":
		case "_meta":
			continue
		default:
			return nil, badRequest("mapper_parsing_exception", "Root mapping definition has unsupported parameters:  [%s : %v] (estest implements properties, dynamic, _meta)", k, v)
		}
	}
	if err := parseObject(root, "", raw, analyzers); err != nil {
		return nil, err
	}
	return root, nil
}

// parseObject reads an object field's properties and dynamic.
func parseObject(f *field, path string, raw map[string]any, analyzers map[string]analyzer) *apiError {
	if d, ok := raw["dynamic"]; ok {
		switch fmt.Sprint(d) {
		case "true", "false", "strict":
			f.dynamic = fmt.Sprint(d)
		default:
			return badRequest("mapper_parsing_exception", "Could not convert [%sdynamic] to boolean", path)
		}
	}
	props, ok := raw["properties"]
	if !ok {
		return nil
	}
	pm, ok := props.(map[string]any)
	if !ok {
		return badRequest("mapper_parsing_exception", "Expected map for property [properties] on field [%s]", path)
	}
	if f.props == nil {
		f.props = map[string]*field{}
	}
	for name, def := range pm {
		d, ok := def.(map[string]any)
		if !ok || name == "" || strings.Contains(name, ".") {
			return badRequest("mapper_parsing_exception", "estest: field [%s%s] needs an object definition and a plain name", path, name)
		}
		child, err := parseField(path+name, d, analyzers)
		if err != nil {
			return err
		}
		f.props[name] = child
	}
	return nil
}

// parseField reads one field's definition.
func parseField(name string, def map[string]any, analyzers map[string]analyzer) (*field, *apiError) {
	typ, _ := def["type"].(string)
	if typ == "" {
		if _, ok := def["properties"]; !ok && def["enabled"] == nil {
			return nil, badRequest("mapper_parsing_exception", "No type specified for field [%s]", name)
		}
		typ = "object"
	}
	allowed, ok := fieldParams[typ]
	if !ok {
		return nil, badRequest("mapper_parsing_exception", "No handler for type [%s] declared on field [%s] (or estest does not implement it)", typ, name)
	}
	for k := range def {
		if !slices.Contains(allowed, k) {
			return nil, badRequest("mapper_parsing_exception", "unknown parameter [%s] on mapper [%s] of type [%s] (or estest does not implement it)", k, name, typ)
		}
	}
	f := &field{typ: typ}
	switch typ {
	case "text":
		if a, ok := def["analyzer"]; ok {
			f.analyzer, _ = a.(string)
			if _, ok := analyzers[f.analyzer]; !ok {
				return nil, badRequest("mapper_parsing_exception", "analyzer [%v] has not been configured in mappings", a)
			}
		}
	case "object":
		if e, ok := def["enabled"]; ok {
			b, ok := e.(bool)
			if !ok {
				return nil, badRequest("mapper_parsing_exception", "Failed to parse value [%v] as only [true] or [false] are allowed.", e)
			}
			f.disabled = !b
		}
		if err := parseObject(f, name+".", def, analyzers); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// knownSettings are the index settings this server takes (besides
// index.analysis.*).
var knownSettings = []string{
	"index.number_of_shards", "index.number_of_replicas", "index.lifecycle.name", "index.lifecycle.rollover_alias",
	"index.refresh_interval", "index.gc_deletes", "index.max_result_window",
}

// parseSettings flattens settings ({"index": {"a": 1}}, "index.a" and "a"
// are one setting) and checks them.
func parseSettings(raw map[string]any) (map[string]any, *apiError) {
	flat := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			flat[prefix+k] = v
		}
	}
	walk("", raw)
	out := map[string]any{}
	for k, v := range flat {
		if !strings.HasPrefix(k, "index.") {
			k = "index." + k
		}
		if !slices.Contains(knownSettings, k) && !strings.HasPrefix(k, "index.analysis.") {
			return nil, badRequest("illegal_argument_exception", "unknown setting [%s] please check that any required plugins are installed, or check the breaking changes documentation for removed settings (or estest does not implement it)", k)
		}
		out[k] = v
	}
	for _, k := range []string{"index.number_of_shards", "index.number_of_replicas", "index.max_result_window"} {
		if v, ok := out[k]; ok {
			if n, err := strconv.Atoi(fmt.Sprint(v)); err != nil || n < 0 {
				return nil, badRequest("illegal_argument_exception", "Failed to parse value [%v] for setting [%s]", v, k)
			}
		}
	}
	return out, nil
}

// buildAnalyzers makes the analyzers of settings' index.analysis: custom
// analyzers of a pattern tokenizer (or standard) and lowercase.
func buildAnalyzers(settings map[string]any) (map[string]analyzer, *apiError) {
	group := func(kind string) map[string]map[string]any {
		g := map[string]map[string]any{}
		for k, v := range settings {
			rest, ok := strings.CutPrefix(k, "index.analysis."+kind+".")
			if !ok {
				continue
			}
			name, prop, ok := strings.Cut(rest, ".")
			if !ok {
				return nil
			}
			if g[name] == nil {
				g[name] = map[string]any{}
			}
			g[name][prop] = v
		}
		return g
	}
	for k := range settings {
		if rest, ok := strings.CutPrefix(k, "index.analysis."); ok {
			if kind, _, _ := strings.Cut(rest, "."); kind != "analyzer" && kind != "tokenizer" {
				return nil, notImplemented("analysis component %s", kind)
			}
		}
	}
	tokenizers := map[string]func(string) []string{"standard": standardAnalyzer}
	for name, props := range group("tokenizer") {
		if props["type"] != "pattern" || len(props) != 2 {
			return nil, notImplemented("tokenizer %s %v (only type pattern with a pattern)", name, props)
		}
		re, err := regexp.Compile(fmt.Sprint(props["pattern"]))
		if err != nil {
			return nil, badRequest("illegal_argument_exception", "estest: tokenizer [%s]: pattern: %v", name, err)
		}
		tokenizers[name] = func(s string) []string {
			var out []string
			for _, t := range re.Split(s, -1) {
				if t != "" {
					out = append(out, t)
				}
			}
			return out
		}
	}
	analyzers := map[string]analyzer{"standard": standardAnalyzer}
	for name, props := range group("analyzer") {
		for p := range props {
			if p != "type" && p != "tokenizer" && p != "filter" {
				return nil, notImplemented("analyzer parameter %s", p)
			}
		}
		if props["type"] != "custom" {
			return nil, notImplemented("analyzer type %v", props["type"])
		}
		tok, ok := tokenizers[fmt.Sprint(props["tokenizer"])]
		if !ok {
			return nil, badRequest("illegal_argument_exception", "failed to find tokenizer under name [%v]", props["tokenizer"])
		}
		lower := false
		filters, _ := props["filter"].([]any)
		for _, f := range filters {
			if f != "lowercase" {
				return nil, notImplemented("token filter %v", f)
			}
			lower = true
		}
		analyzers[name] = func(s string) []string {
			if lower {
				s = strings.ToLower(s)
			}
			return tok(s)
		}
	}
	return analyzers, nil
}

// docError is the error of a document the mapping refuses.
func docError(format string, args ...any) *apiError {
	return badRequest("document_parsing_exception", format, args...)
}

// parseDoc checks src against root, adding the fields dynamic mapping
// creates. It returns the mapping to keep (root itself when nothing was
// added) and the document decoded.
func parseDoc(root *field, src []byte) (*field, map[string]any, *apiError) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(src)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, nil, docError("[1:1] failed to parse: the source is not one JSON value")
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, nil, docError("[1:1] failed to parse: the source is not a JSON object")
	}
	m := root.clone()
	if err := parseValues(m, "", doc, "true"); err != nil {
		return nil, nil, err
	}
	return m, doc, nil
}

// parseValues checks an object's values against the object field o.
func parseValues(o *field, path string, obj map[string]any, dynamic string) *apiError {
	if o.dynamic != "" {
		dynamic = o.dynamic
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		v, name := obj[k], path+k
		f, ok := o.props[k]
		if !ok {
			switch dynamic {
			case "strict":
				return &apiError{status: 400, typ: "strict_dynamic_mapping_exception", reason: fmt.Sprintf("[1:1] mapping set to strict, dynamic introduction of [%s] within [%s] is not allowed", k, strings.TrimSuffix(path, "."))}
			case "false":
				continue
			}
			if f = inferField(v); f == nil {
				continue
			}
			if o.props == nil {
				o.props = map[string]*field{}
			}
			o.props[k] = f
		}
		if err := checkValue(f, name, v, dynamic); err != nil {
			return err
		}
	}
	return nil
}

// inferField is the field dynamic mapping makes of value v (nil: none yet).
func inferField(v any) *field {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		for _, e := range x {
			if f := inferField(e); f != nil {
				return f
			}
		}
		return nil
	case map[string]any:
		return &field{typ: "object", props: map[string]*field{}}
	case bool:
		return &field{typ: "boolean"}
	case json.Number:
		if _, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
			return &field{typ: "long"}
		}
		return &field{typ: "float"}
	case string:
		if _, ok := parseDate(x); ok {
			return &field{typ: "date"}
		}
		return &field{typ: "text"}
	}
	return nil
}

// checkValue checks v, a value of field f.
func checkValue(f *field, name string, v any, dynamic string) *apiError {
	if arr, ok := v.([]any); ok && !f.disabled {
		for _, e := range arr {
			if err := checkValue(f, name, e, dynamic); err != nil {
				return err
			}
		}
		return nil
	}
	if v == nil || f.disabled {
		return nil
	}
	bad := func() *apiError {
		return docError("[1:1] failed to parse field [%s] of type [%s]. Preview of field's value: '%v'", name, f.typ, v)
	}
	switch f.typ {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return docError("[1:1] object mapping for [%s] tried to parse field [%s] as object, but found a concrete value", name, name)
		}
		return parseValues(f, name+".", obj, dynamic)
	case "keyword", "text":
		if _, ok := v.(map[string]any); ok {
			return bad()
		}
	case "date":
		if _, ok := dateMillis(v); !ok {
			return bad()
		}
	case "long", "integer":
		n, ok := number(v)
		lim := float64(1 << 63)
		if f.typ == "integer" {
			lim = 1 << 31
		}
		if !ok || n >= lim || n < -lim {
			return bad()
		}
	case "float", "double":
		if _, ok := number(v); !ok {
			return bad()
		}
	case "boolean":
		if _, ok := boolean(v); !ok {
			return bad()
		}
	}
	return nil
}

// number is a numeric value (a JSON number or a numeric string, which
// Elasticsearch coerces).
func number(v any) (float64, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	case float64:
		return x, true
	default:
		return 0, false
	}
	n, err := strconv.ParseFloat(s, 64)
	return n, err == nil
}

func boolean(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		switch x {
		case "true":
			return true, true
		case "false", "":
			return false, true
		}
	}
	return false, false
}

// parseDate reads strict_date_optional_time: a date, or a date and a time
// with an optional fraction and zone (UTC without one).
func parseDate(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// dateMillis is a date value as epoch milliseconds: a date string or a
// number of milliseconds (the default format,
// strict_date_optional_time||epoch_millis).
func dateMillis(v any) (int64, bool) {
	switch x := v.(type) {
	case string:
		if t, ok := parseDate(x); ok {
			return t.UnixMilli(), true
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return n, true
		}
	case json.Number:
		if n, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
			return n, true
		}
	case float64:
		return int64(x), true
	}
	return 0, false
}

// lookup is the mapped field at a dotted path, nil when unmapped or inside
// an object that is not parsed.
func (f *field) lookup(path string) *field {
	cur := f
	for p := range strings.SplitSeq(path, ".") {
		if cur.disabled || cur.props == nil {
			return nil
		}
		if cur = cur.props[p]; cur == nil {
			return nil
		}
	}
	if cur.disabled {
		return nil
	}
	return cur
}

// values are the values of path in doc (arrays flattened).
func values(doc map[string]any, path string) []any {
	var out []any
	var walk func(v any, rest []string)
	walk = func(v any, rest []string) {
		switch x := v.(type) {
		case nil:
		case []any:
			for _, e := range x {
				walk(e, rest)
			}
		case map[string]any:
			if len(rest) > 0 {
				walk(x[rest[0]], rest[1:])
			}
		default:
			if len(rest) == 0 {
				out = append(out, x)
			}
		}
	}
	walk(doc, strings.Split(path, "."))
	return out
}

package estest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// query is a parsed query: whether a document of an index matches, or an
// error of that index (a shard failure).
type query interface {
	match(ix *index, d *doc) (bool, *apiError)
}

type matchAll struct{}

func (matchAll) match(*index, *doc) (bool, *apiError) { return true, nil }

type boolQuery struct{ filter, must, mustNot []query }

func (q boolQuery) match(ix *index, d *doc) (bool, *apiError) {
	for _, c := range slices.Concat(q.filter, q.must) {
		if ok, err := c.match(ix, d); err != nil || !ok {
			return false, err
		}
	}
	for _, c := range q.mustNot {
		if ok, err := c.match(ix, d); err != nil || ok {
			return false, err
		}
	}
	return true, nil
}

type termsQuery struct {
	field  string
	values []any
}

type rangeQuery struct {
	field  string
	bounds map[string]any // gte, gt, lte, lt
}

type simpleQueryString struct {
	terms  []string
	fields []string
	and    bool
}

// decodeJSON decodes b with numbers kept as json.Number.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// single reads an object of exactly one key (a query, a field).
func single(kind string, raw json.RawMessage) (string, json.RawMessage, *apiError) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != 1 {
		return "", nil, badRequest("parsing_exception", "[%s] query malformed, must have exactly one key (an object)", kind)
	}
	for k, v := range m {
		return k, v, nil
	}
	panic("unreachable")
}

// clauses reads a bool clause: one query or an array of them.
func clauses(raw json.RawMessage) ([]query, *apiError) {
	var list []json.RawMessage
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, badRequest("parsing_exception", "[bool] malformed clause list")
		}
	} else {
		list = []json.RawMessage{raw}
	}
	out := make([]query, 0, len(list))
	for _, c := range list {
		q, err := parseQuery(c)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

// parseQuery reads the query DSL subset.
func parseQuery(raw json.RawMessage) (query, *apiError) {
	kind, body, err := single("query", raw)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "match_all":
		if string(bytes.TrimSpace(body)) != "{}" {
			return nil, notImplemented("match_all parameters")
		}
		return matchAll{}, nil
	case "bool":
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			return nil, badRequest("parsing_exception", "[bool] malformed query")
		}
		var q boolQuery
		for k, v := range m {
			var cs []query
			if k == "filter" || k == "must" || k == "must_not" {
				if cs, err = clauses(v); err != nil {
					return nil, err
				}
			}
			switch k {
			case "filter":
				q.filter = cs
			case "must":
				q.must = cs
			case "must_not":
				q.mustNot = cs
			case "should", "minimum_should_match", "boost":
				return nil, notImplemented("bool %s", k)
			default:
				return nil, badRequest("parsing_exception", "[bool] query does not support [%s]", k)
			}
		}
		return q, nil
	case "term", "terms":
		return parseTerms(kind, body)
	case "range":
		return parseRange(body)
	case "simple_query_string":
		return parseSimpleQueryString(body)
	}
	return nil, badRequest("parsing_exception", "unknown query [%s] (or estest does not implement it)", kind)
}

func parseTerms(kind string, body json.RawMessage) (query, *apiError) {
	field, v, err := single(kind, body)
	if err != nil {
		return nil, err
	}
	var val any
	if decodeJSON(v, &val) != nil {
		return nil, badRequest("parsing_exception", "[%s] malformed value", kind)
	}
	if kind == "terms" {
		list, ok := val.([]any)
		if !ok {
			return nil, badRequest("parsing_exception", "[terms] query does not support [%s]", field)
		}
		for _, e := range list {
			if !scalar(e) {
				return nil, badRequest("parsing_exception", "[terms] values must be scalars")
			}
		}
		return termsQuery{field: field, values: list}, nil
	}
	if obj, ok := val.(map[string]any); ok {
		if len(obj) != 1 || obj["value"] == nil {
			return nil, notImplemented("term parameters other than value")
		}
		val = obj["value"]
	}
	if !scalar(val) {
		return nil, badRequest("parsing_exception", "[term] query does not support array of values")
	}
	return termsQuery{field: field, values: []any{val}}, nil
}

func scalar(v any) bool {
	switch v.(type) {
	case string, json.Number, bool:
		return true
	}
	return false
}

func parseRange(body json.RawMessage) (query, *apiError) {
	field, v, err := single("range", body)
	if err != nil {
		return nil, err
	}
	var bounds map[string]any
	if decodeJSON(v, &bounds) != nil {
		return nil, badRequest("parsing_exception", "[range] query malformed")
	}
	for k, b := range bounds {
		switch {
		case k == "format" || k == "time_zone" || k == "relation" || k == "boost":
			return nil, notImplemented("range %s", k)
		case k != "gte" && k != "gt" && k != "lte" && k != "lt":
			return nil, badRequest("parsing_exception", "[range] query does not support [%s]", k)
		case !scalar(b):
			return nil, badRequest("parsing_exception", "[range] bound [%s] must be a value", k)
		}
	}
	return rangeQuery{field: field, bounds: bounds}, nil
}

// sqsOperators are simple_query_string's syntax characters: a query using
// them is not implemented here.
const sqsOperators = `+|-"*()~\`

func parseSimpleQueryString(body json.RawMessage) (query, *apiError) {
	var p map[string]any
	if decodeJSON(body, &p) != nil {
		return nil, badRequest("parsing_exception", "[simple_query_string] malformed query")
	}
	q := simpleQueryString{}
	text, ok := p["query"].(string)
	if !ok {
		return nil, badRequest("parsing_exception", "[simple_query_string] requires 'query' field")
	}
	if strings.ContainsAny(text, sqsOperators) {
		return nil, notImplemented("simple_query_string syntax (%q holds one of %s)", text, sqsOperators)
	}
	q.terms = strings.Fields(text)
	for k, v := range p {
		switch k {
		case "query":
		case "fields":
			list, ok := v.([]any)
			for _, f := range list {
				s, isString := f.(string)
				if !isString || strings.ContainsAny(s, "^*") {
					return nil, notImplemented("simple_query_string field %v (boosts, wildcards)", f)
				}
				q.fields = append(q.fields, s)
			}
			if !ok || len(q.fields) == 0 {
				return nil, badRequest("parsing_exception", "[simple_query_string] fields must be a list of field names")
			}
		case "default_operator":
			switch strings.ToLower(fmt.Sprint(v)) {
			case "and":
				q.and = true
			case "or":
			default:
				return nil, badRequest("illegal_argument_exception", "No enum constant Operator.%v", v)
			}
		default:
			return nil, notImplemented("simple_query_string %s", k)
		}
	}
	if q.fields == nil {
		return nil, notImplemented("simple_query_string without fields (index.query.default_field)")
	}
	return q, nil
}

// scalarString is a scalar value as a keyword holds it.
func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return fmt.Sprint(v)
}

func shardError(format string, args ...any) *apiError {
	return badRequest("query_shard_exception", format, args...)
}

// equal reports whether field value got equals the query's value want,
// in the field's type f.
func equal(f *field, ix *index, got, want any) (bool, *apiError) {
	switch f.typ {
	case "keyword":
		return scalarString(got) == scalarString(want), nil
	case "text":
		return slices.Contains(ix.analyze(f, scalarString(got)), scalarString(want)), nil
	case "long", "integer", "float", "double":
		w, ok := number(want)
		if !ok {
			return false, shardError("failed to create query: For input string: \"%v\"", want)
		}
		g, _ := number(got)
		return g == w, nil
	case "date":
		w, ok := dateMillis(want)
		if !ok {
			return false, shardError("failed to parse date field [%v]", want)
		}
		g, _ := dateMillis(got)
		return g == w, nil
	case "boolean":
		w, ok := boolean(want)
		if !ok {
			return false, shardError("Can't parse boolean value [%v], expected [true] or [false]", want)
		}
		g, _ := boolean(got)
		return g == w, nil
	}
	return false, nil
}

// analyze is value's tokens in text field f.
func (ix *index) analyze(f *field, value string) []string {
	if a, ok := ix.analyzers[f.analyzer]; ok && f.analyzer != "" {
		return a(value)
	}
	return standardAnalyzer(value)
}

func (q termsQuery) match(ix *index, d *doc) (bool, *apiError) {
	f := ix.mapping.lookup(q.field)
	if f == nil {
		return false, nil
	}
	for _, got := range values(d.parsed, q.field) {
		for _, want := range q.values {
			if ok, err := equal(f, ix, got, want); err != nil || ok {
				return ok, err
			}
		}
	}
	return false, nil
}

func (q rangeQuery) match(ix *index, d *doc) (bool, *apiError) {
	f := ix.mapping.lookup(q.field)
	if f == nil {
		return false, nil
	}
	kind := sortKind(f)
	if kind == 0 {
		return false, notImplemented("range on a %s field", f.typ)
	}
	bounds := map[string]sortVal{}
	for k, b := range q.bounds {
		v, ok := toSortVal(kind, b)
		if !ok {
			return false, shardError("failed to parse [%v] for the range on [%s]", b, q.field)
		}
		bounds[k] = v
	}
	for _, got := range values(d.parsed, q.field) {
		v, ok := toSortVal(kind, got)
		if !ok {
			continue
		}
		in := true
		for k, b := range bounds {
			c := v.compare(b)
			in = in && map[string]bool{"gte": c >= 0, "gt": c > 0, "lte": c <= 0, "lt": c < 0}[k]
		}
		if in {
			return true, nil
		}
	}
	return false, nil
}

func (q simpleQueryString) match(ix *index, d *doc) (bool, *apiError) {
	matched := 0
	counted := 0
	for _, term := range q.terms {
		hit, meaningful := false, false
		for _, name := range q.fields {
			f := ix.mapping.lookup(name)
			if f == nil {
				continue // an unmapped field matches nothing
			}
			var want []string
			switch f.typ {
			case "text":
				want = ix.analyze(f, term)
			case "keyword":
				want = []string{term}
			default:
				return false, notImplemented("simple_query_string on a %s field", f.typ)
			}
			if len(want) == 0 {
				continue
			}
			meaningful = true
			var have []string
			for _, v := range values(d.parsed, name) {
				if f.typ == "text" {
					have = append(have, ix.analyze(f, scalarString(v))...)
				} else {
					have = append(have, scalarString(v))
				}
			}
			all := true
			for _, t := range want {
				all = all && slices.Contains(have, t)
			}
			hit = hit || all
		}
		if meaningful {
			counted++
			if hit {
				matched++
			}
		}
	}
	if counted == 0 {
		return false, nil
	}
	if q.and {
		return matched == counted, nil
	}
	return matched > 0, nil
}

package observers

import (
	"encoding/json"
	"fmt"

	"github.com/goccy/go-yaml/ast"
)

// params decodes a mapping of arbitrary YAML values that must encode as
// JSON (a database action's params). The loader decodes them itself,
// rather than the YAML library, so that aliases and merge keys inside go
// through resolve and entries: the expansion budget and the merge depth
// apply, and an alias may name an anchor anywhere in the file before it.
func (l *loader) params(f entry, where string) map[string]any {
	v := l.resolve(f.value)
	if isNull(v) {
		return nil
	}
	entries, ok := l.mapping(f.value, f.keyN, where, nil)
	if !ok {
		return nil
	}
	m := make(map[string]any, len(entries))
	for _, e := range entries {
		m[e.key] = l.plainValue(e.value)
	}
	if _, err := json.Marshal(m); err != nil {
		l.errorf(f.value, fmt.Sprintf("%s cannot be encoded as JSON: %s", where, err), "use strings, numbers, booleans, lists and mappings")
		return nil
	}
	return m
}

// plainValue is a YAML value as Go data: map[string]any, []any, string,
// int64 or uint64, float64, bool or nil, as the YAML library decodes them.
func (l *loader) plainValue(n ast.Node) any {
	switch v := l.resolve(n).(type) {
	case nil, *ast.NullNode:
		return nil
	case *ast.MappingNode:
		entries := l.entries(v, 0)
		m := make(map[string]any, len(entries))
		for _, e := range entries {
			m[e.key] = l.plainValue(e.value)
		}
		return m
	case *ast.MappingValueNode:
		return l.plainValue(&ast.MappingNode{BaseNode: v.BaseNode, Values: []*ast.MappingValueNode{v}})
	case *ast.SequenceNode:
		out := make([]any, len(v.Values))
		for i, item := range v.Values {
			out[i] = l.plainValue(item)
		}
		return out
	case *ast.IntegerNode:
		return v.Value
	case *ast.FloatNode:
		return v.Value
	case *ast.InfinityNode:
		return v.Value
	case *ast.NanNode:
		return v.GetValue()
	case *ast.BoolNode:
		return v.Value
	default:
		return scalarText(v)
	}
}

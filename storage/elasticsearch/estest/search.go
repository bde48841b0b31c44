package estest

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// sortVal is a value as sorting and ranges compare it: a string (keyword,
// by bytes), an integer (long, integer, date in ms, boolean as 0/1) or a
// float.
type sortVal struct {
	kind    byte // 's', 'i', 'f'
	s       string
	i       int64
	f       float64
	missing bool
}

func (a sortVal) compare(b sortVal) int {
	switch a.kind {
	case 's':
		return strings.Compare(a.s, b.s)
	case 'i':
		return cmp.Compare(a.i, b.i)
	}
	return cmp.Compare(a.f, b.f)
}

// asJSON is the value as a hit's sort array shows it.
func (a sortVal) asJSON() any {
	switch {
	case a.missing:
		return nil
	case a.kind == 's':
		return a.s
	case a.kind == 'i':
		return a.i
	}
	return a.f
}

// sortKind is how values of f compare; 0 when they cannot be sorted.
func sortKind(f *field) byte {
	switch f.typ {
	case "keyword":
		return 's'
	case "long", "integer", "date", "boolean":
		return 'i'
	case "float", "double":
		return 'f'
	}
	return 0
}

// toSortVal reads v as a value of kind; dates (strings or ms) and
// booleans read as integers.
func toSortVal(kind byte, v any) (sortVal, bool) {
	switch kind {
	case 's':
		return sortVal{kind: 's', s: scalarString(v)}, scalar(v)
	case 'f':
		f, ok := number(v)
		return sortVal{kind: 'f', f: f}, ok
	}
	switch x := v.(type) {
	case bool:
		return sortVal{kind: 'i', i: map[bool]int64{false: 0, true: 1}[x]}, true
	case json.Number:
		i, err := strconv.ParseInt(x.String(), 10, 64)
		return sortVal{kind: 'i', i: i}, err == nil
	case string:
		if i, err := strconv.ParseInt(x, 10, 64); err == nil {
			return sortVal{kind: 'i', i: i}, true
		}
		if b, ok := boolean(x); ok && x != "" {
			return toSortVal('i', b)
		}
		ms, ok := dateMillis(x)
		return sortVal{kind: 'i', i: ms}, ok
	}
	return sortVal{}, false
}

type sortKey struct {
	field string
	desc  bool
}

// parseSort reads a sort: names, {name: order} or {name: {order: …}}.
func parseSort(raw json.RawMessage) ([]sortKey, *apiError) {
	var list []any
	if err := decodeJSON(raw, &list); err != nil {
		var one any
		if decodeJSON(raw, &one) != nil {
			return nil, badRequest("parsing_exception", "malformed sort")
		}
		list = []any{one}
	}
	keys := make([]sortKey, 0, len(list))
	for _, e := range list {
		switch x := e.(type) {
		case string:
			keys = append(keys, sortKey{field: x})
		case map[string]any:
			if len(x) != 1 {
				return nil, badRequest("parsing_exception", "malformed sort: one field per element")
			}
			for name, spec := range x {
				order := spec
				if m, ok := spec.(map[string]any); ok {
					if len(m) != 1 || m["order"] == nil {
						return nil, notImplemented("sort options other than order")
					}
					order = m["order"]
				}
				switch order {
				case "asc", "desc":
					keys = append(keys, sortKey{field: name, desc: order == "desc"})
				default:
					return nil, badRequest("parsing_exception", "[sort] unknown order [%v]", order)
				}
			}
		default:
			return nil, badRequest("parsing_exception", "malformed sort element")
		}
	}
	for _, k := range keys {
		if strings.HasPrefix(k.field, "_") {
			return nil, notImplemented("sort on %s", k.field)
		}
	}
	return keys, nil
}

// searchReq is a search's body.
type searchReq struct {
	query      query
	sort       []sortKey
	size       int
	after      []any
	trackTotal bool
}

func parseSearch(b []byte) (searchReq, *apiError) {
	req := searchReq{query: matchAll{}, size: 10, trackTotal: true}
	if len(b) == 0 {
		return req, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return req, badRequest("parsing_exception", "the search body is not a JSON object")
	}
	var err *apiError
	for k, v := range top {
		switch k {
		case "query":
			req.query, err = parseQuery(v)
		case "sort":
			req.sort, err = parseSort(v)
		case "size":
			if e := json.Unmarshal(v, &req.size); e != nil || req.size < 0 {
				err = badRequest("illegal_argument_exception", "[size] parameter cannot be negative or other than a number, found [%s]", v)
			}
		case "search_after":
			if e := decodeJSON(v, &req.after); e != nil {
				err = badRequest("parsing_exception", "[search_after] must be an array")
			}
		case "track_total_hits":
			var t any
			_ = decodeJSON(v, &t)
			req.trackTotal = t != false
		default:
			err = badRequest("parsing_exception", "Unknown key for a START_OBJECT in [%s]. (or estest does not implement it)", k)
		}
		if err != nil {
			return req, err
		}
	}
	if req.after != nil && len(req.after) != len(req.sort) {
		return req, badRequest("illegal_argument_exception", "search_after has %d value(s) but sort has %d.", len(req.after), len(req.sort))
	}
	return req, nil
}

// resolve turns a search's targets into indices (s.mu held).
func (s *Server) resolve(target string) ([]*index, *apiError) {
	seen := map[string]bool{}
	var out []*index
	for t := range strings.SplitSeq(target, ",") {
		switch {
		case strings.HasPrefix(t, "-"):
			return nil, notImplemented("target exclusions")
		case t == "_all" || strings.Contains(t, "*"):
			for name, ix := range s.indices {
				hidden := strings.HasPrefix(name, ".") && !strings.HasPrefix(t, ".")
				if !seen[name] && !hidden && (t == "_all" || globMatch(t, name)) {
					seen[name] = true
					out = append(out, ix)
				}
			}
		default:
			ix, ok := s.indices[t]
			if !ok {
				return nil, indexNotFound(t)
			}
			if !seen[t] {
				seen[t] = true
				out = append(out, ix)
			}
		}
	}
	slices.SortFunc(out, func(a, b *index) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// found is a matching document with its sort values.
type found struct {
	ix   *index
	id   string
	d    *doc
	sort []sortVal
}

// collect returns ix's documents that match req, after req.after.
func collect(ix *index, req searchReq) ([]found, *apiError) {
	kinds := make([]byte, len(req.sort))
	for i, k := range req.sort {
		f := ix.mapping.lookup(k.field)
		switch {
		case f == nil:
			return nil, shardError("No mapping found for [%s] in order to sort on", k.field)
		case f.typ == "text":
			return nil, badRequest("illegal_argument_exception", "Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [%s] in order to load field data by uninverting the inverted index.", k.field)
		}
		if kinds[i] = sortKind(f); kinds[i] == 0 {
			return nil, badRequest("illegal_argument_exception", "cannot sort on field [%s] of type [%s]", k.field, f.typ)
		}
	}
	var after []sortVal
	for i, v := range req.after {
		sv, ok := toSortVal(kinds[i], v)
		if !ok {
			return nil, badRequest("illegal_argument_exception", "Failed to parse search_after value [%v] for field [%s]", v, req.sort[i].field)
		}
		after = append(after, sv)
	}
	var out []found
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range ix.docs {
			if !yield(id) {
				return
			}
		}
	}) {
		d := ix.docs[id]
		if d.deleted {
			continue
		}
		ok, err := req.query.match(ix, d)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		f := found{ix: ix, id: id, d: d, sort: sortValues(d, req.sort, kinds)}
		if after != nil && compareSort(req.sort, f.sort, after) <= 0 {
			continue
		}
		out = append(out, f)
	}
	return out, nil
}

// sortValues are d's values of keys: min (ascending) or max (descending)
// of a field's values; missing when it has none.
func sortValues(d *doc, keys []sortKey, kinds []byte) []sortVal {
	out := make([]sortVal, len(keys))
	for i, k := range keys {
		best := sortVal{kind: kinds[i], missing: true}
		for _, v := range values(d.parsed, k.field) {
			sv, ok := toSortVal(kinds[i], v)
			if !ok {
				continue
			}
			if c := sv.compare(best); best.missing || k.desc && c > 0 || !k.desc && c < 0 {
				best = sv
			}
		}
		out[i] = best
	}
	return out
}

// compareSort orders two sort tuples as the sort does; missing values
// last in either direction.
func compareSort(keys []sortKey, a, b []sortVal) int {
	for i, k := range keys {
		switch {
		case a[i].missing && b[i].missing:
			continue
		case a[i].missing:
			return 1
		case b[i].missing:
			return -1
		}
		c := a[i].compare(b[i])
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// search answers POST <targets>/_search.
func (s *Server) search(w http.ResponseWriter, r *http.Request, parts []string) {
	if _, ok := params(w, r); !ok {
		return
	}
	var b []byte
	if r.ContentLength != 0 {
		var ok bool
		if b, ok = body(w, r, false); !ok {
			return
		}
	}
	req, err := parseSearch(b)
	if err != nil {
		err.write(w)
		return
	}
	if req.size > s.maxResultWindow {
		badRequest("illegal_argument_exception", "Result window is too large, from + size must be less than or equal to: [%d] but was [%d].", s.maxResultWindow, req.size).write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	indices, err := s.resolve(parts[0])
	if err != nil {
		err.write(w)
		return
	}
	var all []found
	var failures []any
	var firstErr *apiError
	for _, ix := range indices {
		hits, err := collect(ix, req)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			failures = append(failures, map[string]any{"shard": 0, "index": ix.name, "node": "estest", "reason": map[string]any{"type": err.typ, "reason": err.reason}})
			continue
		}
		all = append(all, hits...)
	}
	if len(indices) > 0 && len(failures) == len(indices) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
			"root_cause": []any{map[string]any{"type": firstErr.typ, "reason": firstErr.reason}},
			"type":       "search_phase_execution_exception", "reason": "all shards failed", "phase": "query", "grouped": true,
			"failed_shards": failures,
		}, "status": http.StatusBadRequest})
		return
	}
	slices.SortStableFunc(all, func(a, b found) int {
		return cmp.Or(compareSort(req.sort, a.sort, b.sort), strings.Compare(a.ix.name, b.ix.name), strings.Compare(a.id, b.id))
	})
	total := len(all)
	all = all[:min(len(all), req.size)]
	hits := make([]any, 0, len(all))
	for _, f := range all {
		h := map[string]any{"_index": f.ix.name, "_id": f.id, "_score": nil, "_source": f.d.source}
		if req.sort != nil {
			sv := make([]any, len(f.sort))
			for i, v := range f.sort {
				sv[i] = v.asJSON()
			}
			h["sort"] = sv
		}
		hits = append(hits, h)
	}
	out := map[string]any{"hits": hits, "max_score": nil}
	if req.trackTotal {
		out["total"] = map[string]any{"value": total, "relation": "eq"}
	}
	shards := map[string]any{"total": len(indices), "successful": len(indices) - len(failures), "skipped": 0, "failed": len(failures)}
	if len(failures) > 0 {
		shards["failures"] = failures
	}
	writeJSON(w, http.StatusOK, map[string]any{"took": s.took, "timed_out": false, "_shards": shards, "hits": out})
}

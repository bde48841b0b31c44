package estest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// template is a composable index template.
type template struct {
	name     string
	raw      json.RawMessage
	patterns []string
	priority int64
	settings map[string]any // flattened
	mappings map[string]any
}

// globMatch reports whether s matches pattern, whose only wildcard is *.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// matchTemplate is the template of highest priority matching index name.
// s.mu is held.
func (s *Server) matchTemplate(name string) *template {
	var best *template
	for _, t := range s.templates {
		if slices.ContainsFunc(t.patterns, func(p string) bool { return globMatch(p, name) }) && (best == nil || t.priority > best.priority) {
			best = t
		}
	}
	return best
}

// Template returns the stored body of index template name.
func (s *Server) Template(name string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.templates[name]
	if !ok {
		return nil, false
	}
	return t.raw, true
}

// putTemplate answers PUT /_index_template/<name>.
func (s *Server) putTemplate(w http.ResponseWriter, r *http.Request, parts []string) {
	q, ok := params(w, r, "create")
	if !ok {
		return
	}
	b, ok := body(w, r, false)
	if !ok {
		return
	}
	var req struct {
		IndexPatterns json.RawMessage `json:"index_patterns"`
		Template      *struct {
			Settings map[string]any `json:"settings"`
			Mappings map[string]any `json:"mappings"`
		} `json:"template"`
		Priority *int64         `json:"priority"`
		Version  *int64         `json:"version"`
		Meta     map[string]any `json:"_meta"`
	}
	if err := strictJSON(b, &req); err != nil {
		badRequest("x_content_parse_exception", "[index_template] %v (estest implements index_patterns, template.settings, template.mappings, priority, version, _meta)", err).write(w)
		return
	}
	t := &template{name: parts[1], raw: b, mappings: map[string]any{}}
	if err := json.Unmarshal(req.IndexPatterns, &t.patterns); err != nil {
		var one string
		if json.Unmarshal(req.IndexPatterns, &one) != nil || one == "" {
			badRequest("action_request_validation_exception", "Validation Failed: 1: index patterns are missing;").write(w)
			return
		}
		t.patterns = []string{one}
	}
	if len(t.patterns) == 0 {
		badRequest("action_request_validation_exception", "Validation Failed: 1: index patterns are missing;").write(w)
		return
	}
	if req.Priority != nil {
		t.priority = *req.Priority
	}
	if req.Template != nil {
		var err *apiError
		if t.settings, err = parseSettings(req.Template.Settings); err == nil {
			var analyzers map[string]analyzer
			if analyzers, err = buildAnalyzers(t.settings); err == nil {
				_, err = parseMappings(req.Template.Mappings, analyzers)
			}
		}
		if err != nil {
			err.write(w)
			return
		}
		if req.Template.Mappings != nil {
			t.mappings = req.Template.Mappings
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.templates[t.name]; exists && q.Get("create") == "true" {
		badRequest("illegal_argument_exception", "index template [%s] already exists", t.name).write(w)
		return
	}
	for _, other := range s.templates {
		if other.name != t.name && other.priority == t.priority && overlap(other.patterns, t.patterns) {
			badRequest("illegal_argument_exception", "index template [%s] has index patterns %v matching patterns from existing templates [%s] with patterns (%s => %v) that have the same priority [%d], multiple index templates may not match during index creation, please use a different priority",
				t.name, t.patterns, other.name, other.name, other.patterns, t.priority).write(w)
			return
		}
	}
	s.templates[t.name] = t
	writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
}

// overlap reports whether patterns of two templates may match one index.
func overlap(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if globMatch(x, y) || globMatch(y, x) {
				return true
			}
		}
	}
	return false
}

// getTemplate answers GET /_index_template/<name>.
func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request, parts []string) {
	if _, ok := params(w, r); !ok {
		return
	}
	if strings.ContainsAny(parts[1], "*,") {
		notImplemented("template name patterns").write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.templates[parts[1]]
	if !ok {
		writeError(w, http.StatusNotFound, "resource_not_found_exception", "index template matching ["+parts[1]+"] not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"index_templates": []any{map[string]any{"name": t.name, "index_template": t.raw}}})
}

// policy is an ILM policy.
type policy struct {
	raw     json.RawMessage // the "policy" object
	version int
}

// Policy returns the stored "policy" object of ILM policy name.
func (s *Server) Policy(name string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[name]
	if !ok {
		return nil, false
	}
	return p.raw, true
}

// phaseActions are the actions each ILM phase takes.
var phaseActions = map[string][]string{
	"hot":    {"rollover", "set_priority", "unfollow", "readonly", "shrink", "forcemerge", "searchable_snapshot", "downsample"},
	"warm":   {"set_priority", "unfollow", "readonly", "allocate", "migrate", "shrink", "forcemerge", "downsample"},
	"cold":   {"set_priority", "unfollow", "readonly", "searchable_snapshot", "allocate", "migrate", "downsample"},
	"frozen": {"unfollow", "searchable_snapshot"},
	"delete": {"wait_for_snapshot", "delete"},
}

var phaseOrder = []string{"hot", "warm", "cold", "frozen", "delete"}

var rolloverConditions = []string{
	"max_age", "max_docs", "max_size", "max_primary_shard_size", "max_primary_shard_docs",
	"min_age", "min_docs", "min_size", "min_primary_shard_size", "min_primary_shard_docs",
}

var (
	timeValueRE = regexp.MustCompile(`^(\d+)(nanos|micros|ms|s|m|h|d)$`)
	byteSizeRE  = regexp.MustCompile(`^\d+(\.\d+)?(b|kb|mb|gb|tb|pb)$`)
)

// timeValueMillis reads a time value ("30d") in milliseconds.
func timeValueMillis(s string) (float64, bool) {
	m := timeValueRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]float64{"nanos": 1e-6, "micros": 1e-3, "ms": 1, "s": 1e3, "m": 6e4, "h": 3.6e6, "d": 8.64e7}[m[2]]
	return n * unit, true
}

// checkPolicy validates an ILM policy object.
func checkPolicy(raw json.RawMessage) *apiError {
	var p struct {
		Phases map[string]struct {
			MinAge  *string                    `json:"min_age"`
			Actions map[string]json.RawMessage `json:"actions"`
		} `json:"phases"`
		Meta map[string]any `json:"_meta"`
	}
	if err := strictJSON(raw, &p); err != nil {
		return badRequest("x_content_parse_exception", "[policy] %v", err)
	}
	last, lastPhase := -1.0, ""
	for _, name := range phaseOrder {
		ph, ok := p.Phases[name]
		if !ok {
			continue
		}
		age := 0.0
		if ph.MinAge != nil {
			var ok bool
			if age, ok = timeValueMillis(*ph.MinAge); !ok {
				return badRequest("illegal_argument_exception", "failed to parse setting [min_age] with value [%s] as a time value", *ph.MinAge)
			}
		}
		if age < last {
			return badRequest("illegal_argument_exception", "Your policy is configured to run the %s phase (min_age: %s) before the %s phase", name, *ph.MinAge, lastPhase)
		}
		last, lastPhase = age, name
		for action, body := range ph.Actions {
			if !slices.Contains(phaseActions[name], action) {
				return badRequest("illegal_argument_exception", "invalid action [%s] defined in phase [%s]", action, name)
			}
			if action == "rollover" {
				if err := checkRollover(body); err != nil {
					return err
				}
			}
		}
	}
	for name := range p.Phases {
		if _, ok := phaseActions[name]; !ok {
			return badRequest("illegal_argument_exception", "Timeseries lifecycle does not support phase [%s]", name)
		}
	}
	return nil
}

// checkRollover validates a rollover action's conditions.
func checkRollover(body json.RawMessage) *apiError {
	var conds map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&conds); err != nil {
		return badRequest("x_content_parse_exception", "[rollover] %v", err)
	}
	hasMax := false
	for _, k := range slices.Sorted(maps.Keys(conds)) {
		if !slices.Contains(rolloverConditions, k) {
			return badRequest("x_content_parse_exception", "[1:1] [rollover] unknown field [%s]", k)
		}
		v := fmt.Sprint(conds[k])
		switch {
		case strings.HasSuffix(k, "_size") && !byteSizeRE.MatchString(strings.ToLower(v)):
			return badRequest("x_content_parse_exception", "[rollover] failed to parse [%s]: [%s] is not a byte size", k, v)
		case strings.HasSuffix(k, "_age"):
			if _, ok := timeValueMillis(v); !ok {
				return badRequest("x_content_parse_exception", "[rollover] failed to parse [%s]: [%s] is not a time value", k, v)
			}
		}
		hasMax = hasMax || strings.HasPrefix(k, "max_")
	}
	if !hasMax {
		return badRequest("illegal_argument_exception", "At least one max_* rollover condition must be set.")
	}
	return nil
}

// putPolicy answers PUT /_ilm/policy/<name>.
func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request, parts []string) {
	if _, ok := params(w, r); !ok {
		return
	}
	b, ok := body(w, r, false)
	if !ok {
		return
	}
	var req struct {
		Policy json.RawMessage `json:"policy"`
	}
	if err := strictJSON(b, &req); err != nil || len(req.Policy) == 0 {
		badRequest("x_content_parse_exception", "[put_lifecycle_request] expects a policy object: %v", err).write(w)
		return
	}
	if err := checkPolicy(req.Policy); err != nil {
		err.write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.policies[parts[2]]
	if p == nil {
		p = &policy{}
		s.policies[parts[2]] = p
	}
	p.raw, p.version = req.Policy, p.version+1
	writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
}

// getPolicy answers GET /_ilm/policy/<name>.
func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, parts []string) {
	if _, ok := params(w, r); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[parts[2]]
	if !ok {
		writeError(w, http.StatusNotFound, "resource_not_found_exception", "Lifecycle policy not found: ["+parts[2]+"]")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{parts[2]: map[string]any{
		"version": p.version, "modified_date": "2026-01-01T00:00:00.000Z", "policy": p.raw,
		"in_use_by": map[string]any{"indices": []string{}, "data_streams": []string{}, "composable_templates": []string{}},
	}})
}

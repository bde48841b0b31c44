package estest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// doc is a stored document, or a deletion's tombstone.
type doc struct {
	source    json.RawMessage
	parsed    map[string]any
	version   int64
	seqNo     int64
	deleted   bool
	deletedAt time.Time
}

// index is an index: its settings, mapping and documents.
type index struct {
	name      string
	uuid      string
	settings  map[string]any
	mapping   *field
	analyzers map[string]analyzer
	docs      map[string]*doc
}

// gcDeletes is how long a tombstone keeps its version (index.gc_deletes).
func (ix *index) gcDeletes() time.Duration {
	if v, ok := ix.settings["index.gc_deletes"]; ok {
		if d, err := time.ParseDuration(fmt.Sprint(v)); err == nil {
			return d
		}
	}
	return time.Minute
}

// invalidIndexName checks an index name as Elasticsearch does.
func invalidIndexName(name string) *apiError {
	bad := func(why string) *apiError {
		return &apiError{status: http.StatusBadRequest, typ: "invalid_index_name_exception", reason: fmt.Sprintf("Invalid index name [%s], %s", name, why)}
	}
	switch {
	case name != strings.ToLower(name):
		return bad("must be lowercase")
	case name == "" || name == "." || name == "..":
		return bad("must not be '.' or '..'")
	case strings.ContainsAny(name[:1], "_-+"):
		return bad("must not start with '_', '-', or '+'")
	case strings.ContainsAny(name, `\/*?"<>| ,#:`):
		return bad(`must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?, #, :]`)
	case len(name) > 255:
		return bad("index name is too long")
	}
	return nil
}

func indexNotFound(name string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "index_not_found_exception", reason: "no such index [" + name + "]"}
}

// newIndex creates index name from the templates matching it and the
// request's settings and mappings (which take precedence). s.mu is held.
func (s *Server) newIndex(name string, settings, mappings map[string]any) (*index, *apiError) {
	if err := invalidIndexName(name); err != nil {
		return nil, err
	}
	allSettings, allMappings := map[string]any{}, map[string]any{}
	if t := s.matchTemplate(name); t != nil {
		maps.Copy(allSettings, t.settings)
		mergeMappings(allMappings, t.mappings)
	}
	flat, err := parseSettings(settings)
	if err != nil {
		return nil, err
	}
	maps.Copy(allSettings, flat)
	mergeMappings(allMappings, mappings)
	analyzers, err := buildAnalyzers(allSettings)
	if err != nil {
		return nil, err
	}
	mapping, err := parseMappings(allMappings, analyzers)
	if err != nil {
		return nil, err
	}
	s.seqNo++
	ix := &index{name: name, uuid: fmt.Sprintf("estest-%d", s.seqNo), settings: allSettings, mapping: mapping, analyzers: analyzers, docs: map[string]*doc{}}
	s.indices[name] = ix
	return ix, nil
}

// mergeMappings adds src's properties (and other keys) to dst.
func mergeMappings(dst, src map[string]any) {
	for k, v := range src {
		sp, ok1 := v.(map[string]any)
		dp, ok2 := dst[k].(map[string]any)
		if k == "properties" && ok1 && ok2 {
			merged := maps.Clone(dp)
			maps.Copy(merged, sp)
			dst[k] = merged
			continue
		}
		dst[k] = v
	}
}

// createIndex answers PUT /<index>.
func (s *Server) createIndex(w http.ResponseWriter, r *http.Request, parts []string) {
	if _, ok := params(w, r); !ok {
		return
	}
	var req struct {
		Settings map[string]any `json:"settings"`
		Mappings map[string]any `json:"mappings"`
	}
	if r.ContentLength != 0 {
		b, ok := body(w, r, false)
		if !ok {
			return
		}
		if err := strictJSON(b, &req); err != nil {
			badRequest("x_content_parse_exception", "estest: create index body: %v (estest implements settings and mappings)", err).write(w)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name := parts[0]
	if ix, ok := s.indices[name]; ok {
		writeError(w, http.StatusBadRequest, "resource_already_exists_exception", fmt.Sprintf("index [%s/%s] already exists", name, ix.uuid))
		return
	}
	if _, err := s.newIndex(name, req.Settings, req.Mappings); err != nil {
		err.write(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true, "shards_acknowledged": true, "index": name})
}

// strictJSON decodes b into v, refusing unknown fields and trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

// writeOp is one write: of a _doc request or a bulk item.
type writeOp struct {
	action      string // index, create, delete
	index, id   string
	version     *int64
	versionType string
	source      []byte
}

// apply runs op and returns its status and result (or error) object, as
// a bulk item shows it. s.mu is held.
func (s *Server) apply(op writeOp) (int, map[string]any) {
	fail := func(e *apiError) (int, map[string]any) {
		errObj := map[string]any{"type": e.typ, "reason": e.reason, "index": op.index, "shard": "0"}
		if ix := s.indices[op.index]; ix != nil {
			errObj["index_uuid"] = ix.uuid
		}
		return e.status, map[string]any{"_index": op.index, "_id": op.id, "status": e.status, "error": errObj}
	}
	if len(op.id) > 512 {
		return fail(badRequest("action_request_validation_exception", "Validation Failed: 1: id [%s] is too long, must be no longer than 512 bytes but was: %d;", op.id[:16]+"…", len(op.id)))
	}
	ix, ok := s.indices[op.index]
	if !ok {
		if op.action == "delete" {
			return fail(indexNotFound(op.index))
		}
		var err *apiError
		if ix, err = s.newIndex(op.index, nil, nil); err != nil {
			return fail(err)
		}
	}
	var mapping *field
	var parsed map[string]any
	if op.action != "delete" {
		var err *apiError
		if mapping, parsed, err = parseDoc(ix.mapping, op.source); err != nil {
			return fail(err)
		}
	}
	cur := ix.docs[op.id]
	if cur != nil && cur.deleted && s.now().Sub(cur.deletedAt) > ix.gcDeletes() {
		delete(ix.docs, op.id)
		cur = nil
	}
	live := cur != nil && !cur.deleted
	version, err := nextVersion(op, cur, live)
	if err != nil {
		return fail(err)
	}
	s.seqNo++
	result, status := "created", http.StatusCreated
	switch {
	case op.action == "delete" && live:
		result, status = "deleted", http.StatusOK
	case op.action == "delete":
		result, status = "not_found", http.StatusNotFound
	case live:
		result, status = "updated", http.StatusOK
	}
	switch {
	case op.action != "delete":
		ix.mapping = mapping
		ix.docs[op.id] = &doc{source: append(json.RawMessage(nil), op.source...), parsed: parsed, version: version, seqNo: s.seqNo}
	case live || op.versionType == "external" || op.versionType == "external_gte":
		// A tombstone keeps the deletion's version for index.gc_deletes.
		ix.docs[op.id] = &doc{version: version, seqNo: s.seqNo, deleted: true, deletedAt: s.now()}
	}
	return status, map[string]any{
		"_index": op.index, "_id": op.id, "_version": version, "result": result, "status": status,
		"_shards": map[string]any{"total": 1, "successful": 1, "failed": 0}, "_seq_no": s.seqNo, "_primary_term": 1,
	}
}

// nextVersion is the version op gives the document, or its conflict.
func nextVersion(op writeOp, cur *doc, live bool) (int64, *apiError) {
	conflict := func(format string, args ...any) *apiError {
		return &apiError{status: http.StatusConflict, typ: "version_conflict_engine_exception", reason: fmt.Sprintf("[%s]: version conflict, "+format, append([]any{op.id}, args...)...)}
	}
	switch op.versionType {
	case "", "internal":
		if op.version != nil {
			return 0, badRequest("action_request_validation_exception", "Validation Failed: 1: internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead;")
		}
		if op.action == "create" && live {
			return 0, conflict("document already exists (current version [%d])", cur.version)
		}
		if cur == nil {
			return 1, nil
		}
		return cur.version + 1, nil
	case "external", "external_gte":
		if op.version == nil || *op.version < 0 {
			return 0, badRequest("action_request_validation_exception", "Validation Failed: 1: illegal version value [-3] for version type [%s];", strings.ToUpper(op.versionType))
		}
		if op.action == "create" {
			return 0, badRequest("action_request_validation_exception", "Validation Failed: 1: create operations only support internal versioning. use index instead;")
		}
		v := *op.version
		if cur != nil && (v < cur.version || v == cur.version && op.versionType == "external") {
			return 0, conflict("current version [%d] is higher or equal to the one provided [%d]", cur.version, v)
		}
		return v, nil
	}
	return 0, badRequest("illegal_argument_exception", "No version type match [%s]", op.versionType)
}

// docOp reads the version parameters of a _doc request.
func docOp(q map[string][]string, op *writeOp) *apiError {
	if v := q["version"]; len(v) > 0 {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil {
			return badRequest("illegal_argument_exception", "Failed to parse version [%s]", v[0])
		}
		op.version = &n
	}
	if v := q["version_type"]; len(v) > 0 {
		op.versionType = v[0]
	}
	return nil
}

// putDoc answers PUT /<index>/_doc/<id>.
func (s *Server) putDoc(w http.ResponseWriter, r *http.Request, parts []string) {
	q, ok := params(w, r, "version", "version_type", "op_type")
	if !ok {
		return
	}
	b, ok := body(w, r, false)
	if !ok {
		return
	}
	op := writeOp{action: "index", index: parts[0], id: parts[2], source: b}
	switch t := q.Get("op_type"); t {
	case "", "index", "create":
		op.action = map[string]string{"": "index", "index": "index", "create": "create"}[t]
	default:
		badRequest("illegal_argument_exception", "opType must be 'create' or 'index', found: [%s]", t).write(w)
		return
	}
	if err := docOp(q, &op); err != nil {
		err.write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	status, res := s.apply(op)
	writeItem(w, status, res)
}

// writeItem answers a _doc request with an item's outcome.
func writeItem(w http.ResponseWriter, status int, res map[string]any) {
	if e, ok := res["error"].(map[string]any); ok {
		writeJSON(w, status, map[string]any{"error": errorBody(e["type"].(string), e["reason"].(string)), "status": status})
		return
	}
	delete(res, "status")
	writeJSON(w, status, res)
}

// getDoc answers GET /<index>/_doc/<id> (real time: a write is seen at once).
func (s *Server) getDoc(w http.ResponseWriter, r *http.Request, parts []string) {
	if _, ok := params(w, r); !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ix, ok := s.indices[parts[0]]
	if !ok {
		indexNotFound(parts[0]).write(w)
		return
	}
	d := ix.docs[parts[2]]
	if d == nil || d.deleted {
		writeJSON(w, http.StatusNotFound, map[string]any{"_index": ix.name, "_id": parts[2], "found": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"_index": ix.name, "_id": parts[2], "_version": d.version, "_seq_no": d.seqNo, "_primary_term": 1,
		"found": true, "_source": d.source,
	})
}

// deleteDoc answers DELETE /<index>/_doc/<id>.
func (s *Server) deleteDoc(w http.ResponseWriter, r *http.Request, parts []string) {
	q, ok := params(w, r, "version", "version_type")
	if !ok {
		return
	}
	op := writeOp{action: "delete", index: parts[0], id: parts[2]}
	if err := docOp(q, &op); err != nil {
		err.write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	status, res := s.apply(op)
	writeItem(w, status, res)
}

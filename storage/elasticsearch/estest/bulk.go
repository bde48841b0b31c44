package estest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
)

// bulk answers POST /_bulk: NDJSON, an action and metadata line, then the
// source line for index and create; the body ends with a newline.
func (s *Server) bulk(w http.ResponseWriter, r *http.Request, _ []string) {
	if _, ok := params(w, r); !ok {
		return
	}
	b, ok := body(w, r, true)
	if !ok {
		return
	}
	if !bytes.HasSuffix(b, []byte("\n")) {
		badRequest("illegal_argument_exception", `The bulk request must be terminated by a newline [\n]`).write(w)
		return
	}
	ops, err := s.parseBulk(bytes.Split(b[:len(b)-1], []byte("\n")))
	if err != nil {
		err.write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	items := make([]any, 0, len(ops))
	failed := false
	for _, op := range ops {
		status, res := s.injected(op)
		if status == 0 {
			status, res = s.apply(op)
		}
		failed = failed || status >= 300
		items = append(items, map[string]any{op.action: res})
	}
	writeJSON(w, http.StatusOK, map[string]any{"took": s.took, "errors": failed, "items": items})
}

// injected is the failure FailItems sets for op, if any (status 0: none).
// s.mu is held.
func (s *Server) injected(op writeOp) (int, map[string]any) {
	if s.failItem == nil {
		return 0, nil
	}
	status := s.failItem(op.index, op.id)
	if status == 0 {
		return 0, nil
	}
	typ := "unavailable_shards_exception"
	switch {
	case status == http.StatusTooManyRequests:
		typ = "es_rejected_execution_exception"
	case status == http.StatusBadRequest:
		typ = "document_parsing_exception"
	case status < 500:
		typ = "estest_injected_exception"
	}
	return status, map[string]any{"_index": op.index, "_id": op.id, "status": status,
		"error": map[string]any{"type": typ, "reason": fmt.Sprintf("estest: injected failure of [%s]", op.id), "index": op.index, "shard": "0"}}
}

// parseBulk reads the lines of a bulk body into writes.
func (s *Server) parseBulk(lines [][]byte) ([]writeOp, *apiError) {
	var ops []writeOp
	for i := 0; i < len(lines); i++ {
		n := i + 1
		var action map[string]json.RawMessage
		if err := json.Unmarshal(lines[i], &action); err != nil || action == nil {
			return nil, badRequest("x_content_parse_exception", "[%d:1] Malformed action/metadata line [%d], expected START_OBJECT", n, n)
		}
		if len(action) != 1 {
			return nil, badRequest("illegal_argument_exception", "Malformed action/metadata line [%d], expected one action", n)
		}
		var op writeOp
		var metaRaw json.RawMessage
		for op.action, metaRaw = range action {
		}
		switch op.action {
		case "index", "create", "delete":
		case "update":
			return nil, notImplemented("bulk update")
		default:
			return nil, badRequest("illegal_argument_exception", "Malformed action/metadata line [%d], expected field [create], [delete], [index] or [update] but found [%s]", n, op.action)
		}
		if err := bulkMeta(n, metaRaw, &op); err != nil {
			return nil, err
		}
		if op.action != "delete" {
			i++
			if i >= len(lines) {
				return nil, badRequest("action_request_validation_exception", "Validation Failed: 1: source is missing;")
			}
			op.source = lines[i]
		}
		if op.id == "" {
			if op.action != "index" {
				return nil, badRequest("action_request_validation_exception", "Validation Failed: 1: id is missing;")
			}
			s.mu.Lock()
			s.seqNo++
			op.id = fmt.Sprintf("auto-%d", s.seqNo)
			s.mu.Unlock()
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return nil, badRequest("action_request_validation_exception", "Validation Failed: 1: no requests added;")
	}
	return ops, nil
}

// bulkMeta reads an action's metadata into op.
func bulkMeta(n int, raw json.RawMessage, op *writeOp) *apiError {
	var meta map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&meta); err != nil || meta == nil {
		return badRequest("x_content_parse_exception", "Malformed action/metadata line [%d], expected START_OBJECT", n)
	}
	for k, v := range meta {
		switch k {
		case "_index", "_id", "version_type":
			s, ok := v.(string)
			if !ok {
				return badRequest("illegal_argument_exception", "Action/metadata line [%d]: [%s] must be a string", n, k)
			}
			switch k {
			case "_index":
				op.index = s
			case "_id":
				op.id = s
			default:
				op.versionType = s
			}
		case "version":
			num, ok := v.(json.Number)
			ver, err := num.Int64()
			if !ok || err != nil {
				return badRequest("illegal_argument_exception", "Action/metadata line [%d]: version must be an integer", n)
			}
			op.version = &ver
		case "routing", "if_seq_no", "if_primary_term", "require_alias", "pipeline", "dynamic_templates", "retry_on_conflict":
			return notImplemented("bulk metadata %s", k)
		default:
			return badRequest("illegal_argument_exception", "Action/metadata line [%d] contains an unknown parameter [%s]", n, k)
		}
	}
	if op.index == "" {
		return badRequest("action_request_validation_exception", "Validation Failed: 1: index is missing;")
	}
	return nil
}

package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// analyzerName is the analyzer of the free-text fields: the words of
// storage.Words (runs of letters and digits, lower-cased).
const analyzerName = "fraiseql_words"

// analysisSettings defines analyzerName: a pattern tokenizer splitting on
// everything but letters and digits, then lowercase.
func analysisSettings() map[string]any {
	return map[string]any{
		"analyzer":  map[string]any{analyzerName: map[string]any{"type": "custom", "tokenizer": analyzerName, "filter": []string{"lowercase"}}},
		"tokenizer": map[string]any{analyzerName: map[string]any{"type": "pattern", "pattern": `[^\p{L}\p{N}]+`}},
	}
}

func keyword() map[string]any { return map[string]any{"type": "keyword"} }
func words() map[string]any   { return map[string]any{"type": "text", "analyzer": analyzerName} }
func typed(t string) map[string]any {
	return map[string]any{"type": t}
}

// notIndexed is an object kept in _source and not parsed: any JSON value
// fits, and no field of it ever conflicts with another document's.
func notIndexed() map[string]any { return map[string]any{"type": "object", "enabled": false} }

// auditTemplateName and auditPolicyName name the audit trail's index
// template and ILM policy.
func (c *Client) auditTemplateName() string { return c.cfg.AuditIndexPrefix }
func (c *Client) auditPolicyName() string   { return c.cfg.AuditIndexPrefix + "_policy" }

// auditTemplate is the audit trail's index template: the guide's (daily
// indices <prefix>-*, one shard, no replica, the ILM policy, keyword
// fields, timestamp a date, error text, data stored but not indexed),
// with the numbers of storage.AuditRecord, the record id, and
// search_text, the words of storage.AuditText, analysed as the error is.
func (c *Client) auditTemplate() []byte {
	return mustJSON(map[string]any{
		"index_patterns": []string{c.cfg.AuditIndexPrefix + "-*"},
		"priority":       100,
		"_meta":          map[string]any{"managed_by": "fraiseql-observers"},
		"template": map[string]any{
			"settings": map[string]any{
				"number_of_shards":     1,
				"number_of_replicas":   0,
				"index.lifecycle.name": c.auditPolicyName(),
				"analysis":             analysisSettings(),
			},
			"mappings": map[string]any{"properties": map[string]any{
				"id":           keyword(),
				"event_id":     keyword(),
				"event_seq":    typed("long"),
				"entity_type":  keyword(),
				"entity_id":    keyword(),
				"event_kind":   keyword(),
				"timestamp":    typed("date"),
				"observer_id":  keyword(),
				"action_type":  keyword(),
				"action_index": typed("integer"),
				"status":       keyword(),
				"error":        words(),
				"attempt":      typed("integer"),
				"duration_ms":  typed("long"),
				"data":         notIndexed(),
				"search_text":  words(),
			}},
		},
	})
}

// auditPolicy is the audit trail's ILM policy: hot from the start,
// deleted 30 days after the index was created.
//
// The guide's policy also rolls over in the hot phase at
// "max_primary_store_size": "50gb". Elasticsearch has no such condition
// (max_primary_shard_size is the one it knows) and refuses the policy; and
// a rollover needs a rollover alias (or a data stream), which daily
// indices do not have: ILM would stop each index at the rollover step,
// in ERROR, and never reach the delete phase. A day's index is bounded by
// its day instead.
func (c *Client) auditPolicy() []byte {
	return mustJSON(map[string]any{"policy": map[string]any{
		"_meta": map[string]any{"managed_by": "fraiseql-observers"},
		"phases": map[string]any{
			"hot":    map[string]any{"min_age": "0d", "actions": map[string]any{}},
			"delete": map[string]any{"min_age": "30d", "actions": map[string]any{"delete": map[string]any{}}},
		},
	}})
}

// EnsureTemplates installs the audit trail's ILM policy and index template
// when they are absent. One that exists is left as it is, edited by an
// operator or not; running it again changes nothing.
func (c *Client) EnsureTemplates(ctx context.Context) error {
	policy := c.auditPolicyName()
	if err := c.ensure(ctx, "ILM policy "+policy,
		esapi.ILMGetLifecycleRequest{Policy: policy},
		esapi.ILMPutLifecycleRequest{Policy: policy, Body: bytes.NewReader(c.auditPolicy())}); err != nil {
		return err
	}
	name := c.auditTemplateName()
	create := true // another instance installing it at the same moment: 400, already there
	return c.ensure(ctx, "index template "+name,
		esapi.IndicesGetIndexTemplateRequest{Name: name},
		esapi.IndicesPutIndexTemplateRequest{Name: name, Create: &create, Body: bytes.NewReader(c.auditTemplate())})
}

// ensure runs put unless get finds the object.
func (c *Client) ensure(ctx context.Context, what string, get, put esapi.Request) error {
	res, err := c.do(ctx, "get "+what, get)
	if err != nil {
		return err
	}
	switch res.status {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
	default:
		return res.err("get " + what)
	}
	if res, err = c.do(ctx, "install "+what, put); err != nil {
		return err
	}
	if res.status == http.StatusOK {
		return nil
	}
	if e := parseError(res.status, res.body); res.status == http.StatusBadRequest && e.Type == "illegal_argument_exception" && bytes.Contains(res.body, []byte("already exists")) {
		return nil
	}
	return res.err("install " + what)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Package estest is a strict, in-memory Elasticsearch 8 server for tests:
// the protocol subset storage/elasticsearch uses, answered as
// Elasticsearch answers it, and a 400 for anything outside that subset, so
// a request the backend starts sending untested fails its tests instead of
// passing silently.
//
// It implements: the product check (X-Elastic-Product on every answer;
// GET / info), authentication (API key or basic, when configured),
// PUT/GET _index_template/<name>, PUT/GET _ilm/policy/<name>, PUT /<index>
// with settings and mappings, PUT/GET/DELETE /<index>/_doc/<id> with
// internal and external versions (409 on a conflict; a delete leaves a
// tombstone for index.gc_deletes, 60 s by default), POST /_bulk (NDJSON
// framing, index/create/delete, per-item results), and POST
// <targets>/_search with a query DSL subset (bool filter/must/must_not;
// term, terms, range, simple_query_string, match_all; sort, size,
// search_after, track_total_hits) over index names and wildcards.
//
// Mappings are enforced: keyword, text (with the analyzers defined in the
// settings: custom analyzers of a pattern tokenizer and the lowercase
// filter; "standard" approximated as runs of letters and digits,
// lower-cased), date, long, integer, float, double, boolean and object
// (enabled: false keeps a value unparsed), with dynamic mapping of new
// fields and mapper errors on a conflict. A write is searchable at once
// (real Elasticsearch shows it after its refresh interval, 1 s by
// default). Faults for tests: SetMode (refuse connections, answer 503),
// FailItems (bulk items by index and id, with a status), SetDelay.
package estest

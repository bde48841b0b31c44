// Package elasticsearch is the Elasticsearch backend of the search action
// (storage.Search) and of the audit trail (storage.Audit), on
// github.com/elastic/go-elasticsearch/v8. Nothing else in the module
// imports the Elasticsearch client.
//
// Entity documents live in one index per search index name (lower-cased),
// created on first use with an explicit mapping; the user's document is
// kept whole under "doc" (stored, not indexed), beside the fields the
// backend queries (entity_type, entity_id, search_text) and the version.
// Elasticsearch's external versions are the version guard; a deletion is a
// tombstone document of its version, so an older change delivered later
// never revives the entity (a real DELETE's tombstone would last only
// index.gc_deletes, 60 s by default).
//
// The audit trail goes into daily indices <prefix>-YYYY.MM.DD (the
// record's timestamp, UTC) through esutil.BulkIndexer; EnsureTemplates
// installs the index template and the ILM policy they take their mapping
// and retention from.
//
// Its tests run against estest, a strict in-memory server of the protocol
// subset used here: no Elasticsearch is installed where they run.
package elasticsearch

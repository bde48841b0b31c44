-- The search action's documents re-keyed by (index, entity type, entity id)
-- with the version of the change that wrote them, and the audit trail.
--
-- observer_search_documents: one row per document. doc is NULL for a
-- tombstone: a DELETE keeps its version there, so that an older change
-- delivered late (a retry) cannot bring the document back; Get and Query
-- never return tombstones, and retention (retention.audit) prunes old
-- ones. A write replaces a row only when its version (txid, pk) is higher
-- than the stored one. tsv holds the document's words (storage.Words of
-- storage.DocText) as lexemes computed in Go: free-text queries match those
-- words exactly, whatever the database's locale; NULL when there are none.
-- Text columns are COLLATE "C": pages are ordered by bytes, as the contract
-- (and Elasticsearch) orders them.
--
-- The rows of the previous layout ("index", id, doc) are copied with their
-- entity type from doc->>'entity_type' (what the search action wrote; ''
-- when absent) and version (0, 0), so that any new change replaces them.
-- Their words are approximated in SQL (runs of [[:alnum:]], lower-cased);
-- the next change of the entity writes them exactly.
--
-- observer_audit: one row per record of the audit trail (storage.AuditRecord),
-- written in batches by the audit recorder, newest first for queries
-- (ts desc, id desc) and deleted by retention after retention.audit
-- (default 30d). Indexes, each paid by every write (about two rows per
-- event):
--   * the primary key (event_seq, id): a record written twice is kept once
--     (the id holds the event_seq), and one event's records are found at
--     once (event_seq grows, so inserts append to the index's right edge);
--   * (ts, id): the order of every query, the --since bound and retention;
--   * (entity_id): one entity's history (an entity type alone is a filter
--     over the (ts, id) walk);
--   * (ts, id) WHERE status IN ('failed', 'dead'): the recent failures,
--     costing only the failures' writes;
--   * GIN (tsv) WHERE tsv IS NOT NULL: free text over the error and the
--     data's values; records without words (most deliveries) stay out of it.
-- entity_type, observer_id, action_type, status (other than failures) and event_id are
-- filters over the (ts, id) walk: a page of newest records finds its rows
-- early, and an index per column would slow every write.

-- +goose Up
CREATE TABLE observer_search_documents_v2 (
    "index" text COLLATE "C" NOT NULL,
    entity_type text COLLATE "C" NOT NULL,
    entity_id text COLLATE "C" NOT NULL,
    doc jsonb,
    version_txid bigint NOT NULL DEFAULT 0,
    version_seq bigint NOT NULL DEFAULT 0,
    tsv tsvector,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("index", entity_type, entity_id)
);

INSERT INTO observer_search_documents_v2 ("index", entity_type, entity_id, doc, tsv, updated_at)
SELECT o."index",
       CASE WHEN jsonb_typeof(o.doc) = 'object' THEN coalesce(o.doc->>'entity_type', '') ELSE '' END,
       o.id, o.doc,
       CASE WHEN w.size < 524288 THEN array_to_tsvector(w.words) END,
       o.updated_at
FROM observer_search_documents o
CROSS JOIN LATERAL (
    SELECT array_agg(DISTINCT word) AS words, sum(octet_length(word)) AS size
    FROM jsonb_path_query(o.doc, 'strict $.**') AS leaf(v),
         regexp_split_to_table(lower(CASE jsonb_typeof(leaf.v)
             WHEN 'string' THEN leaf.v #>> '{}'
             WHEN 'number' THEN leaf.v::text
             WHEN 'boolean' THEN leaf.v::text
         END), '[^[:alnum:]]+') AS word
    WHERE word <> '' AND octet_length(word) < 2048
) w;

DROP TABLE observer_search_documents;
ALTER TABLE observer_search_documents_v2 RENAME TO observer_search_documents;
ALTER INDEX observer_search_documents_v2_pkey RENAME TO observer_search_documents_pkey;
CREATE INDEX observer_search_documents_tsv ON observer_search_documents USING gin (tsv)
    WHERE tsv IS NOT NULL;
CREATE INDEX observer_search_documents_tombstones ON observer_search_documents (updated_at)
    WHERE doc IS NULL;

CREATE TABLE observer_audit (
    id text COLLATE "C" NOT NULL,
    event_id text NOT NULL,
    event_seq bigint NOT NULL,
    entity_type text COLLATE "C" NOT NULL,
    entity_id text COLLATE "C" NOT NULL,
    event_kind text NOT NULL,
    ts timestamptz NOT NULL,
    observer_id text NOT NULL DEFAULT '',
    action_type text NOT NULL DEFAULT '',
    action_index integer NOT NULL DEFAULT 0,
    status text NOT NULL,
    error text NOT NULL DEFAULT '',
    attempt integer NOT NULL DEFAULT 0,
    duration_ms bigint NOT NULL DEFAULT 0,
    data jsonb,
    tsv tsvector,
    PRIMARY KEY (event_seq, id)
);
CREATE INDEX observer_audit_ts ON observer_audit (ts, id);
CREATE INDEX observer_audit_entity ON observer_audit (entity_id);
CREATE INDEX observer_audit_failures ON observer_audit (ts, id) WHERE status IN ('failed', 'dead');
-- A small pending list, as for River's GIN indexes (00011): the batch whose
-- insert finds the list full merges it, inside its own statement.
CREATE INDEX observer_audit_tsv ON observer_audit USING gin (tsv)
    WITH (gin_pending_list_limit = 1024) WHERE tsv IS NOT NULL;

-- +goose Down
DROP TABLE IF EXISTS observer_audit;

-- An older version keys documents by ("index", id): keep the newest live
-- document of each; tombstones and versions are dropped.
CREATE TABLE observer_search_documents_v1 (
    "index" text NOT NULL,
    id text NOT NULL,
    doc jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("index", id)
);
INSERT INTO observer_search_documents_v1 ("index", id, doc, updated_at)
SELECT DISTINCT ON ("index", entity_id) "index", entity_id, doc, updated_at
FROM observer_search_documents
WHERE doc IS NOT NULL
ORDER BY "index", entity_id, updated_at DESC;
DROP TABLE observer_search_documents;
ALTER TABLE observer_search_documents_v1 RENAME TO observer_search_documents;
ALTER INDEX observer_search_documents_v1_pkey RENAME TO observer_search_documents_pkey;

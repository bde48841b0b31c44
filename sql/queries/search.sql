-- name: SearchIndex :exec
-- Stores doc as the document of ("index", entity_type, entity_id) at
-- version (version_txid, version_seq), unless the stored document or
-- tombstone has a version at or above it. A NULL doc writes a tombstone (a
-- DELETE). tsv is the text form of the document's words (NULL: none). An
-- invalid JSON document fails with SQL state 22P02.
INSERT INTO observer_search_documents ("index", entity_type, entity_id, doc, version_txid, version_seq, tsv, updated_at)
VALUES (@index, @entity_type, @entity_id, sqlc.narg(doc)::jsonb, @version_txid, @version_seq,
        sqlc.narg(tsv)::text::tsvector, now())
ON CONFLICT ("index", entity_type, entity_id) DO UPDATE
SET doc = EXCLUDED.doc, version_txid = EXCLUDED.version_txid, version_seq = EXCLUDED.version_seq,
    tsv = EXCLUDED.tsv, updated_at = EXCLUDED.updated_at
WHERE (observer_search_documents.version_txid, observer_search_documents.version_seq)
    < (EXCLUDED.version_txid, EXCLUDED.version_seq);

-- name: SearchGet :one
SELECT doc FROM observer_search_documents
WHERE "index" = @index AND entity_type = @entity_type AND entity_id = @entity_id AND doc IS NOT NULL;

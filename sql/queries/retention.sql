-- name: RetentionDeleteSkippedEvents :execrows
-- At most @max_rows skipped events recorded before @before.
DELETE FROM observer_skipped_events
WHERE id IN (
    SELECT s.id FROM observer_skipped_events s
    WHERE s.created_at < @before
    ORDER BY s.id
    LIMIT @max_rows
);

-- name: RetentionCountSkippedEvents :one
SELECT count(*) FROM observer_skipped_events WHERE created_at < @before;

-- name: RetentionDeleteAudit :execrows
-- At most @max_rows audit records older than @before, the oldest first (on
-- the (ts, id) index).
DELETE FROM observer_audit
WHERE (event_seq, id) IN (
    SELECT a.event_seq, a.id FROM observer_audit a
    WHERE a.ts < @before
    ORDER BY a.ts
    LIMIT @max_rows
);

-- name: RetentionCountAudit :one
SELECT count(*) FROM observer_audit WHERE ts < @before;

-- name: RetentionDeleteSearchTombstones :execrows
-- At most @max_rows tombstones (documents deleted, kept with the version of
-- their DELETE) last written before @before, on their partial index. A
-- document written again meanwhile is no longer a tombstone and stays: the
-- conditions are checked again on the locked row.
DELETE FROM observer_search_documents d
USING (
    SELECT o."index", o.entity_type, o.entity_id FROM observer_search_documents o
    WHERE o.doc IS NULL AND o.updated_at < @before
    ORDER BY o.updated_at
    LIMIT @max_rows
) old
WHERE d."index" = old."index" AND d.entity_type = old.entity_type AND d.entity_id = old.entity_id
  AND d.doc IS NULL AND d.updated_at < @before;

-- name: RetentionCountSearchTombstones :one
SELECT count(*) FROM observer_search_documents WHERE doc IS NULL AND updated_at < @before;

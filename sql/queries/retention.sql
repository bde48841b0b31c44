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

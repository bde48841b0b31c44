-- name: SkippedEventInsertMany :execrows
INSERT INTO observer_skipped_events (listener_id, change_pk, reason)
SELECT @listener_id::text, unnest(@change_pks::bigint[]), unnest(@reasons::text[]);

-- name: AuditOutboxInsert :execrows
-- Keeps records the audit backend did not take: they are first tried again
-- after delay_seconds.
INSERT INTO observer_audit_outbox (record, attempts, next_at, last_error)
SELECT unnest(@records::jsonb[]), 1, now() + interval '1 second' * @delay_seconds::float8, @last_error::text;

-- name: AuditOutboxClaim :many
-- Locks the next rows due, skipping those another drainer holds.
SELECT id, record, attempts FROM observer_audit_outbox
WHERE next_at <= now()
ORDER BY next_at, id
LIMIT @max_rows
FOR UPDATE SKIP LOCKED;

-- name: AuditOutboxDelete :execrows
DELETE FROM observer_audit_outbox WHERE id = ANY(@ids::bigint[]);

-- name: AuditOutboxRetry :execrows
-- Counts a failed write of each row and puts it back: the next try waits
-- base_seconds doubled per attempt made, at most max_seconds.
UPDATE observer_audit_outbox o
SET attempts = o.attempts + 1,
    next_at = now() + interval '1 second' * least(sqlc.arg(max_seconds)::float8, sqlc.arg(base_seconds)::float8 * 2 ^ least(o.attempts, 30)),
    last_error = f.error
FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@errors::text[]) AS error) AS f
WHERE o.id = f.id;

-- name: AuditOutboxCount :one
SELECT count(*) FROM observer_audit_outbox;

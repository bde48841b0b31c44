-- name: ListenerHeartbeat :exec
INSERT INTO observer_listeners
    (id, listener_id, host, pid, http_addr, role, version, started_at, leader_since, heartbeat_at,
     batch_failures, batch_error, progress_at)
VALUES
    (@id, @listener_id, @host, @pid, @http_addr, @role, @version, @started_at, @leader_since, now(),
     @batch_failures, @batch_error, @progress_at)
ON CONFLICT (id) DO UPDATE SET
    listener_id = EXCLUDED.listener_id,
    host = EXCLUDED.host,
    pid = EXCLUDED.pid,
    http_addr = EXCLUDED.http_addr,
    role = EXCLUDED.role,
    version = EXCLUDED.version,
    started_at = EXCLUDED.started_at,
    leader_since = EXCLUDED.leader_since,
    heartbeat_at = now(),
    batch_failures = EXCLUDED.batch_failures,
    batch_error = EXCLUDED.batch_error,
    progress_at = EXCLUDED.progress_at;

-- name: ListenerDelete :exec
DELETE FROM observer_listeners WHERE id = @id;

-- name: ListenerList :many
SELECT * FROM observer_listeners
WHERE listener_id = @listener_id
ORDER BY role = 'leader' DESC, id;

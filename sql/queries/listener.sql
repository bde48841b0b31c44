-- name: ListenerHeartbeat :exec
INSERT INTO observer_listeners
    (id, listener_id, host, pid, http_addr, role, version, started_at, leader_since, heartbeat_at,
     batch_failures, batch_error, progress_at, queues)
VALUES
    (@id, @listener_id, @host, @pid, @http_addr, @role, @version, @started_at, @leader_since, now(),
     @batch_failures, @batch_error, @progress_at, @queues)
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
    progress_at = EXCLUDED.progress_at,
    queues = EXCLUDED.queues;

-- name: ListenerDelete :exec
DELETE FROM observer_listeners WHERE id = @id;

-- name: ListenerList :many
SELECT * FROM observer_listeners
WHERE listener_id = @listener_id
ORDER BY role = 'leader' DESC, id;

-- name: ListenerEndpoints :many
-- Instances of every listener group that serve an admin HTTP address, with
-- their heartbeat age by the database's clock, for `metrics`. Rows whose
-- heartbeat is older than @omit_after_seconds (left by killed processes)
-- are not returned.
SELECT id,
       listener_id,
       host,
       http_addr,
       EXTRACT(epoch FROM now() - heartbeat_at)::float8 AS heartbeat_age_seconds
FROM observer_listeners
WHERE http_addr IS NOT NULL AND http_addr <> ''
  AND heartbeat_at > now() - make_interval(secs => @omit_after_seconds::float8)
ORDER BY listener_id, id;

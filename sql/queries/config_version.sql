-- name: ConfigVersionUpsert :one
-- Stores a configuration once, as loaded by a `run` process now; the same
-- hash returns the existing id.
INSERT INTO observer_config_versions (hash, source, loaded_at)
VALUES (@hash, @source, now())
ON CONFLICT (hash) DO UPDATE SET loaded_at = now()
RETURNING id;

-- name: ConfigVersionStore :one
-- Stores a configuration once without marking it loaded (replay --config).
INSERT INTO observer_config_versions (hash, source)
VALUES (@hash, @source)
ON CONFLICT (hash) DO UPDATE SET hash = EXCLUDED.hash
RETURNING id;

-- name: ConfigVersionLatest :one
-- The version a `run` process loaded last: what the running daemon uses.
SELECT id FROM observer_config_versions
WHERE loaded_at IS NOT NULL
ORDER BY loaded_at DESC, id DESC
LIMIT 1;

-- name: ConfigVersionGet :one
SELECT hash, source FROM observer_config_versions WHERE id = @id;

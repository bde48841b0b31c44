-- Deduplication and cache tables of the Postgres storage backend (the
-- default), and the commit records the Redis dedup backend relies on.

-- +goose Up

-- observer_dedup_keys: content keys of events whose jobs were enqueued, each
-- claimed by the enqueue transaction itself, so a key exists exactly when
-- that transaction committed. A key past expires_at is free to claim again;
-- expired rows are deleted by the listener's cleanup.
CREATE TABLE IF NOT EXISTS observer_dedup_keys (
    key text PRIMARY KEY, -- "<listener id>/<sha256 hex of the content>"
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS observer_dedup_keys_expires_at_idx ON observer_dedup_keys (expires_at);

-- observer_dedup_tokens: the Redis dedup backend writes each enqueue
-- transaction's token next to its keys in Redis and inserts the token here,
-- in that transaction (committed = true). A key in Redis counts as seen only
-- if its token's row is committed here. A reader that finds a token with no
-- row inserts it with committed = false (a tombstone): that waits for the
-- writer's transaction if it is still open, and makes a writer that comes
-- later fail on the primary key rather than commit a claim already judged
-- void.
CREATE TABLE IF NOT EXISTS observer_dedup_tokens (
    token text PRIMARY KEY,
    committed boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS observer_dedup_tokens_created_at_idx ON observer_dedup_tokens (created_at);

-- observer_cache: the Postgres cache backend. A row past expires_at is
-- absent; expired rows are deleted by the cleanup.
CREATE TABLE IF NOT EXISTS observer_cache (
    key text PRIMARY KEY,
    value bytea NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS observer_cache_expires_at_idx ON observer_cache (expires_at);

-- +goose Down
DROP TABLE IF EXISTS observer_cache;
DROP TABLE IF EXISTS observer_dedup_tokens;
DROP TABLE IF EXISTS observer_dedup_keys;

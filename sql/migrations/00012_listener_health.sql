-- Listener health in observer_listeners, written with each heartbeat so that
-- `status` (and whoever reads the table) sees a leader that keeps failing
-- the same batch: how many batches in a row failed, the last error, and when
-- the leader last consumed rows.

-- +goose Up
ALTER TABLE observer_listeners
    ADD COLUMN IF NOT EXISTS batch_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS batch_error text,
    ADD COLUMN IF NOT EXISTS progress_at timestamptz;

-- +goose Down
ALTER TABLE observer_listeners
    DROP COLUMN IF EXISTS batch_failures,
    DROP COLUMN IF EXISTS batch_error,
    DROP COLUMN IF EXISTS progress_at;

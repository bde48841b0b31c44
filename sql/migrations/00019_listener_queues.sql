-- The River queues each instance works and their workers, written with each
-- heartbeat: River keeps a queue's MaxWorkers only in the process (its own
-- tables record none since River's migration 007), so `status` sums this
-- column over the healthy instances for its Workers line (running / limit).
-- {"fraiseql_observers_webhook": 100, "fraiseql_observers": 10}; NULL for
-- an instance of an older version.

-- +goose Up
ALTER TABLE observer_listeners
    ADD COLUMN IF NOT EXISTS queues jsonb;

-- +goose Down
ALTER TABLE observer_listeners
    DROP COLUMN IF EXISTS queues;

-- observer_checkpoints.change_log: the change-log table a listener group
-- reads, schema-qualified ("core"."tb_entity_change_log"), written by the
-- listener each time it campaigns. Retention deletes a change-log row only
-- once every group reading that table has passed it; a row without it
-- (written before this migration, or by FraiseQL itself) counts for every
-- table, so it can only hold retention back, never let it delete early.

-- +goose Up
ALTER TABLE observer_checkpoints ADD COLUMN IF NOT EXISTS change_log text;

-- +goose Down
ALTER TABLE observer_checkpoints DROP COLUMN IF EXISTS change_log;

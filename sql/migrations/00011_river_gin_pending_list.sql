-- River's GIN indexes on river_job.args and .metadata use fastupdate with
-- Postgres' default 4 MB pending list: inserts append to the list, and the
-- insert that finds it full merges all of it into the index, inside its own
-- statement. For us that insert is the listener's enqueue COPY, which then
-- stalls for tens of milliseconds while every change behind it waits
-- (BENCHMARKS.md, "Latency"). A 256 kB list is merged sixteen times as
-- often, each merge a sixteenth as long. (fastupdate = off removes the
-- stalls too, but makes every insert pay the index: one River job per
-- delivery then runs about 25% slower.)

-- +goose Up
ALTER INDEX IF EXISTS river_job_args_index SET (gin_pending_list_limit = 256);
ALTER INDEX IF EXISTS river_job_metadata_index SET (gin_pending_list_limit = 256);

-- +goose Down
ALTER INDEX IF EXISTS river_job_args_index RESET (gin_pending_list_limit);
ALTER INDEX IF EXISTS river_job_metadata_index RESET (gin_pending_list_limit);

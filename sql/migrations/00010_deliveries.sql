-- observer_deliveries: one row per delivery (an action of an observer for
-- one change), whichever River job holds it. With
-- concurrency.deliveries_per_job above 1 a delivery's first attempt runs in
-- a batch job (kind fraiseql_observer_batch); one that did not succeed there
-- continues as its own job (kind fraiseql_observer_action, args.batch = the
-- batch job), whose state is then the delivery's.
--
--   SELECT state, count(*) FROM observer_deliveries GROUP BY 1;
--   SELECT * FROM observer_deliveries WHERE seq = 42;

-- +goose Up
CREATE OR REPLACE VIEW observer_deliveries AS
SELECT j.id AS job_id,
       (j.args->>'batch')::bigint AS batch_job_id,
       (j.args->>'seq')::bigint AS seq,
       j.args->>'observer' AS observer,
       (j.args->>'action')::int AS action,
       j.args->>'action_type' AS action_type,
       (j.args->>'config_version')::bigint AS config_version,
       j.state::text AS state,
       j.attempt,
       j.max_attempts,
       j.errors,
       j.created_at,
       j.attempted_at,
       j.scheduled_at,
       j.finalized_at,
       j.metadata
FROM river_job j
WHERE j.kind = 'fraiseql_observer_action'
UNION ALL
SELECT b.id,
       NULL,
       s.seq::bigint,
       d->>'observer',
       (d->>'action')::int,
       b.args->>'action_type',
       (b.args->>'config_version')::bigint,
       b.state::text,
       b.attempt,
       b.max_attempts,
       b.errors,
       b.created_at,
       b.attempted_at,
       b.scheduled_at,
       b.finalized_at,
       b.metadata
FROM river_job b
CROSS JOIN LATERAL jsonb_array_elements(b.args->'deliveries') AS d
CROSS JOIN LATERAL jsonb_array_elements_text(d->'seqs') AS s(seq)
WHERE b.kind = 'fraiseql_observer_batch'
  AND NOT EXISTS (
      SELECT 1 FROM river_job f
      WHERE f.kind = 'fraiseql_observer_action'
        AND f.args @> jsonb_build_object('batch', b.id, 'seq', s.seq::bigint,
                                         'observer', d->>'observer', 'action', (d->>'action')::int));

-- +goose Down
DROP VIEW IF EXISTS observer_deliveries;

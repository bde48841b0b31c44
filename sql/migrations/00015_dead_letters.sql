-- The dead-letter queue (`fraiseql-observers dlq`). A delivery is dead when
-- the River job that holds it was discarded (attempts exhausted) or
-- cancelled (a permanent failure): an action job (kind
-- fraiseql_observer_action) is one delivery; a dead batch job (kind
-- fraiseql_observer_batch) holds each of its deliveries that did not
-- continue as an action job.
--
-- A batch job's deliveries are numbered 0, 1, ... in the order of its
-- args (deliveries × seqs): observer_batch_deliveries(args) lists them, and
-- the DLQ calls delivery n of batch job B "B.n". `dlq retry` and `dlq remove`
-- of one delivery of a dead batch job leave the job and its other
-- deliveries alone and mark the delivery in the job's metadata:
--
--   metadata->'dlq_deliveries'->'<n>' = {"retried_at": ..., "job": <id>}
--                                     | {"removed_at": ...}
--
-- A marked delivery is no longer dead, and the view below no longer shows
-- it under the batch job (a retried one continues as its own action job).

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION observer_batch_deliveries(batch_args jsonb)
RETURNS TABLE (n int, observer text, action int, seq bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (row_number() OVER (ORDER BY d.i, s.j) - 1)::int,
           d.v->>'observer',
           (d.v->>'action')::int,
           s.seq::bigint
    FROM jsonb_array_elements(batch_args->'deliveries') WITH ORDINALITY AS d(v, i)
    CROSS JOIN LATERAL jsonb_array_elements_text(d.v->'seqs') WITH ORDINALITY AS s(seq, j)
$$;
-- +goose StatementEnd

-- observer_deliveries (00010) gains delivery_id, the DLQ's id of the
-- delivery, and leaves out a batch job's deliveries that the DLQ retried or
-- removed.
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
       j.metadata,
       j.id::text AS delivery_id
FROM river_job j
WHERE j.kind = 'fraiseql_observer_action'
UNION ALL
SELECT b.id,
       NULL,
       x.seq,
       x.observer,
       x.action,
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
       b.metadata,
       b.id::text || '.' || x.n::text
FROM river_job b
CROSS JOIN LATERAL observer_batch_deliveries(b.args) AS x
WHERE b.kind = 'fraiseql_observer_batch'
  AND b.metadata->'dlq_deliveries'->(x.n::text) IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM river_job f
      WHERE f.kind = 'fraiseql_observer_action'
        AND f.args @> jsonb_build_object('batch', b.id, 'seq', x.seq,
                                         'observer', x.observer, 'action', x.action));

-- +goose Down
DROP VIEW IF EXISTS observer_deliveries;
CREATE VIEW observer_deliveries AS
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
DROP FUNCTION IF EXISTS observer_batch_deliveries(jsonb);

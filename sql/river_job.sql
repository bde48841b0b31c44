-- River's job table, as far as sqlc needs it to read migration 00010's
-- observer_deliveries view (sqlc.yaml lists this file before the
-- migrations). It is never applied to a database: River's own migrations
-- (rivermigrate, run by `fraiseql-observers migrate`) create the real table.
CREATE TYPE river_job_state AS ENUM (
  'available', 'cancelled', 'completed', 'discarded', 'pending', 'retryable', 'running', 'scheduled'
);

CREATE TABLE river_job (
  id bigserial PRIMARY KEY,
  state river_job_state NOT NULL,
  attempt smallint NOT NULL,
  max_attempts smallint NOT NULL,
  attempted_at timestamptz,
  created_at timestamptz NOT NULL,
  finalized_at timestamptz,
  scheduled_at timestamptz NOT NULL,
  args jsonb NOT NULL,
  errors jsonb[],
  kind text NOT NULL,
  metadata jsonb NOT NULL
);

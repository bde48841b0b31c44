-- Rate limits of webhook and Slack endpoints (rate_limit: 50/s), shared by
-- every instance: one row per limited endpoint (observers.EndpointName,
-- the same names as the circuit breakers), updated atomically by
-- observers.rate_limit_take.

-- +goose Up

-- observer_rate_limits: a token bucket per endpoint, kept as the generic
-- cell rate algorithm's theoretical arrival time (tat): a request at time t
-- fits when tat - (burst - 1) * interval <= t, and moves tat one interval
-- on. A tat in the past is a full bucket, so a row whose tat and queue_until
-- have passed says nothing and may be deleted. queue_until is the wait line
-- of refused requests: each is told to come back one interval after the
-- one before, so a backlog returns spread out rather than all at once.
CREATE TABLE IF NOT EXISTS observer_rate_limits (
    name text PRIMARY KEY, -- e.g. https://example.com:443/hooks/orders
    tat timestamptz NOT NULL,
    queue_until timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- observers.rate_limit_take takes one token of p_name's bucket, which holds
-- p_burst tokens and gains one every p_interval. It returns 0 when the
-- token was taken; otherwise nothing is taken and it returns how long the
-- request should wait: its place in the wait line. Concurrent calls on one
-- name serialize on the row's lock; calls on different names do not meet.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION observers.rate_limit_take(p_name text, p_interval interval, p_burst integer)
RETURNS interval
LANGUAGE plpgsql AS $$
DECLARE
    r observer_rate_limits%ROWTYPE;
    t timestamptz;
    fill timestamptz;
    slot timestamptz;
BEGIN
    SELECT * INTO r FROM observer_rate_limits WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO observer_rate_limits (name, tat, queue_until)
        VALUES (p_name, clock_timestamp(), clock_timestamp())
        ON CONFLICT (name) DO NOTHING;
        SELECT * INTO r FROM observer_rate_limits WHERE name = p_name FOR UPDATE;
    END IF;
    t := clock_timestamp();
    fill := GREATEST(r.tat, t);
    slot := fill - p_interval * (p_burst - 1);
    IF slot <= t THEN
        UPDATE observer_rate_limits SET tat = fill + p_interval, updated_at = t WHERE name = p_name;
        RETURN interval '0';
    END IF;
    slot := GREATEST(slot, r.queue_until);
    UPDATE observer_rate_limits SET queue_until = slot + p_interval, updated_at = t WHERE name = p_name;
    RETURN slot - t;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION IF EXISTS observers.rate_limit_take(text, interval, integer);
DROP TABLE IF EXISTS observer_rate_limits;

-- Circuit breakers shared by every instance: one row per target endpoint
-- (scheme://host:port of a webhook URL).

-- +goose Up

-- observer_circuit_breakers: the breaker state. data is the state machine's
-- own serialized state (gobreaker's SharedState, JSON) and is the source of
-- truth; state, expiry and counts are copied out of it on every write, for
-- `status` and for people. A row whose state is 'open' and whose expiry has
-- passed is half-open in effect: the next request moves it there.
CREATE TABLE IF NOT EXISTS observer_circuit_breakers (
    name text PRIMARY KEY, -- endpoint, e.g. https://example.com:443
    state text NOT NULL CHECK (state IN ('closed', 'open', 'half-open')),
    expiry timestamptz, -- open: when it may half-open; closed: end of the counting window; NULL: none
    counts jsonb,
    data jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- observer_circuit_breaker_locks: short leases that serialize the updates of
-- one breaker across instances. A lease is held for a few milliseconds; one
-- left behind by a dead instance expires by itself.
CREATE TABLE IF NOT EXISTS observer_circuit_breaker_locks (
    name text PRIMARY KEY,
    owner text NOT NULL,
    expires_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE IF EXISTS observer_circuit_breaker_locks;
DROP TABLE IF EXISTS observer_circuit_breakers;

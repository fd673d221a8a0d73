-- rotate: the HMAC key rotation overlap (the previous key and until when
-- it is still accepted), failed-authentication counters shared by all
-- instances, and the live-instance table (heartbeats, with the id of the
-- master key each instance seals with).
ALTER TABLE client_keys ADD COLUMN hmac_previous_sealed bytea;
ALTER TABLE client_keys ADD COLUMN hmac_previous_until timestamptz;

CREATE TABLE auth_failures (
    key text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    failures integer NOT NULL
);

CREATE TABLE instances (
    id text PRIMARY KEY,
    seen_at timestamptz NOT NULL,
    master_key_id text NOT NULL
);

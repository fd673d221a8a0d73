-- The transactional outbox (docs/events.md#the-outbox): one row per change event, written in
-- the change's transaction. The diff, principal, source and time are the
-- change's audit entry (audit_seq), not copied. cursor is per tenant and
-- assigned under the tenant's audit head lock, so it follows commit order.
CREATE TABLE events (
    tenant_id text COLLATE "C" NOT NULL,
    cursor bigint NOT NULL,
    id text NOT NULL,
    kind text NOT NULL,
    external_id text NOT NULL,
    version bigint NOT NULL,
    audit_seq bigint NOT NULL,
    PRIMARY KEY (tenant_id, cursor)
);

-- Webhook subscriptions (docs/events.md#webhook-subscriptions). Secrets are sealed under the master key;
-- cursor/attempt/next_attempt_at/redeliver_* are the delivery progress.
CREATE TABLE subscriptions (
    id text PRIMARY KEY,
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants(id),
    url text NOT NULL,
    events jsonb NOT NULL,
    attributes jsonb NOT NULL,
    secret_sealed bytea NOT NULL,
    previous_secret_sealed bytea,
    previous_until timestamptz,
    state text NOT NULL,
    disabled_reason text,
    cursor bigint NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    redeliver_from bigint,
    redeliver_to bigint,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id);

-- Every delivery attempt, per subscription.
CREATE TABLE deliveries (
    seq bigserial PRIMARY KEY,
    subscription_id text NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    event_id text NOT NULL,
    cursor bigint NOT NULL,
    attempt integer NOT NULL,
    at timestamptz NOT NULL,
    status integer,
    outcome text NOT NULL,
    error text,
    manual boolean NOT NULL
);
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, seq);

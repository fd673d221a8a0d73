-- Muster's SQLite schema, version 1. Times are microseconds since the Unix
-- epoch (UTC), except audit.at, which keeps the exact text that was hashed.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Admin users and integration clients.
CREATE TABLE principals (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL CHECK (kind IN ('admin', 'client')),
    client_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_policy TEXT NOT NULL,
    token_ttl_seconds INTEGER NOT NULL,
    write_policy TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX principals_tenant ON principals(tenant_id);

-- Client secrets as SHA-256 digests; several during a rotation overlap.
CREATE TABLE client_secrets (
    principal_id TEXT NOT NULL REFERENCES principals(id),
    digest BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (principal_id, digest)
) WITHOUT ROWID;

-- Access tokens and admin API tokens, as SHA-256 digests.
CREATE TABLE tokens (
    digest BLOB PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals(id),
    scope TEXT NOT NULL,
    one_time INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    consumed_at INTEGER,
    revoked_at INTEGER
) WITHOUT ROWID;
CREATE INDEX tokens_principal ON tokens(principal_id);

CREATE TABLE mappings (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
) WITHOUT ROWID;

-- A person is two rows: a narrow key row (WITHOUT ROWID, clustered on the
-- key, so "does it exist, is it unchanged?" reads one small b-tree), and
-- its attributes in person_data (large rows belong in a rowid table).
-- fingerprint: digest of the incoming record whose application produced
-- the current state (see muster_core::person::Incoming::fingerprint).
CREATE TABLE people (
    tenant_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    fingerprint BLOB,
    data_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    on_behalf_of TEXT,
    source TEXT NOT NULL,
    PRIMARY KEY (tenant_id, external_id)
) WITHOUT ROWID;

CREATE TABLE person_data (
    id INTEGER PRIMARY KEY,
    attrs TEXT NOT NULL,
    roles TEXT NOT NULL
);

-- Tenant keys: decryption keys (secret sealed under the master key) and
-- HR systems' signing keys. key_ids is a JSON array of the ids messages
-- name recipients or signers by.
CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    purpose TEXT NOT NULL,
    key_ids TEXT NOT NULL,
    public_key TEXT NOT NULL,
    sealed_secret BLOB,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX keys_tenant ON keys(tenant_id);

-- What a client's uploads must be (muster_core::policy::IntakePolicy, JSON).
CREATE TABLE intake_policies (
    principal_id TEXT PRIMARY KEY REFERENCES principals(id),
    policy TEXT NOT NULL
);

CREATE TABLE imports (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    principal_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    on_behalf_of TEXT,
    idempotency_key TEXT,
    mapping TEXT NOT NULL,
    mapping_version INTEGER NOT NULL,
    mode TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    format TEXT NOT NULL,
    options TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    state TEXT NOT NULL,
    rows_total INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    deactivated INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    checkpoint_row INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE UNIQUE INDEX imports_idempotency ON imports(principal_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX imports_tenant ON imports(tenant_id);
CREATE INDEX imports_state ON imports(state);

CREATE TABLE import_errors (
    id INTEGER PRIMARY KEY,
    import_id TEXT NOT NULL,
    row INTEGER NOT NULL,
    col TEXT,
    attribute TEXT,
    code TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX import_errors_import ON import_errors(import_id, id);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    principal TEXT NOT NULL,
    on_behalf_of TEXT,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    person TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (tenant_id, seq)
);

-- A client's request-signing and client-assertion keys (docs/authentication.md#managing-keys-admin-api):
-- the HMAC key only sealed under the master key, the Ed25519 public key
-- (32 raw bytes), and the private_key_jwt key(s) as JSON text.
CREATE TABLE client_keys (
    principal_id TEXT PRIMARY KEY REFERENCES principals(id),
    hmac_sealed BLOB,
    ed25519_public BLOB,
    jwt_keys TEXT,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Request-signature nonces and client-assertion jti values already seen,
-- each kept until the signature or assertion could no longer be accepted
-- anyway. The primary key makes "first use wins" atomic.
CREATE TABLE auth_nonces (
    principal_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (principal_id, nonce)
) WITHOUT ROWID;
CREATE INDEX auth_nonces_expiry ON auth_nonces(expires_at);

-- Login-sync issuers (docs/authentication.md#login-sync): an identity provider whose JWTs create
-- and update people. `settings` is JSON (algorithms, JWKS or its URL,
-- mapping, write policy); an HS256 secret is only kept sealed under the
-- master key. A token selects its issuer by `iss` and `aud`, so that pair
-- is unique across tenants.
CREATE TABLE issuers (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    issuer TEXT NOT NULL,
    audience TEXT NOT NULL,
    settings TEXT NOT NULL,
    hs256_sealed BLOB,
    created_at INTEGER NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (issuer, audience)
);
-- The transactional outbox (docs/events.md#the-outbox): one row per change event, written in
-- the change's transaction. The diff, principal, source and time are the
-- change's audit entry (audit_seq), not copied. cursor is per tenant.
CREATE TABLE events (
    tenant_id TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    id BLOB NOT NULL, -- UUIDv7, 16 bytes
    kind TEXT NOT NULL,
    external_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    audit_seq INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, cursor)
) WITHOUT ROWID;

-- Webhook subscriptions (docs/events.md#webhook-subscriptions). Secrets are sealed under the master key;
-- cursor/attempt/next_attempt_at/redeliver_* are the delivery progress.
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    attributes TEXT NOT NULL,
    secret_sealed BLOB NOT NULL,
    previous_secret_sealed BLOB,
    previous_until INTEGER,
    state TEXT NOT NULL,
    disabled_reason TEXT,
    cursor INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    redeliver_from INTEGER,
    redeliver_to INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX subscriptions_tenant ON subscriptions(tenant_id);

-- Every delivery attempt, per subscription.
CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER,
    outcome TEXT NOT NULL,
    error TEXT,
    manual INTEGER NOT NULL
);
CREATE INDEX deliveries_subscription ON deliveries(subscription_id, seq);

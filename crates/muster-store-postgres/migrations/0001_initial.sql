-- Muster's PostgreSQL schema, version 1.
-- Identifiers that are compared, sorted or paged through (tenant ids, client
-- ids, external ids) use the "C" collation: byte order, as in SQLite, so
-- both backends page and sort alike whatever the database's locale.

CREATE TABLE tenants (
    id text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL
);

-- Admin users and integration clients.
CREATE TABLE principals (
    id text PRIMARY KEY,
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants(id),
    kind text NOT NULL CHECK (kind IN ('admin', 'client')),
    client_id text COLLATE "C" NOT NULL UNIQUE,
    name text NOT NULL,
    role text NOT NULL,
    token_policy text NOT NULL,
    token_ttl_seconds bigint NOT NULL,
    write_policy jsonb NOT NULL,
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL
);
CREATE INDEX principals_tenant ON principals (tenant_id, client_id);

-- Client secrets as SHA-256 digests; several during a rotation overlap.
CREATE TABLE client_secrets (
    principal_id text NOT NULL REFERENCES principals(id),
    digest bytea NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (principal_id, digest)
);

-- Access tokens and admin API tokens, as SHA-256 digests.
CREATE TABLE tokens (
    digest bytea PRIMARY KEY,
    principal_id text NOT NULL REFERENCES principals(id),
    scope text NOT NULL,
    one_time boolean NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    consumed_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX tokens_principal ON tokens (principal_id);

CREATE TABLE mappings (
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants(id),
    name text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    document jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

-- One row per person. fingerprint: digest of the incoming record whose
-- application produced the current state (see
-- muster_core::person::Incoming::fingerprint), so "unchanged?" needs no
-- decoding.
CREATE TABLE people (
    tenant_id text COLLATE "C" NOT NULL,
    external_id text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    fingerprint bytea,
    attrs jsonb NOT NULL,
    roles jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    on_behalf_of text,
    source text NOT NULL,
    PRIMARY KEY (tenant_id, external_id)
);

-- pos: creation order (the SQLite backend's rowid), for paging and the
-- worker's queue. lease_owner / lease_until: which instance works on an
-- import and until when (see PostgresStore::import_claim).
CREATE TABLE imports (
    pos bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id text COLLATE "C" PRIMARY KEY,
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants(id),
    principal_id text NOT NULL,
    client_id text NOT NULL,
    on_behalf_of text,
    idempotency_key text,
    mapping text NOT NULL,
    mapping_version bigint NOT NULL,
    mode text NOT NULL,
    dry_run boolean NOT NULL,
    format text NOT NULL,
    options jsonb NOT NULL,
    bytes bigint NOT NULL,
    state text NOT NULL,
    rows_total bigint NOT NULL DEFAULT 0,
    created bigint NOT NULL DEFAULT 0,
    updated bigint NOT NULL DEFAULT 0,
    unchanged bigint NOT NULL DEFAULT 0,
    deactivated bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    checkpoint_row bigint NOT NULL DEFAULT 0,
    error_code text,
    error_message text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    finished_at timestamptz,
    lease_owner text,
    lease_until timestamptz
);
CREATE UNIQUE INDEX imports_idempotency ON imports (principal_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX imports_tenant ON imports (tenant_id, pos);
CREATE INDEX imports_pending ON imports (pos)
    WHERE state IN ('received', 'decrypting', 'parsing', 'applying');

CREATE TABLE import_errors (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    import_id text COLLATE "C" NOT NULL,
    row_no bigint NOT NULL,
    col text,
    attribute text,
    code text NOT NULL,
    message text NOT NULL
);
CREATE INDEX import_errors_import ON import_errors (import_id, id);

-- The audit chain. at and detail keep the exact text that was hashed.
CREATE TABLE audit (
    tenant_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    at text NOT NULL,
    principal text NOT NULL,
    on_behalf_of text,
    source text NOT NULL,
    action text NOT NULL,
    person text,
    detail text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

-- Each tenant's chain head. Appending locks this row (one row per tenant),
-- which serialises appends per tenant across every instance sharing the
-- database, and gives the next seq and prev_hash without reading audit.
CREATE TABLE audit_heads (
    tenant_id text COLLATE "C" PRIMARY KEY,
    seq bigint NOT NULL,
    hash text NOT NULL
);

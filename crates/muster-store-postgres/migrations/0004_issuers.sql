-- Login-sync issuers (docs/authentication.md#login-sync): an identity provider whose JWTs create
-- and update people. `settings` holds algorithms, the JWKS or its URL, the
-- mapping and the write policy; an HS256 secret is only kept sealed under
-- the master key. A token selects its issuer by `iss` and `aud`, so that
-- pair is unique across tenants.
CREATE TABLE issuers (
    id text PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES tenants(id),
    name text NOT NULL,
    issuer text NOT NULL,
    audience text NOT NULL,
    settings jsonb NOT NULL,
    hs256_sealed bytea,
    created_at timestamptz NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (issuer, audience)
);

-- Client request-signing and assertion keys (docs/authentication.md#managing-keys-admin-api); the HMAC key
-- only sealed under the master key.
CREATE TABLE client_keys (
    principal_id text PRIMARY KEY REFERENCES principals(id),
    hmac_sealed bytea,
    ed25519_public bytea,
    jwt_keys text,
    updated_at timestamptz NOT NULL
);

-- Signature nonces and assertion jti values already seen, until they could
-- not be accepted anyway; the primary key makes "first use wins" atomic
-- across instances.
CREATE TABLE auth_nonces (
    principal_id text NOT NULL,
    nonce text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (principal_id, nonce)
);
CREATE INDEX auth_nonces_expiry ON auth_nonces (expires_at);

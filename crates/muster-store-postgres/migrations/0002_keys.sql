-- Tenant keys: decryption keys (secret sealed under the master key) and HR
-- systems' signing keys; key_ids are the ids messages name recipients or
-- signers by.
CREATE TABLE keys (
    id text COLLATE "C" PRIMARY KEY,
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants(id),
    kind text NOT NULL,
    algorithm text NOT NULL,
    purpose text NOT NULL CHECK (purpose IN ('decryption', 'sender_verification')),
    key_ids jsonb NOT NULL,
    public_key text NOT NULL,
    sealed_secret bytea,
    state text NOT NULL CHECK (state IN ('active', 'decrypt_only', 'revoked')),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX keys_tenant ON keys (tenant_id, created_at, id);

-- What a client's uploads must be (muster_core::policy::IntakePolicy).
CREATE TABLE intake_policies (
    principal_id text PRIMARY KEY REFERENCES principals(id),
    policy jsonb NOT NULL
);

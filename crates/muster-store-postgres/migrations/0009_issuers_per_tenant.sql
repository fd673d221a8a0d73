-- Issuers per tenant: `(issuer, audience)` is unique within a tenant, not
-- across tenants. Two tenants may register the same identity provider and
-- audience; a login names its tenant (the login-sync route) and only that
-- tenant's issuers are considered.
ALTER TABLE issuers DROP CONSTRAINT issuers_issuer_audience_key;
ALTER TABLE issuers ADD CONSTRAINT issuers_tenant_issuer_audience_key
    UNIQUE (tenant_id, issuer, audience);

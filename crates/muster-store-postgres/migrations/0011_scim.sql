-- SCIM (docs/scim.md). Every person gets a SCIM id, assigned by the
-- database on insert (NULL once a SCIM client deleted the person: it
-- stays, hidden from SCIM). The attributes SCIM filters look people up by
-- are indexed, each only where a person has it. Clients keep which SCIM
-- attribute keys their people, and Groups have a table of their own.
ALTER TABLE people ADD COLUMN scim_id text DEFAULT gen_random_uuid()::text;
CREATE UNIQUE INDEX people_scim_id ON people (scim_id) WHERE scim_id IS NOT NULL;
CREATE INDEX people_user_name ON people (tenant_id, lower(attrs->>'user_name'))
  WHERE attrs ? 'user_name';
CREATE INDEX people_email ON people (tenant_id, lower(attrs->>'email'))
  WHERE attrs ? 'email';
CREATE INDEX people_employee_number ON people (tenant_id, lower(attrs->>'employee_number'))
  WHERE attrs ? 'employee_number';
CREATE INDEX people_scim_external_id ON people (tenant_id, (attrs->>'scim_external_id'))
  WHERE attrs ? 'scim_external_id';
ALTER TABLE principals ADD COLUMN scim_key text;
CREATE TABLE scim_groups (
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants(id),
    id text COLLATE "C" NOT NULL,
    display_name text COLLATE "C" NOT NULL,
    external_id text,
    version bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, display_name)
);

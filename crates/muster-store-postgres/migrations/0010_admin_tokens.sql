-- Admin API tokens with a lifetime: a public id to list and revoke them
-- by, a name, and when each was last used. Admin tokens made before this
-- step (each admin's first) are listed as 'initial', keep never expiring,
-- and can now be revoked.
ALTER TABLE tokens ADD COLUMN id text, ADD COLUMN name text, ADD COLUMN last_used_at timestamptz;
CREATE UNIQUE INDEX tokens_id ON tokens (id) WHERE id IS NOT NULL;
UPDATE tokens SET id = gen_random_uuid()::text, name = 'initial'
WHERE id IS NULL AND principal_id IN (SELECT id FROM principals WHERE kind = 'admin');

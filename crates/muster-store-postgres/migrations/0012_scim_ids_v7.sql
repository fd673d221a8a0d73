-- SCIM ids are UUID version 7 (RFC 9562 §5.7): the Unix time in
-- milliseconds, then random bits. Ids made one after another sort one
-- after another, so a large import appends to the end of the SCIM id
-- index instead of writing all over it (version 4 ids are random). The
-- function takes a version 4 UUID, puts the time in its first 48 bits,
-- and turns its version from 4 (0100) into 7 (0111). Ids already given
-- out stay as they are.
CREATE FUNCTION muster_uuid_v7() RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              placing substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid::text
$$;
ALTER TABLE people ALTER COLUMN scim_id SET DEFAULT muster_uuid_v7();

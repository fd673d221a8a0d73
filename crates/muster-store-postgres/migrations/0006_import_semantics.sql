-- Import semantics (docs/people.md#import-semantics). source_system: the import source that last
-- wrote or confirmed the person (a snapshot import of that source
-- deactivates its people missing from the file). due_on: the day the
-- person's next effective-date transition is due (see
-- muster_core::person::due_on), indexed only where there is one.
ALTER TABLE people ADD COLUMN source_system text COLLATE "C";
ALTER TABLE people ADD COLUMN due_on text COLLATE "C";
CREATE INDEX people_due ON people (tenant_id, due_on) WHERE due_on IS NOT NULL;
-- People last written by an import before this step belong to that
-- import's client.
UPDATE people p SET source_system = i.client_id
FROM imports i
WHERE p.source LIKE 'import:%' AND i.id = substr(p.source, 8);
-- People stored with a termination date (not before their hire date) and
-- not yet terminated are due on it: the scheduler ends their employment on
-- that day (or at once, when it has passed), as for a person written after
-- this step.
UPDATE people SET due_on = attrs->>'termination_date'
WHERE jsonb_typeof(attrs->'termination_date') = 'string'
  AND coalesce(attrs->>'employment_status', '') <> 'terminated'
  AND (jsonb_typeof(attrs->'hire_date') IS DISTINCT FROM 'string'
       OR (attrs->>'termination_date') COLLATE "C" >= (attrs->>'hire_date') COLLATE "C");

-- Read policies (docs/people.md#read-policies): what a client may read of
-- people, NULL for everything. A subscription a client made itself names
-- that client as its owner (docs/events.md), NULL for an administrator's.
ALTER TABLE principals ADD COLUMN read_policy jsonb;
ALTER TABLE subscriptions ADD COLUMN owner_client_id text;

-- Delivery leases (fan-out across instances): the instance delivering a
-- subscription and until when. Another instance takes it over once the
-- lease has run out (see Store::subscription_claim).
ALTER TABLE subscriptions ADD COLUMN lease_owner text, ADD COLUMN lease_until timestamptz;

-- Provisioning (docs/provisioning.md): a sink's own progress (a backfill
-- position, a quarantine), and what a subscription knows of its Users and
-- Groups on the target.
ALTER TABLE subscriptions ADD COLUMN sink_progress jsonb;
CREATE TABLE subscription_links (
    subscription_id text NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    kind text NOT NULL,
    key text COLLATE "C" NOT NULL,
    target_id text NOT NULL,
    sent jsonb,
    PRIMARY KEY (subscription_id, kind, key)
);
CREATE INDEX subscription_links_target ON subscription_links (subscription_id, kind, target_id);

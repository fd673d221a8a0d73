-- Subscriptions of more than one kind (docs/events.md): a webhook, or a
-- NATS JetStream subject prefix in target (NULL for a webhook).
ALTER TABLE subscriptions ADD COLUMN kind text NOT NULL DEFAULT 'webhook';
ALTER TABLE subscriptions ADD COLUMN target jsonb;

//! [`Events`] on PostgreSQL. Change events and the subscriptions that deliver
//! them, with their delivery leases and log.
use crate::*;

impl Events for PostgresStore {
    fn changes_list(&self, tenant: &TenantId, after: i64, limit: u32) -> Result<Vec<ChangeEvent>> {
        self.pool.run(|s| {
            s.query(
                "SELECT e.cursor, e.id, e.kind, e.external_id, e.version, a.source, \
                 a.principal, a.on_behalf_of, a.detail, a.at FROM events e \
                 JOIN audit a ON a.tenant_id = e.tenant_id AND a.seq = e.audit_seq \
                 WHERE e.tenant_id = $1 AND e.cursor > $2 ORDER BY e.cursor LIMIT $3",
                &[&tenant.as_str(), &after, &i64::from(limit)],
            )?
            .iter()
            .map(|r| {
                Ok(ChangeEvent {
                    id: get(r, 1)?,
                    tenant: tenant.clone(),
                    cursor: get(r, 0)?,
                    kind: get(r, 2)?,
                    external_id: get(r, 3)?,
                    version: get(r, 4)?,
                    source: get(r, 5)?,
                    principal: get(r, 6)?,
                    on_behalf_of: get(r, 7)?,
                    detail: muster_core::person::into_display_detail(get(r, 8)?),
                    created_at: get(r, 9)?,
                })
            })
            .collect()
        })
    }

    fn changes_head(&self, tenant: &TenantId) -> Result<i64> {
        self.pool.run(|s| {
            get(
                &s.one(
                    "SELECT coalesce(max(cursor), 0) FROM events WHERE tenant_id = $1",
                    &[&tenant.as_str()],
                )?,
                0,
            )
        })
    }

    fn subscription_create(
        &self,
        r: SubscriptionRow,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow> {
        self.audited(audit, |s| subscriptions::create(s, &r))
    }

    fn subscription_get(&self, tenant: &TenantId, id: &str) -> Result<SubscriptionRow> {
        self.pool.run(|s| subscriptions::get_one(s, tenant, id))
    }

    fn subscription_list(&self, tenant: &TenantId) -> Result<Vec<SubscriptionRow>> {
        self.pool.run(|s| subscriptions::list(s, tenant))
    }

    fn subscription_active(&self) -> Result<Vec<SubscriptionRow>> {
        self.pool.run(subscriptions::active)
    }

    fn subscription_update(
        &self,
        r: &SubscriptionRow,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow> {
        self.audited(audit, |s| subscriptions::update(s, r))
    }

    fn subscription_delete(&self, tenant: &TenantId, id: &str, audit: Audit<()>) -> Result<()> {
        self.audited(audit, |s| subscriptions::delete(s, tenant, id))
    }

    fn subscription_redeliver(
        &self,
        tenant: &TenantId,
        id: &str,
        range: (i64, i64),
        now: DateTime<Utc>,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow> {
        self.audited(audit, |s| {
            subscriptions::redeliver(s, tenant, id, range, now)
        })
    }

    fn delivery_list(&self, id: &str, after: i64, limit: u32) -> Result<Vec<DeliveryRecord>> {
        self.pool
            .run(|s| subscriptions::deliveries(s, id, after, limit))
    }

    fn subscription_claim(
        &self,
        id: &str,
        owner: &str,
        lease: ChronoDuration,
        now: DateTime<Utc>,
    ) -> Result<Option<SubscriptionRow>> {
        self.pool
            .write(|s| subscriptions::claim(s, id, owner, now, now + lease))
    }

    fn subscription_save(
        &self,
        id: &str,
        owner: &str,
        lease: ChronoDuration,
        save: &DeliverySave,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.pool
            .write(|s| subscriptions::save(s, id, owner, now + lease, save, now))
    }

    fn subscription_release(&self, id: &str, owner: &str) -> Result<()> {
        self.pool.run(|s| subscriptions::release(s, id, owner))
    }

    fn target_links(
        &self,
        subscription: &str,
        kind: LinkKind,
        keys: &[&str],
    ) -> Result<Vec<Option<TargetLink>>> {
        self.pool
            .run(|s| subscriptions::links(s, subscription, kind, keys))
    }

    fn target_link_put(&self, subscription: &str, kind: LinkKind, link: &TargetLink) -> Result<()> {
        self.pool
            .write(|s| subscriptions::link_put(s, subscription, kind, link))
    }

    fn target_link_of(
        &self,
        subscription: &str,
        kind: LinkKind,
        target_id: &str,
    ) -> Result<Option<TargetLink>> {
        self.pool
            .run(|s| subscriptions::link_of(s, subscription, kind, target_id))
    }

    fn target_link_delete(&self, subscription: &str, kind: LinkKind, key: &str) -> Result<()> {
        self.pool
            .write(|s| subscriptions::link_delete(s, subscription, kind, key))
    }

    fn target_link_list(
        &self,
        subscription: &str,
        kind: LinkKind,
        after: &str,
        limit: u32,
    ) -> Result<Vec<TargetLink>> {
        self.pool
            .run(|s| subscriptions::link_list(s, subscription, kind, after, limit))
    }
}

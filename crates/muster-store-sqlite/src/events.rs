//! [`Events`] on SQLite. Change events and the subscriptions that deliver them,
//! with their delivery leases and log.
use crate::*;

impl Events for SqliteStore {
    fn changes_list(&self, tenant: &TenantId, after: i64, limit: u32) -> Result<Vec<ChangeEvent>> {
        self.read(|conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT e.cursor, e.id, e.kind, e.external_id, e.version, a.source, \
                     a.principal, a.on_behalf_of, a.detail, a.at FROM events e \
                     JOIN audit a ON a.tenant_id = e.tenant_id AND a.seq = e.audit_seq \
                     WHERE e.tenant_id = ?1 AND e.cursor > ?2 ORDER BY e.cursor LIMIT ?3",
                )
                .map_err(be)?;
            let rows = st
                .query_map(params![tenant.as_str(), after, i64::from(limit)], |r| {
                    // Stored as 16 bytes: a third of the text form, on the import path.
                    let id: [u8; 16] = r.get(1)?;
                    Ok(ChangeEvent {
                        id: uuid::Uuid::from_bytes(id).to_string(),
                        tenant: tenant.clone(),
                        cursor: r.get(0)?,
                        kind: r.get(2)?,
                        external_id: r.get(3)?,
                        version: r.get(4)?,
                        source: r.get(5)?,
                        principal: r.get(6)?,
                        on_behalf_of: r.get(7)?,
                        detail: into_display_detail(r.get(8)?),
                        created_at: r.get(9)?,
                    })
                })
                .map_err(be)?;
            rows.collect::<rusqlite::Result<_>>().map_err(be)
        })
    }

    fn changes_head(&self, tenant: &TenantId) -> Result<i64> {
        self.read(|conn| {
            conn.prepare_cached("SELECT coalesce(max(cursor), 0) FROM events WHERE tenant_id = ?1")
                .map_err(be)?
                .query_row([tenant.as_str()], |r| r.get(0))
                .map_err(be)
        })
    }

    fn subscription_create(
        &self,
        s: SubscriptionRow,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow> {
        self.audited(audit, move |conn| subscriptions::create(conn, &s))
    }

    fn subscription_get(&self, tenant: &TenantId, id: &str) -> Result<SubscriptionRow> {
        self.read(|conn| subscriptions::get(conn, tenant, id))
    }

    fn subscription_list(&self, tenant: &TenantId) -> Result<Vec<SubscriptionRow>> {
        self.read(|conn| subscriptions::list(conn, tenant))
    }

    fn subscription_active(&self) -> Result<Vec<SubscriptionRow>> {
        self.read(subscriptions::active)
    }

    fn subscription_update(
        &self,
        s: &SubscriptionRow,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow> {
        let s = s.clone();
        self.audited(audit, move |conn| subscriptions::update(conn, &s))
    }

    fn subscription_delete(&self, tenant: &TenantId, id: &str, audit: Audit<()>) -> Result<()> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.audited(audit, move |conn| subscriptions::delete(conn, &tenant, &id))
    }

    fn subscription_redeliver(
        &self,
        tenant: &TenantId,
        id: &str,
        range: (i64, i64),
        now: DateTime<Utc>,
        audit: Audit<SubscriptionRow>,
    ) -> Result<SubscriptionRow> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.audited(audit, move |conn| {
            subscriptions::redeliver(conn, &tenant, &id, range, now)
        })
    }

    fn delivery_list(&self, id: &str, after: i64, limit: u32) -> Result<Vec<DeliveryRecord>> {
        self.read(|conn| subscriptions::deliveries(conn, id, after, limit))
    }

    // One writer serialises claims; the lease matters across restarts (a
    // restarted instance has a new id) as it does in PostgreSQL.
    fn subscription_claim(
        &self,
        id: &str,
        owner: &str,
        lease: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<SubscriptionRow>> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.writer
            .write(move |conn| subscriptions::claim(conn, &id, &owner, us(now), us(now + lease)))
    }

    fn subscription_save(
        &self,
        id: &str,
        owner: &str,
        lease: chrono::Duration,
        save: &DeliverySave,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (id, owner, save) = (id.to_owned(), owner.to_owned(), save.clone());
        self.writer
            .write(move |conn| subscriptions::save(conn, &id, &owner, us(now + lease), &save, now))
    }

    fn subscription_release(&self, id: &str, owner: &str) -> Result<()> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.writer
            .write(move |conn| subscriptions::release(conn, &id, &owner))
    }

    fn target_links(
        &self,
        subscription: &str,
        kind: LinkKind,
        keys: &[&str],
    ) -> Result<Vec<Option<TargetLink>>> {
        self.read(|conn| subscriptions::links(conn, subscription, kind, keys))
    }

    fn target_link_put(&self, subscription: &str, kind: LinkKind, link: &TargetLink) -> Result<()> {
        let (sub, link) = (subscription.to_owned(), link.clone());
        self.writer
            .write(move |conn| subscriptions::link_put(conn, &sub, kind, &link))
    }

    fn target_link_of(
        &self,
        subscription: &str,
        kind: LinkKind,
        target_id: &str,
    ) -> Result<Option<TargetLink>> {
        self.read(|conn| subscriptions::link_of(conn, subscription, kind, target_id))
    }

    fn target_link_delete(&self, subscription: &str, kind: LinkKind, key: &str) -> Result<()> {
        let (sub, key) = (subscription.to_owned(), key.to_owned());
        self.writer
            .write(move |conn| subscriptions::link_delete(conn, &sub, kind, &key))
    }

    fn target_link_list(
        &self,
        subscription: &str,
        kind: LinkKind,
        after: &str,
        limit: u32,
    ) -> Result<Vec<TargetLink>> {
        self.read(|conn| subscriptions::link_list(conn, subscription, kind, after, limit))
    }
}

//! [`AuditTrail`] on PostgreSQL. The audit chain: entries of their own, and
//! reading and walking it.
use crate::*;

impl AuditTrail for PostgresStore {
    fn audit_append(&self, d: AuditDraft) -> Result<i64> {
        self.pool.write(|s| apply::audit_append_one(s, &d))
    }

    fn audit_list(&self, tenant: &TenantId, after: i64, limit: u32) -> Result<Vec<AuditRow>> {
        self.pool.run(|s| {
            s.query(
                audit_select!("WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
                &[&tenant.as_str(), &after, &i64::from(limit)],
            )?
            .iter()
            .map(|r| to_audit(r).map(AuditRow::for_display))
            .collect()
        })
    }

    fn audit_walk(&self, tenant: &TenantId, f: &mut dyn FnMut(AuditRow) -> bool) -> Result<()> {
        // Pages by seq: memory stays bounded however long the chain, and
        // the chain only grows at its end, so paging misses nothing.
        const PAGE: i64 = 1000;
        let mut after = 0i64;
        loop {
            let page = self.pool.run(|s| {
                s.query(
                    audit_select!("WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
                    &[&tenant.as_str(), &after, &PAGE],
                )?
                .iter()
                .map(to_audit)
                .collect::<Result<Vec<_>>>()
            })?;
            let full = page.len() as i64 == PAGE;
            for row in page {
                after = row.entry.seq;
                if !f(row) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }
}

fn to_audit(r: &Row) -> Result<AuditRow> {
    Ok(AuditRow {
        entry: AuditEntry {
            tenant: get(r, 0)?,
            seq: get(r, 1)?,
            at: get(r, 2)?,
            principal: get(r, 3)?,
            on_behalf_of: get(r, 4)?,
            source: get(r, 5)?,
            action: get(r, 6)?,
            person: get(r, 7)?,
            detail: get(r, 8)?,
            prev_hash: get(r, 9)?,
        },
        hash: get(r, 10)?,
    })
}

//! [`AuditTrail`] on SQLite. The audit chain: entries of their own, and reading
//! and walking it.
use crate::*;

impl AuditTrail for SqliteStore {
    fn audit_append(&self, d: AuditDraft) -> Result<i64> {
        self.writer.write(move |conn| {
            append_entries(conn, std::slice::from_ref(&d))?;
            Ok(audit_head(conn, d.tenant.as_str())?.0)
        })
    }

    fn audit_list(&self, tenant: &TenantId, after: i64, limit: u32) -> Result<Vec<AuditRow>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {AUDIT_COLS} FROM audit WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            );
            let mut s = conn.prepare_cached(&sql).map_err(be)?;
            let rows = s
                .query_map(params![tenant.as_str(), after, limit], audit_from_row)
                .map_err(be)?;
            rows.map(|r| r.map(AuditRow::for_display).map_err(be))
                .collect()
        })
    }

    fn audit_walk(&self, tenant: &TenantId, f: &mut dyn FnMut(AuditRow) -> bool) -> Result<()> {
        self.read(|conn| {
            let sql = format!("SELECT {AUDIT_COLS} FROM audit WHERE tenant_id = ?1 ORDER BY seq");
            let mut s = conn.prepare(&sql).map_err(be)?;
            let mut rows = s.query([tenant.as_str()]).map_err(be)?;
            while let Some(r) = rows.next().map_err(be)? {
                if !f(audit_from_row(r).map_err(be)?) {
                    break;
                }
            }
            Ok(())
        })
    }
}

fn audit_from_row(r: &Row) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        entry: AuditEntry {
            tenant: r.get(0)?,
            seq: r.get(1)?,
            at: r.get(2)?,
            principal: r.get(3)?,
            on_behalf_of: r.get(4)?,
            source: r.get(5)?,
            action: r.get(6)?,
            person: r.get(7)?,
            detail: r.get(8)?,
            prev_hash: hash_col(r, 9)?,
        },
        hash: hash_col(r, 10)?,
    })
}

const AUDIT_COLS: &str =
    "tenant_id, seq, at, principal, on_behalf_of, source, action, person, detail, prev_hash, hash";

//! [`People`] on SQLite. People: batches of records applied with their audit
//! entries and events, reads, and the import semantics (sources, managers,
//! effective dates).
use crate::*;

impl People for SqliteStore {
    fn apply_batch(
        &self,
        ctx: &WriteContext,
        items: Vec<BatchItem>,
        checkpoint: Option<Checkpoint>,
        dry_run: bool,
    ) -> Result<Vec<ItemResult>> {
        let ctx = ctx.clone();
        let (results, items) = self.writer.write(move |conn| {
            let results = apply_tx(conn, &ctx, &items, checkpoint.as_ref(), None, dry_run)?;
            // The items go back to be freed by the caller: thousands of
            // small maps are not the single writer's work.
            Ok((results, items))
        })?;
        drop(items);
        Ok(results)
    }

    fn person_get(&self, tenant: &TenantId, id: &ExternalId) -> Result<PersonRow> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {PERSON_COLS} FROM people p JOIN person_data d ON d.id = p.data_id \
                 WHERE p.tenant_id = ?1 AND p.external_id = ?2"
            );
            conn.prepare_cached(&sql)
                .map_err(be)?
                .query_row(params![tenant.as_str(), id.as_str()], person_from_row)
                .optional()
                .map_err(be)?
                .map(PersonRaw::decode)
                .transpose()?
                .ok_or(StoreError::NotFound { what: "person" })
        })
    }

    fn person_list(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PersonRow>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {PERSON_COLS} FROM people p JOIN person_data d ON d.id = p.data_id \
                 WHERE p.tenant_id = ?1 \
                 AND (?2 IS NULL OR p.external_id > ?2) ORDER BY p.external_id LIMIT ?3"
            );
            let mut s = conn.prepare_cached(&sql).map_err(be)?;
            let rows = s
                .query_map(params![tenant.as_str(), after, limit], person_from_row)
                .map_err(be)?;
            rows.map(|r| r.map_err(be)?.decode()).collect()
        })
    }

    fn person_source_active(
        &self,
        tenant: &TenantId,
        source_system: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        self.read(|conn| semantics::source_active(conn, tenant, source_system, after, limit))
    }

    fn person_exists(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<bool>> {
        self.read(|conn| semantics::exists(conn, tenant, ids))
    }

    fn person_fingerprints_of_source(
        &self,
        tenant: &TenantId,
        ids: &[&str],
        source_system: &str,
    ) -> Result<Vec<Option<[u8; 16]>>> {
        self.read(|conn| {
            // One read transaction: a consistent snapshot for the whole list.
            conn.execute_batch("BEGIN").map_err(be)?;
            let out = semantics::fingerprints_of_source(conn, tenant, ids, source_system);
            let _ = conn.execute_batch("COMMIT");
            out
        })
    }

    fn person_settle_due(&self, ctx: &WriteContext, limit: u32) -> Result<Vec<ItemResult>> {
        let ctx = ctx.clone();
        self.writer
            .write(move |conn| semantics::settle_due(conn, &ctx, limit))
    }

    fn apply_batch_claimed(
        &self,
        ctx: &WriteContext,
        items: Vec<BatchItem>,
        checkpoint: Checkpoint,
        owner: &str,
        dry_run: bool,
    ) -> Result<Option<Applied>> {
        let (ctx, owner) = (ctx.clone(), owner.to_owned());
        fenced(self.writer.write(move |conn| {
            let results = apply_tx(conn, &ctx, &items, Some(&checkpoint), Some(&owner), dry_run)?;
            Ok(Applied { results, items })
        }))
    }
}

/// Columns of `people p JOIN person_data d ON d.id = p.data_id`.
pub(crate) const PERSON_COLS: &str =
    "p.external_id, d.attrs, d.roles, p.version, p.updated_at, p.updated_by, p.on_behalf_of, p.source, \
     p.source_system, p.scim_id";

pub(crate) fn person_from_row(r: &Row) -> rusqlite::Result<PersonRaw> {
    Ok(PersonRaw {
        external_id: r.get(0)?,
        attrs: r.get(1)?,
        roles: r.get(2)?,
        version: r.get(3)?,
        updated_at: r.get(4)?,
        updated_by: r.get(5)?,
        on_behalf_of: r.get(6)?,
        source: r.get(7)?,
        source_system: r.get(8)?,
        scim_id: r.get(9)?,
    })
}

/// One batch and its checkpoint, in the writer's transaction. With an
/// `owner`, the checkpoint moves only while that instance holds the
/// import's lease; otherwise the job fails with [`LEASE_LOST`] and its
/// savepoint (the whole batch) rolls back.
fn apply_tx(
    conn: &Connection,
    ctx: &WriteContext,
    items: &[BatchItem],
    checkpoint: Option<&Checkpoint>,
    owner: Option<&str>,
    dry_run: bool,
) -> Result<Vec<ItemResult>> {
    if dry_run {
        conn.execute_batch("SAVEPOINT dry_run").map_err(be)?;
    }
    let applied = apply_items(conn, ctx, items);
    if dry_run {
        conn.execute_batch("ROLLBACK TO dry_run; RELEASE dry_run")
            .map_err(be)?;
    }
    let results = applied?;
    if let Some(cp) = checkpoint {
        let mut c = Counts::default();
        for r in &results {
            c.add_kind(r.kind);
        }
        c.unchanged += cp.unchanged;
        let n = conn
            .prepare_cached(
                "UPDATE imports SET checkpoint_row = ?1, created = created + ?2, \
                 updated = updated + ?3, unchanged = unchanged + ?4, \
                 deactivated = deactivated + ?5, updated_at = ?6 \
                 WHERE id = ?7 AND (?8 IS NULL OR lease_owner = ?8)",
            )
            .map_err(be)?
            .execute(params![
                cp.row as i64,
                c.created as i64,
                c.updated as i64,
                c.unchanged as i64,
                c.deactivated as i64,
                us(ctx.now),
                cp.import_id,
                owner
            ])
            .map_err(be)?;
        if n == 0 && owner.is_some() {
            return Err(StoreError::Conflict(LEASE_LOST.into()));
        }
    }
    Ok(results)
}

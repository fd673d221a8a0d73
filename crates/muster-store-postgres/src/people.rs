//! [`People`] on PostgreSQL. People: batches of records applied with their
//! audit entries and events, reads, and the import semantics (sources,
//! managers, effective dates).
use crate::*;

impl People for PostgresStore {
    fn apply_batch(
        &self,
        ctx: &WriteContext,
        items: Vec<BatchItem>,
        checkpoint: Option<Checkpoint>,
        dry_run: bool,
    ) -> Result<Vec<ItemResult>> {
        let results = self
            .pool
            .write(|s| apply::apply_batch(s, ctx, &items, checkpoint.as_ref(), dry_run))?;
        self.after_batch(&results, dry_run);
        Ok(results)
    }

    fn person_get(&self, tenant: &TenantId, id: &ExternalId) -> Result<PersonRow> {
        self.pool
            .run(|s| {
                s.opt(
                    person_select!("WHERE tenant_id = $1 AND external_id = $2"),
                    &[&tenant.as_str(), &id.as_str()],
                )?
                .map(|r| to_person(&r))
                .transpose()
            })?
            .ok_or(StoreError::NotFound { what: "person" })
    }

    fn person_list(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PersonRow>> {
        self.pool.run(|s| {
            s.query(
                person_select!(
                    "WHERE tenant_id = $1 AND ($2::text IS NULL OR external_id > $2) \
                     ORDER BY external_id LIMIT $3"
                ),
                &[&tenant.as_str(), &after, &i64::from(limit)],
            )?
            .iter()
            .map(to_person)
            .collect()
        })
    }

    fn person_source_active(
        &self,
        tenant: &TenantId,
        source_system: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        self.pool.run(|s| {
            s.query(
                "SELECT external_id FROM people \
                 WHERE tenant_id = $1 AND source_system = $2 \
                 AND ($3::text IS NULL OR external_id > $3) \
                 AND (attrs->>'employment_status') IS DISTINCT FROM 'terminated' \
                 ORDER BY external_id LIMIT $4",
                &[&tenant.as_str(), &source_system, &after, &i64::from(limit)],
            )?
            .iter()
            .map(|r| get::<String>(r, 0))
            .collect()
        })
    }

    fn person_exists(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.run(|s| {
            let rows = s.query(
                "SELECT p.external_id IS NOT NULL FROM unnest($2::text[]) WITH ORDINALITY AS i(ext, n) \
                 LEFT JOIN people p ON p.tenant_id = $1 AND p.external_id = i.ext \
                 ORDER BY i.n",
                &[&tenant.as_str(), &ids],
            )?;
            rows.iter().map(|r| get::<bool>(r, 0)).collect()
        })
    }

    fn person_fingerprints_of_source(
        &self,
        tenant: &TenantId,
        ids: &[&str],
        source_system: &str,
    ) -> Result<Vec<Option<[u8; 16]>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.run(|s| {
            let rows = s.query(
                "SELECT p.fingerprint FROM unnest($2::text[]) WITH ORDINALITY AS i(ext, n) \
                 LEFT JOIN people p ON p.tenant_id = $1 AND p.external_id = i.ext \
                      AND p.source_system = $3 \
                 ORDER BY i.n",
                &[&tenant.as_str(), &ids, &source_system],
            )?;
            rows.iter()
                .map(|r| {
                    let fp: Option<&[u8]> = get(r, 0)?;
                    Ok(fp.and_then(|b| <[u8; 16]>::try_from(b).ok()))
                })
                .collect()
        })
    }

    fn person_settle_due(&self, ctx: &WriteContext, limit: u32) -> Result<Vec<ItemResult>> {
        self.pool.write(|s| apply::settle_due(s, ctx, limit))
    }

    fn apply_batch_claimed(
        &self,
        ctx: &WriteContext,
        items: Vec<BatchItem>,
        checkpoint: Checkpoint,
        owner: &str,
        dry_run: bool,
    ) -> Result<Option<Applied>> {
        let done = fenced(self.pool.write(|s| {
            apply::apply_batch_owned(s, ctx, &items, Some(&checkpoint), Some(owner), dry_run)
        }))?;
        Ok(done.map(|results| {
            self.after_batch(&results, dry_run);
            Applied { results, items }
        }))
    }
}

pub(crate) fn to_person(r: &Row) -> Result<PersonRow> {
    let attrs: &str = get(r, 1)?;
    let roles: &str = get(r, 2)?;
    Ok(PersonRow {
        external_id: ExternalId::parse(get(r, 0)?).map_err(bad)?,
        state: decode_state(attrs, roles)?,
        version: get(r, 3)?,
        updated_at: get(r, 4)?,
        updated_by: get(r, 5)?,
        on_behalf_of: get(r, 6)?,
        source: get(r, 7)?,
        source_system: get(r, 8)?,
        scim_id: get(r, 9)?,
    })
}

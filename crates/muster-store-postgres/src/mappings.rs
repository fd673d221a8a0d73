//! [`Mappings`] on PostgreSQL. Versioned mappings from a source's records to
//! the person schema.
use crate::*;

impl Mappings for PostgresStore {
    fn mapping_put(&self, m: MappingRow, audit: Audit<MappingRow>) -> Result<MappingRow> {
        self.audited(audit, |s| {
            // Two instances saving the same mapping take turns, so each
            // gets its own version number.
            s.exec(
                "SELECT pg_advisory_xact_lock($1, hashtext($2 || '/' || $3))",
                &[&LOCK_MAPPING, &m.tenant.as_str(), &m.name],
            )?;
            let r = s.one(
                "INSERT INTO mappings (tenant_id, name, version, document, created_at, created_by) \
                 SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5 FROM mappings \
                 WHERE tenant_id = $1 AND name = $2 RETURNING version, created_at",
                &[
                    &m.tenant.as_str(),
                    &m.name,
                    &m.document,
                    &m.created_at,
                    &m.created_by,
                ],
            )?;
            Ok(MappingRow {
                version: get(&r, 0)?,
                created_at: get(&r, 1)?,
                ..m
            })
        })
    }

    fn mapping_get(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<i64>,
    ) -> Result<MappingRow> {
        self.pool.run(|s| {
            s.opt(
                "SELECT tenant_id, name, version, document, created_at, created_by \
                 FROM mappings WHERE tenant_id = $1 AND name = $2 \
                 AND ($3::bigint IS NULL OR version = $3) ORDER BY version DESC LIMIT 1",
                &[&tenant.as_str(), &name, &version],
            )?
            .map(|r| to_mapping(&r))
            .transpose()?
            .ok_or(StoreError::NotFound { what: "mapping" })
        })
    }

    fn mapping_list(&self, tenant: &TenantId) -> Result<Vec<MappingRow>> {
        self.pool.run(|s| {
            s.query(
                "SELECT DISTINCT ON (name) tenant_id, name, version, document, created_at, \
                 created_by FROM mappings WHERE tenant_id = $1 ORDER BY name, version DESC",
                &[&tenant.as_str()],
            )?
            .iter()
            .map(to_mapping)
            .collect()
        })
    }

    fn mapping_versions(&self, tenant: &TenantId, name: &str) -> Result<Vec<MappingRow>> {
        let v: Vec<MappingRow> = self.pool.run(|s| {
            s.query(
                "SELECT tenant_id, name, version, document, created_at, created_by \
                 FROM mappings WHERE tenant_id = $1 AND name = $2 ORDER BY version",
                &[&tenant.as_str(), &name],
            )?
            .iter()
            .map(to_mapping)
            .collect()
        })?;
        if v.is_empty() {
            return Err(StoreError::NotFound { what: "mapping" });
        }
        Ok(v)
    }
}

fn to_mapping(r: &Row) -> Result<MappingRow> {
    Ok(MappingRow {
        tenant: tenant_id(get(r, 0)?)?,
        name: get(r, 1)?,
        version: get(r, 2)?,
        document: get(r, 3)?,
        created_at: get(r, 4)?,
        created_by: get(r, 5)?,
    })
}

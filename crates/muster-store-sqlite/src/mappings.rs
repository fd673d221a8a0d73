//! [`Mappings`] on SQLite. Versioned mappings from a source's records to the
//! person schema.
use crate::*;

impl Mappings for SqliteStore {
    fn mapping_put(&self, m: MappingRow, audit: Audit<MappingRow>) -> Result<MappingRow> {
        self.audited(audit, move |conn| {
            let last: i64 = conn
                .query_row(
                    "SELECT coalesce(max(version), 0) FROM mappings WHERE tenant_id = ?1 AND name = ?2",
                    params![m.tenant.as_str(), m.name],
                    |r| r.get(0),
                )
                .map_err(be)?;
            let doc = serde_json::to_string(&m.document).map_err(json_err)?;
            conn.execute(
                "INSERT INTO mappings (tenant_id, name, version, document, created_at, created_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![m.tenant.as_str(), m.name, last + 1, doc, us(m.created_at), m.created_by],
            )
            .map_err(be)?;
            Ok(MappingRow {
                version: last + 1,
                created_at: from_us(us(m.created_at)),
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
        self.read(|conn| {
            let sql = "SELECT tenant_id, name, version, document, created_at, created_by \
                       FROM mappings WHERE tenant_id = ?1 AND name = ?2 AND (?3 IS NULL OR version = ?3) \
                       ORDER BY version DESC LIMIT 1";
            conn.prepare_cached(sql)
                .map_err(be)?
                .query_row(params![tenant.as_str(), name, version], mapping_from_row)
                .optional()
                .map_err(be)?
                .map(to_mapping)
                .transpose()?
                .ok_or(StoreError::NotFound { what: "mapping" })
        })
    }

    fn mapping_list(&self, tenant: &TenantId) -> Result<Vec<MappingRow>> {
        self.read(|conn| {
            let sql = "SELECT m.tenant_id, m.name, m.version, m.document, m.created_at, m.created_by \
                       FROM mappings m WHERE m.tenant_id = ?1 AND m.version = \
                       (SELECT max(version) FROM mappings x WHERE x.tenant_id = m.tenant_id AND x.name = m.name) \
                       ORDER BY m.name";
            let mut s = conn.prepare_cached(sql).map_err(be)?;
            let rows = s.query_map([tenant.as_str()], mapping_from_row).map_err(be)?;
            rows.map(|r| to_mapping(r.map_err(be)?)).collect()
        })
    }

    fn mapping_versions(&self, tenant: &TenantId, name: &str) -> Result<Vec<MappingRow>> {
        self.read(|conn| {
            let sql = "SELECT tenant_id, name, version, document, created_at, created_by \
                       FROM mappings WHERE tenant_id = ?1 AND name = ?2 ORDER BY version";
            let mut s = conn.prepare_cached(sql).map_err(be)?;
            let rows = s
                .query_map(params![tenant.as_str(), name], mapping_from_row)
                .map_err(be)?;
            let v: Vec<MappingRow> = rows
                .map(|r| to_mapping(r.map_err(be)?))
                .collect::<Result<_>>()?;
            if v.is_empty() {
                return Err(StoreError::NotFound { what: "mapping" });
            }
            Ok(v)
        })
    }
}

fn mapping_from_row(r: &Row) -> rusqlite::Result<(String, String, i64, String, i64, String)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn to_mapping(t: (String, String, i64, String, i64, String)) -> Result<MappingRow> {
    Ok(MappingRow {
        tenant: TenantId::parse(&t.0).map_err(stored_id)?,
        name: t.1,
        version: t.2,
        document: serde_json::from_str(&t.3).map_err(json_err)?,
        created_at: from_us(t.4),
        created_by: t.5,
    })
}

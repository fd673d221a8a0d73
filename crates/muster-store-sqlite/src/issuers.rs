//! Login-sync issuers, each a tenant's own.
use crate::{be, from_us, json_err, stored_id, us, SqliteStore};
use muster_core::TenantId;
use muster_store::{Audit, IssuerRow, Issuers, Result, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};

const COLS: &str = "id, tenant_id, name, issuer, audience, settings, hs256_sealed, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<IssuerRow>> {
    let tenant: String = r.get(1)?;
    let settings: String = r.get(5)?;
    let at: i64 = r.get(7)?;
    let (id, name, issuer, audience, hs256_sealed) =
        (r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(6)?);
    Ok((|| {
        Ok(IssuerRow {
            id,
            tenant: TenantId::parse(&tenant).map_err(stored_id)?,
            name,
            issuer,
            audience,
            settings: serde_json::from_str(&settings).map_err(json_err)?,
            hs256_sealed,
            created_at: from_us(at),
        })
    })())
}

pub(crate) fn create(conn: &Connection, i: &IssuerRow) -> Result<IssuerRow> {
    let settings = serde_json::to_string(&i.settings).map_err(json_err)?;
    let res = conn.execute(
        &format!("INSERT INTO issuers ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![
            i.id,
            i.tenant.as_str(),
            i.name,
            i.issuer,
            i.audience,
            settings,
            i.hs256_sealed,
            us(i.created_at)
        ],
    );
    match res {
        Ok(_) => get(conn, &i.tenant, &i.name),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            Err(StoreError::NotFound { what: "tenant" })
        }
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Conflict(
                "the tenant has an issuer with this name, or with this issuer and audience, already".into(),
            ))
        }
        Err(e) => Err(be(e)),
    }
}

pub(crate) fn get(conn: &Connection, tenant: &TenantId, name: &str) -> Result<IssuerRow> {
    conn.prepare_cached(&format!(
        "SELECT {COLS} FROM issuers WHERE tenant_id = ?1 AND name = ?2"
    ))
    .map_err(be)?
    .query_row(params![tenant.as_str(), name], from_row)
    .optional()
    .map_err(be)?
    .ok_or(StoreError::NotFound { what: "issuer" })?
}

fn many(conn: &Connection, sql: &str, arg: &str) -> Result<Vec<IssuerRow>> {
    let mut s = conn.prepare_cached(sql).map_err(be)?;
    let rows = s.query_map([arg], from_row).map_err(be)?;
    rows.map(|r| r.map_err(be)?).collect()
}

pub(crate) fn list(conn: &Connection, tenant: &TenantId) -> Result<Vec<IssuerRow>> {
    many(
        conn,
        &format!("SELECT {COLS} FROM issuers WHERE tenant_id = ?1 ORDER BY name"),
        tenant.as_str(),
    )
}

pub(crate) fn find(conn: &Connection, tenant: &TenantId, issuer: &str) -> Result<Vec<IssuerRow>> {
    let mut s = conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM issuers WHERE tenant_id = ?1 AND issuer = ?2 ORDER BY id"
        ))
        .map_err(be)?;
    let rows = s
        .query_map(params![tenant.as_str(), issuer], from_row)
        .map_err(be)?;
    rows.map(|r| r.map_err(be)?).collect()
}

pub(crate) fn delete(conn: &Connection, tenant: &TenantId, name: &str) -> Result<()> {
    let n = conn
        .execute(
            "DELETE FROM issuers WHERE tenant_id = ?1 AND name = ?2",
            params![tenant.as_str(), name],
        )
        .map_err(be)?;
    if n == 0 {
        return Err(StoreError::NotFound { what: "issuer" });
    }
    Ok(())
}

impl Issuers for SqliteStore {
    fn issuer_create(&self, i: IssuerRow, audit: Audit<IssuerRow>) -> Result<IssuerRow> {
        self.audited(audit, move |conn| create(conn, &i))
    }

    fn issuer_get(&self, tenant: &TenantId, name: &str) -> Result<IssuerRow> {
        self.read(|conn| get(conn, tenant, name))
    }

    fn issuer_list(&self, tenant: &TenantId) -> Result<Vec<IssuerRow>> {
        self.read(|conn| list(conn, tenant))
    }

    fn issuer_find(&self, tenant: &TenantId, issuer: &str) -> Result<Vec<IssuerRow>> {
        self.read(|conn| find(conn, tenant, issuer))
    }

    fn issuer_delete(&self, tenant: &TenantId, name: &str, audit: Audit<()>) -> Result<()> {
        let (tenant, name) = (tenant.clone(), name.to_owned());
        self.audited(audit, move |conn| delete(conn, &tenant, &name))
    }
}

//! Login-sync issuers, each a tenant's own.
use crate::pool::Sql;
use crate::{be, get, is_unique_violation, json_err, tenant_id, PostgresStore, Result};
use muster_core::TenantId;
use muster_store::{Audit, IssuerRow, Issuers, StoreError};
use postgres::error::SqlState;
use postgres::{GenericClient, Row};

macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, name, issuer, audience, settings, hs256_sealed, created_at \
             FROM issuers ",
            $rest
        )
    };
}

fn to_issuer(r: &Row) -> Result<IssuerRow> {
    let tenant: String = get(r, 1)?;
    let settings: serde_json::Value = get(r, 5)?;
    Ok(IssuerRow {
        id: get(r, 0)?,
        tenant: tenant_id(&tenant)?,
        name: get(r, 2)?,
        issuer: get(r, 3)?,
        audience: get(r, 4)?,
        settings: serde_json::from_value(settings).map_err(json_err)?,
        hs256_sealed: get(r, 6)?,
        created_at: get(r, 7)?,
    })
}

pub(crate) fn create<C: GenericClient>(s: &mut Sql<'_, C>, i: &IssuerRow) -> Result<()> {
    let settings = serde_json::to_value(&i.settings).map_err(json_err)?;
    let res = s.try_exec(
        "INSERT INTO issuers (id, tenant_id, name, issuer, audience, settings, hs256_sealed, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &i.id,
            &i.tenant.as_str(),
            &i.name,
            &i.issuer,
            &i.audience,
            &settings,
            &i.hs256_sealed,
            &i.created_at,
        ],
    )?;
    match res {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(
            "the tenant has an issuer with this name, or with this issuer and audience, already"
                .into(),
        )),
        Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            Err(StoreError::NotFound { what: "tenant" })
        }
        Err(e) => Err(be(e)),
    }
}

pub(crate) fn get_one<C: GenericClient>(
    s: &mut Sql<'_, C>,
    tenant: &TenantId,
    name: &str,
) -> Result<IssuerRow> {
    s.opt(
        select!("WHERE tenant_id = $1 AND name = $2"),
        &[&tenant.as_str(), &name],
    )?
    .map(|r| to_issuer(&r))
    .transpose()?
    .ok_or(StoreError::NotFound { what: "issuer" })
}

pub(crate) fn list<C: GenericClient>(
    s: &mut Sql<'_, C>,
    tenant: &TenantId,
) -> Result<Vec<IssuerRow>> {
    s.query(
        select!("WHERE tenant_id = $1 ORDER BY name"),
        &[&tenant.as_str()],
    )?
    .iter()
    .map(to_issuer)
    .collect()
}

pub(crate) fn find<C: GenericClient>(
    s: &mut Sql<'_, C>,
    tenant: &TenantId,
    issuer: &str,
) -> Result<Vec<IssuerRow>> {
    s.query(
        select!("WHERE tenant_id = $1 AND issuer = $2 ORDER BY id"),
        &[&tenant.as_str(), &issuer],
    )?
    .iter()
    .map(to_issuer)
    .collect()
}

pub(crate) fn delete<C: GenericClient>(
    s: &mut Sql<'_, C>,
    tenant: &TenantId,
    name: &str,
) -> Result<()> {
    let n = s.exec(
        "DELETE FROM issuers WHERE tenant_id = $1 AND name = $2",
        &[&tenant.as_str(), &name],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound { what: "issuer" });
    }
    Ok(())
}

impl Issuers for PostgresStore {
    fn issuer_create(&self, i: IssuerRow, audit: Audit<IssuerRow>) -> Result<IssuerRow> {
        self.audited(audit, |s| {
            create(s, &i)?;
            get_one(s, &i.tenant, &i.name)
        })
    }

    fn issuer_get(&self, tenant: &TenantId, name: &str) -> Result<IssuerRow> {
        self.pool.run(|s| get_one(s, tenant, name))
    }

    fn issuer_list(&self, tenant: &TenantId) -> Result<Vec<IssuerRow>> {
        self.pool.run(|s| list(s, tenant))
    }

    fn issuer_find(&self, tenant: &TenantId, issuer: &str) -> Result<Vec<IssuerRow>> {
        self.pool.run(|s| find(s, tenant, issuer))
    }

    fn issuer_delete(&self, tenant: &TenantId, name: &str, audit: Audit<()>) -> Result<()> {
        self.audited(audit, |s| delete(s, tenant, name))
    }
}

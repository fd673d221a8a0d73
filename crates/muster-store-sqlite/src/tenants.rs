//! [`Tenants`] on SQLite. Tenants, and the first tenant and admin of an empty
//! database.
use crate::*;
use muster_store::shared;

impl Tenants for SqliteStore {
    fn bootstrap_admin(
        &self,
        admin_token: SecretDigest,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.writer.write(move |conn| {
            let n: i64 = conn
                .query_row("SELECT count(*) FROM tenants", [], |r| r.get(0))
                .map_err(be)?;
            if n > 0 {
                return Ok(false);
            }
            let tenant = TenantId::default_tenant();
            conn.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![tenant.as_str(), shared::BOOTSTRAP_TENANT_NAME, us(now)],
            )
            .map_err(be)?;
            let pid = insert_principal(conn, &shared::bootstrap_admin_client(), now)?;
            insert_admin_token(
                conn,
                &shared::bootstrap_token(admin_token, pid, expires_at, now),
            )?;
            let mut head = audit_head(conn, tenant.as_str())?;
            audit_insert(conn, &mut head, &shared::bootstrap_entry(now))?;
            Ok(true)
        })
    }

    fn tenant_create(
        &self,
        t: NewTenant,
        now: DateTime<Utc>,
        audit: Audit<TenantCreated>,
    ) -> Result<TenantCreated> {
        let NewTenant {
            id,
            name,
            mut admin,
            mut token,
        } = t;
        self.audited(audit, move |conn| {
            let res = conn.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![id.as_str(), name, us(now)],
            );
            match res {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    return Err(StoreError::Conflict(format!(
                        "tenant '{id}' exists already"
                    )))
                }
                Err(e) => return Err(be(e)),
            }
            admin.tenant = id.clone();
            let admin_id = insert_principal(conn, &admin, now)?;
            let admin = load_principal(conn, "id = ?1", &admin_id)?
                .ok_or(StoreError::NotFound { what: "admin" })?;
            token.principal_id = admin_id;
            insert_admin_token(conn, &token)?;
            let token = crate::principals::admin_token_rows(conn, "t.id = ?1", [&token.id])?
                .pop()
                .ok_or(StoreError::NotFound {
                    what: "admin token",
                })?;
            Ok(TenantCreated {
                tenant: TenantRow {
                    id,
                    name,
                    created_at: from_us(us(now)),
                },
                admin,
                token,
            })
        })
    }

    fn tenant_list(&self) -> Result<Vec<TenantRow>> {
        self.read(|conn| {
            let mut s = conn
                .prepare_cached("SELECT id, name, created_at FROM tenants ORDER BY id")
                .map_err(be)?;
            let rows = s.query_map([], tenant_row).map_err(be)?;
            rows.map(|r| to_tenant(r.map_err(be)?)).collect()
        })
    }
}

fn tenant_row(r: &Row) -> rusqlite::Result<(String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn to_tenant((id, name, at): (String, String, i64)) -> Result<TenantRow> {
    Ok(TenantRow {
        id: TenantId::parse(&id).map_err(stored_id)?,
        name,
        created_at: from_us(at),
    })
}

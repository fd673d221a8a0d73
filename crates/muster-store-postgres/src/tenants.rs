//! [`Tenants`] on PostgreSQL. Tenants, and the first tenant and admin of an
//! empty database.
use crate::*;
use muster_store::shared;

impl Tenants for PostgresStore {
    fn bootstrap_admin(
        &self,
        admin_token: SecretDigest,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.pool.write(|s| {
            // Instances starting together take turns; the first one creates.
            s.exec("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_BOOTSTRAP])?;
            let n: i64 = get(&s.one("SELECT count(*) FROM tenants", &[])?, 0)?;
            if n > 0 {
                return Ok(false);
            }
            let tenant = TenantId::default_tenant();
            s.exec(
                "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
                &[&tenant.as_str(), &shared::BOOTSTRAP_TENANT_NAME, &now],
            )?;
            let pid = insert_principal(s, &shared::bootstrap_admin_client(), now)?;
            insert_admin_token(
                s,
                &shared::bootstrap_token(admin_token, pid, expires_at, now),
            )?;
            apply::audit_append_one(s, &shared::bootstrap_entry(now))?;
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
        self.audited(audit, move |s| {
            let res = s.try_exec(
                "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
                &[&id.as_str(), &name, &now],
            )?;
            match res {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(format!(
                        "tenant '{id}' exists already"
                    )))
                }
                Err(e) => return Err(be(e)),
            }
            admin.tenant = id.clone();
            let admin_id = insert_principal(s, &admin, now)?;
            let admin = crate::principals::principal_by_id(s, &admin_id)?
                .ok_or(StoreError::NotFound { what: "admin" })?;
            token.principal_id = admin_id;
            insert_admin_token(s, &token)?;
            let r = s.one(
                concat!(admin_token_select!(), " AND t.id = $1"),
                &[&token.id],
            )?;
            let token = crate::principals::to_admin_token(&r)?;
            Ok(TenantCreated {
                tenant: TenantRow {
                    id,
                    name,
                    created_at: micros(now),
                },
                admin,
                token,
            })
        })
    }

    fn tenant_list(&self) -> Result<Vec<TenantRow>> {
        self.pool.run(|s| {
            s.query("SELECT id, name, created_at FROM tenants ORDER BY id", &[])?
                .iter()
                .map(to_tenant)
                .collect()
        })
    }
}

fn to_tenant(r: &Row) -> Result<TenantRow> {
    Ok(TenantRow {
        id: tenant_id(get(r, 0)?)?,
        name: get(r, 1)?,
        created_at: get(r, 2)?,
    })
}

//! [`Scim`] on SQLite: the indexed lookups of SCIM filters (expression
//! indexes over `person_data`, found back through `people(data_id)`),
//! paging, SCIM ids, Groups and SCIM tokens. docs/scim.md.
use crate::people::{person_from_row, PERSON_COLS};
use crate::principals::named_token_rows;
use crate::*;

/// The `WHERE` term and the bound value of an indexed lookup; each term
/// repeats its index's expression and partial condition, so SQLite uses
/// the index.
fn lookup_term(by: &ScimLookup) -> (&'static str, String) {
    match by {
        ScimLookup::Id(v) => ("p.scim_id = ?2", v.clone()),
        ScimLookup::UserName(v) => (
            "lower(json_extract(d.attrs, '$.user_name')) = lower(?2) \
             AND json_extract(d.attrs, '$.user_name') IS NOT NULL",
            v.clone(),
        ),
        ScimLookup::Email(v) => (
            "lower(json_extract(d.attrs, '$.email')) = lower(?2) \
             AND json_extract(d.attrs, '$.email') IS NOT NULL",
            v.clone(),
        ),
        ScimLookup::EmployeeNumber(v) => (
            "lower(json_extract(d.attrs, '$.employee_number')) = lower(?2) \
             AND json_extract(d.attrs, '$.employee_number') IS NOT NULL",
            v.clone(),
        ),
        ScimLookup::ExternalId(v) => (
            "json_extract(d.attrs, '$.scim_external_id') = ?2 \
             AND json_extract(d.attrs, '$.scim_external_id') IS NOT NULL",
            v.clone(),
        ),
    }
}

fn people_where(
    conn: &Connection,
    where_: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<PersonRow>> {
    people_from(
        conn,
        "people p JOIN person_data d ON d.id = p.data_id",
        where_,
        args,
    )
}

/// [`people_where`] with its own `FROM`: an attribute lookup names
/// `person_data d CROSS JOIN people p`, so that SQLite starts from the
/// expression index rather than walking the tenant's people in order.
fn people_from(
    conn: &Connection,
    from: &str,
    where_: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<PersonRow>> {
    let sql = format!("SELECT {PERSON_COLS} FROM {from} WHERE p.scim_id IS NOT NULL AND {where_}");
    let mut s = conn.prepare_cached(&sql).map_err(be)?;
    let rows = s.query_map(args, person_from_row).map_err(be)?;
    rows.map(|r| r.map_err(be)?.decode()).collect()
}

const GROUP_COLS: &str =
    "tenant_id, id, display_name, external_id, version, created_at, updated_at";

fn group_from_row(r: &Row) -> rusqlite::Result<(String, GroupRow)> {
    let tenant: String = r.get(0)?;
    Ok((
        tenant,
        GroupRow {
            tenant: TenantId::default_tenant(),
            id: r.get(1)?,
            display_name: r.get(2)?,
            external_id: r.get(3)?,
            version: r.get(4)?,
            created_at: from_us(r.get(5)?),
            updated_at: from_us(r.get(6)?),
        },
    ))
}

fn groups_where(
    conn: &Connection,
    where_: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<GroupRow>> {
    let sql = format!("SELECT {GROUP_COLS} FROM scim_groups WHERE {where_} ORDER BY display_name");
    let mut s = conn.prepare_cached(&sql).map_err(be)?;
    let rows = s.query_map(args, group_from_row).map_err(be)?;
    rows.map(|r| {
        let (tenant, mut g) = r.map_err(be)?;
        g.tenant = TenantId::parse(&tenant).map_err(stored_id)?;
        Ok(g)
    })
    .collect()
}

fn group_get(conn: &Connection, tenant: &str, id: &str) -> Result<GroupRow> {
    groups_where(conn, "tenant_id = ?1 AND id = ?2", params![tenant, id])?
        .pop()
        .ok_or(StoreError::NotFound { what: "group" })
}

fn group_conflict(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::NotFound { what: "tenant" }
        }
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict("the tenant has a group with this name already".into())
        }
        e => be(e),
    }
}

impl Scim for SqliteStore {
    fn scim_find(&self, tenant: &TenantId, by: &ScimLookup, limit: u32) -> Result<Vec<PersonRow>> {
        let (term, value) = lookup_term(by);
        let from = match by {
            ScimLookup::Id(_) => "people p JOIN person_data d ON d.id = p.data_id",
            _ => "person_data d CROSS JOIN people p ON d.id = p.data_id",
        };
        self.read(|conn| {
            people_from(
                conn,
                from,
                &format!("p.tenant_id = ?1 AND {term} ORDER BY p.external_id LIMIT ?3"),
                params![tenant.as_str(), value, limit],
            )
        })
    }

    fn scim_page(&self, tenant: &TenantId, offset: u64, limit: u32) -> Result<Vec<PersonRow>> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.read(|conn| {
            // The rows before the page are skipped in the people table
            // alone: skipping the joined rows would read and decode every
            // person before the page.
            people_where(
                conn,
                "p.tenant_id = ?1 AND p.external_id IN (SELECT external_id FROM people \
                 WHERE tenant_id = ?1 AND scim_id IS NOT NULL \
                 ORDER BY external_id LIMIT ?2 OFFSET ?3) ORDER BY p.external_id",
                params![tenant.as_str(), limit, offset],
            )
        })
    }

    fn scim_count(&self, tenant: &TenantId) -> Result<u64> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT count(*) FROM people WHERE tenant_id = ?1 AND scim_id IS NOT NULL",
            )
            .map_err(be)?
            .query_row([tenant.as_str()], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(be)
        })
    }

    fn scim_ids(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<Option<String>>> {
        self.read(|conn| {
            let mut s = conn
                .prepare_cached(
                    "SELECT scim_id FROM people WHERE tenant_id = ?1 AND external_id = ?2",
                )
                .map_err(be)?;
            ids.iter()
                .map(|id| {
                    s.query_row(params![tenant.as_str(), id], |r| r.get(0))
                        .optional()
                        .map(Option::flatten)
                        .map_err(be)
                })
                .collect()
        })
    }

    fn scim_link(
        &self,
        tenant: &TenantId,
        id: &ExternalId,
        link: bool,
        audit: Audit<PersonRow>,
    ) -> Result<PersonRow> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.writer.write(move |conn| {
            let sql = if link {
                concat!(
                    "UPDATE people SET scim_id = ",
                    new_scim_id!(),
                    " WHERE tenant_id = ?1 AND external_id = ?2 AND scim_id IS NULL"
                )
            } else {
                "UPDATE people SET scim_id = NULL \
                 WHERE tenant_id = ?1 AND external_id = ?2 AND scim_id IS NOT NULL"
            };
            let changed = conn
                .prepare_cached(sql)
                .map_err(be)?
                .execute(params![tenant.as_str(), id.as_str()])
                .map_err(be)?;
            let sql = format!(
                "SELECT {PERSON_COLS} FROM people p JOIN person_data d ON d.id = p.data_id \
                 WHERE p.tenant_id = ?1 AND p.external_id = ?2"
            );
            let row = conn
                .prepare_cached(&sql)
                .map_err(be)?
                .query_row(params![tenant.as_str(), id.as_str()], person_from_row)
                .optional()
                .map_err(be)?
                .ok_or(StoreError::NotFound { what: "person" })?
                .decode()?;
            if changed > 0 {
                append_entries(conn, &audit(&row))?;
            }
            Ok(row)
        })
    }

    fn scim_role_members(
        &self,
        tenant: &TenantId,
        role: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PersonRow>> {
        self.read(|conn| {
            people_where(
                conn,
                "p.tenant_id = ?1 AND (?3 IS NULL OR p.external_id > ?3) \
                 AND EXISTS (SELECT 1 FROM json_each(d.roles) r WHERE r.value = ?2) \
                 ORDER BY p.external_id LIMIT ?4",
                params![tenant.as_str(), role, after, limit],
            )
        })
    }

    fn scim_group_create(&self, g: GroupRow, audit: Audit<GroupRow>) -> Result<GroupRow> {
        self.audited(audit, move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO scim_groups ({GROUP_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))
            .map_err(be)?
            .execute(params![
                g.tenant.as_str(),
                g.id,
                g.display_name,
                g.external_id,
                g.version,
                us(g.created_at),
                us(g.updated_at)
            ])
            .map_err(group_conflict)?;
            group_get(conn, g.tenant.as_str(), &g.id)
        })
    }

    fn scim_group_get(&self, tenant: &TenantId, id: &str) -> Result<GroupRow> {
        self.read(|conn| group_get(conn, tenant.as_str(), id))
    }

    fn scim_group_list(&self, tenant: &TenantId) -> Result<Vec<GroupRow>> {
        self.read(|conn| groups_where(conn, "tenant_id = ?1", [tenant.as_str()]))
    }

    fn scim_group_update(
        &self,
        tenant: &TenantId,
        id: &str,
        change: GroupUpdate,
        audit: Audit<GroupRow>,
    ) -> Result<GroupRow> {
        let (tenant, id) = (tenant.as_str().to_owned(), id.to_owned());
        self.audited(audit, move |conn| {
            let now = group_get(conn, &tenant, &id)?;
            if let Some(v) = change.if_version {
                if v != now.version {
                    return Err(StoreError::Conflict(
                        "the group has changed since that version".into(),
                    ));
                }
            }
            let external_id = change.external_id.unwrap_or(now.external_id);
            let name = change.display_name.unwrap_or(now.display_name);
            conn.prepare_cached(
                "UPDATE scim_groups SET display_name = ?3, external_id = ?4, \
                 version = version + 1, updated_at = ?5 WHERE tenant_id = ?1 AND id = ?2",
            )
            .map_err(be)?
            .execute(params![tenant, id, name, external_id, us(change.now)])
            .map_err(group_conflict)?;
            group_get(conn, &tenant, &id)
        })
    }

    fn scim_group_delete(
        &self,
        tenant: &TenantId,
        id: &str,
        audit: Audit<GroupRow>,
    ) -> Result<GroupRow> {
        let (tenant, id) = (tenant.as_str().to_owned(), id.to_owned());
        self.audited(audit, move |conn| {
            let g = group_get(conn, &tenant, &id)?;
            conn.prepare_cached("DELETE FROM scim_groups WHERE tenant_id = ?1 AND id = ?2")
                .map_err(be)?
                .execute(params![tenant, id])
                .map_err(be)?;
            Ok(g)
        })
    }

    fn scim_token_rotate(
        &self,
        t: NewScimToken,
        audit: Audit<AdminTokenRow>,
    ) -> Result<AdminTokenRow> {
        self.audited(audit, move |conn| {
            let principal: Option<String> = conn
                .query_row(
                    "SELECT id FROM principals WHERE client_id = ?1 AND tenant_id = ?2 \
                     AND kind = 'client'",
                    params![t.client_id, t.tenant.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(be)?;
            let principal = principal.ok_or(StoreError::NotFound { what: "client" })?;
            let until = us(t.previous_until);
            conn.prepare_cached(
                "UPDATE tokens SET expires_at = ?3 WHERE principal_id = ?1 AND name = ?2 \
                 AND id IS NOT NULL AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > ?3)",
            )
            .map_err(be)?
            .execute(params![principal, SCIM_TOKEN_NAME, until])
            .map_err(be)?;
            if let Some(key) = &t.key {
                conn.prepare_cached("UPDATE principals SET scim_key = ?2 WHERE id = ?1")
                    .map_err(be)?
                    .execute(params![principal, key])
                    .map_err(be)?;
            }
            let new = NewAdminToken {
                id: t.id.clone(),
                digest: t.digest,
                principal_id: principal,
                name: SCIM_TOKEN_NAME.into(),
                created_at: t.created_at,
                expires_at: None,
            };
            insert_named_token(conn, &new, SCIM_TOKEN_SCOPE)?;
            named_token_rows(conn, PrincipalKind::Client, "t.id = ?1", [&t.id])?
                .pop()
                .ok_or(StoreError::NotFound { what: "token" })
        })
    }
}

//! [`Scim`] on PostgreSQL: the indexed lookups of SCIM filters (expression
//! indexes over `people.attrs`), paging, SCIM ids, Groups and SCIM tokens.
//! docs/scim.md.
use crate::people::to_person;
use crate::principals::to_admin_token;
use crate::*;

/// People with a SCIM id where the condition holds, in external id order.
macro_rules! scim_people {
    ($cond:literal) => {
        concat!(
            person_select!("WHERE tenant_id = $1 AND scim_id IS NOT NULL AND "),
            $cond
        )
    };
}

macro_rules! group_select {
    ($rest:literal) => {
        concat!(
            "SELECT tenant_id, id, display_name, external_id, version, created_at, updated_at \
             FROM scim_groups ",
            $rest
        )
    };
}

fn to_group(r: &Row) -> Result<GroupRow> {
    Ok(GroupRow {
        tenant: tenant_id(get(r, 0)?)?,
        id: get(r, 1)?,
        display_name: get(r, 2)?,
        external_id: get(r, 3)?,
        version: get(r, 4)?,
        created_at: get(r, 5)?,
        updated_at: get(r, 6)?,
    })
}

fn group_get<C: GenericClient>(s: &mut Sql<'_, C>, tenant: &str, id: &str) -> Result<GroupRow> {
    s.opt(
        group_select!("WHERE tenant_id = $1 AND id = $2"),
        &[&tenant, &id],
    )?
    .map(|r| to_group(&r))
    .transpose()?
    .ok_or(StoreError::NotFound { what: "group" })
}

/// A group write's outcome: a taken name is a conflict.
fn group_written(res: std::result::Result<u64, postgres::Error>) -> Result<u64> {
    match res {
        Ok(n) => Ok(n),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(
            "the tenant has a group with this name already".into(),
        )),
        Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            Err(StoreError::NotFound { what: "tenant" })
        }
        Err(e) => Err(be(e)),
    }
}

impl Scim for PostgresStore {
    fn scim_find(&self, tenant: &TenantId, by: &ScimLookup, limit: u32) -> Result<Vec<PersonRow>> {
        let (sql, value) = match by {
            ScimLookup::Id(v) => (
                scim_people!("scim_id = $2 ORDER BY external_id LIMIT $3"),
                v,
            ),
            ScimLookup::UserName(v) => (
                scim_people!(
                    "attrs ? 'user_name' AND lower(attrs->>'user_name') = lower($2) \
                     ORDER BY external_id LIMIT $3"
                ),
                v,
            ),
            ScimLookup::Email(v) => (
                scim_people!(
                    "attrs ? 'email' AND lower(attrs->>'email') = lower($2) \
                     ORDER BY external_id LIMIT $3"
                ),
                v,
            ),
            ScimLookup::EmployeeNumber(v) => (
                scim_people!(
                    "attrs ? 'employee_number' AND lower(attrs->>'employee_number') = lower($2) \
                     ORDER BY external_id LIMIT $3"
                ),
                v,
            ),
            ScimLookup::ExternalId(v) => (
                scim_people!(
                    "attrs ? 'scim_external_id' AND (attrs->>'scim_external_id') = $2 \
                     ORDER BY external_id LIMIT $3"
                ),
                v,
            ),
        };
        self.pool.run(|s| {
            s.query(sql, &[&tenant.as_str(), &value.as_str(), &i64::from(limit)])?
                .iter()
                .map(to_person)
                .collect()
        })
    }

    fn scim_page(&self, tenant: &TenantId, offset: u64, limit: u32) -> Result<Vec<PersonRow>> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.pool.run(|s| {
            s.query(
                scim_people!("true ORDER BY external_id LIMIT $2 OFFSET $3"),
                &[&tenant.as_str(), &i64::from(limit), &offset],
            )?
            .iter()
            .map(to_person)
            .collect()
        })
    }

    fn scim_count(&self, tenant: &TenantId) -> Result<u64> {
        self.pool.run(|s| {
            let n: i64 = get(
                &s.one(
                    "SELECT count(*) FROM people WHERE tenant_id = $1 AND scim_id IS NOT NULL",
                    &[&tenant.as_str()],
                )?,
                0,
            )?;
            Ok(n.max(0) as u64)
        })
    }

    fn scim_ids(&self, tenant: &TenantId, ids: &[&str]) -> Result<Vec<Option<String>>> {
        let list: Vec<&str> = ids.to_vec();
        self.pool.run(|s| {
            let rows = s.query(
                "SELECT external_id, scim_id FROM people \
                 WHERE tenant_id = $1 AND external_id = ANY($2)",
                &[&tenant.as_str(), &list],
            )?;
            let mut found = std::collections::HashMap::new();
            for r in &rows {
                let id: String = get(r, 0)?;
                let scim: Option<String> = get(r, 1)?;
                found.insert(id, scim);
            }
            Ok(ids
                .iter()
                .map(|id| found.get(*id).cloned().flatten())
                .collect())
        })
    }

    fn scim_link(
        &self,
        tenant: &TenantId,
        id: &ExternalId,
        link: bool,
        audit: Audit<PersonRow>,
    ) -> Result<PersonRow> {
        self.pool.write(|s| {
            let changed = if link {
                s.exec(
                    "UPDATE people SET scim_id = muster_uuid_v7() \
                     WHERE tenant_id = $1 AND external_id = $2 AND scim_id IS NULL",
                    &[&tenant.as_str(), &id.as_str()],
                )?
            } else {
                s.exec(
                    "UPDATE people SET scim_id = NULL \
                     WHERE tenant_id = $1 AND external_id = $2 AND scim_id IS NOT NULL",
                    &[&tenant.as_str(), &id.as_str()],
                )?
            };
            let row = s
                .opt(
                    person_select!("WHERE tenant_id = $1 AND external_id = $2"),
                    &[&tenant.as_str(), &id.as_str()],
                )?
                .map(|r| to_person(&r))
                .transpose()?
                .ok_or(StoreError::NotFound { what: "person" })?;
            if changed > 0 {
                for d in audit(&row) {
                    apply::audit_append_one(s, &d)?;
                }
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
        self.pool.run(|s| {
            s.query(
                scim_people!(
                    "roles ? $2 AND ($3::text IS NULL OR external_id > $3) \
                     ORDER BY external_id LIMIT $4"
                ),
                &[&tenant.as_str(), &role, &after, &i64::from(limit)],
            )?
            .iter()
            .map(to_person)
            .collect()
        })
    }

    fn scim_group_create(&self, g: GroupRow, audit: Audit<GroupRow>) -> Result<GroupRow> {
        self.audited(audit, |s| {
            let res = s.try_exec(
                "INSERT INTO scim_groups (tenant_id, id, display_name, external_id, version, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &g.tenant.as_str(),
                    &g.id,
                    &g.display_name,
                    &g.external_id,
                    &g.version,
                    &g.created_at,
                    &g.updated_at,
                ],
            )?;
            group_written(res)?;
            group_get(s, g.tenant.as_str(), &g.id)
        })
    }

    fn scim_group_get(&self, tenant: &TenantId, id: &str) -> Result<GroupRow> {
        self.pool.run(|s| group_get(s, tenant.as_str(), id))
    }

    fn scim_group_list(&self, tenant: &TenantId) -> Result<Vec<GroupRow>> {
        self.pool.run(|s| {
            s.query(
                group_select!("WHERE tenant_id = $1 ORDER BY display_name"),
                &[&tenant.as_str()],
            )?
            .iter()
            .map(to_group)
            .collect()
        })
    }

    fn scim_group_update(
        &self,
        tenant: &TenantId,
        id: &str,
        change: GroupUpdate,
        audit: Audit<GroupRow>,
    ) -> Result<GroupRow> {
        self.audited(audit, |s| {
            let now = s
                .opt(
                    group_select!("WHERE tenant_id = $1 AND id = $2 FOR UPDATE"),
                    &[&tenant.as_str(), &id],
                )?
                .map(|r| to_group(&r))
                .transpose()?
                .ok_or(StoreError::NotFound { what: "group" })?;
            if let Some(v) = change.if_version {
                if v != now.version {
                    return Err(StoreError::Conflict(
                        "the group has changed since that version".into(),
                    ));
                }
            }
            let external_id = change.external_id.unwrap_or(now.external_id);
            let name = change.display_name.unwrap_or(now.display_name);
            let res = s.try_exec(
                "UPDATE scim_groups SET display_name = $3, external_id = $4, \
                 version = version + 1, updated_at = $5 WHERE tenant_id = $1 AND id = $2",
                &[&tenant.as_str(), &id, &name, &external_id, &change.now],
            )?;
            group_written(res)?;
            group_get(s, tenant.as_str(), id)
        })
    }

    fn scim_group_delete(
        &self,
        tenant: &TenantId,
        id: &str,
        audit: Audit<GroupRow>,
    ) -> Result<GroupRow> {
        self.audited(audit, |s| {
            let g = group_get(s, tenant.as_str(), id)?;
            s.exec(
                "DELETE FROM scim_groups WHERE tenant_id = $1 AND id = $2",
                &[&tenant.as_str(), &id],
            )?;
            Ok(g)
        })
    }

    fn scim_token_rotate(
        &self,
        t: NewScimToken,
        audit: Audit<AdminTokenRow>,
    ) -> Result<AdminTokenRow> {
        self.audited(audit, |s| {
            let principal: String = get(
                &s.opt(
                    "SELECT id FROM principals WHERE client_id = $1 AND tenant_id = $2 \
                     AND kind = 'client' FOR UPDATE",
                    &[&t.client_id, &t.tenant.as_str()],
                )?
                .ok_or(StoreError::NotFound { what: "client" })?,
                0,
            )?;
            s.exec(
                "UPDATE tokens SET expires_at = $3 WHERE principal_id = $1 AND name = $2 \
                 AND id IS NOT NULL AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $3)",
                &[&principal, &SCIM_TOKEN_NAME, &t.previous_until],
            )?;
            if let Some(key) = &t.key {
                s.exec(
                    "UPDATE principals SET scim_key = $2 WHERE id = $1",
                    &[&principal, key],
                )?;
            }
            let new = NewAdminToken {
                id: t.id.clone(),
                digest: t.digest,
                principal_id: principal,
                name: SCIM_TOKEN_NAME.into(),
                created_at: t.created_at,
                expires_at: None,
            };
            insert_named_token(s, &new, SCIM_TOKEN_SCOPE)?;
            to_admin_token(&s.one(concat!(named_token_select!(), " AND t.id = $1"), &[&t.id])?)
        })
    }
}

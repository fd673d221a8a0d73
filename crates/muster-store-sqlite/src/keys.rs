//! [`Keys`] on SQLite. Tenant keys (decryption and sender verification) and
//! clients' intake policies.
use crate::*;

impl Keys for SqliteStore {
    fn intake_policy_get(&self, principal_id: &str) -> Result<IntakePolicy> {
        self.read(|conn| {
            let text: Option<String> = conn
                .prepare_cached("SELECT policy FROM intake_policies WHERE principal_id = ?1")
                .map_err(be)?
                .query_row([principal_id], |r| r.get(0))
                .optional()
                .map_err(be)?;
            match text {
                Some(t) => serde_json::from_str(&t).map_err(json_err),
                None => Ok(IntakePolicy::default()),
            }
        })
    }

    fn intake_policy_put(
        &self,
        principal_id: &str,
        p: &IntakePolicy,
        audit: Audit<()>,
    ) -> Result<()> {
        let (id, text) = (
            principal_id.to_owned(),
            serde_json::to_string(p).map_err(json_err)?,
        );
        self.audited(audit, move |conn| {
            let res = conn.execute(
                "INSERT INTO intake_policies (principal_id, policy) VALUES (?1, ?2) \
                 ON CONFLICT (principal_id) DO UPDATE SET policy = excluded.policy",
                params![id, text],
            );
            match res {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::NotFound { what: "client" })
                }
                Err(e) => Err(be(e)),
            }
        })
    }

    fn key_create(&self, k: KeyRow, audit: Audit<KeyRow>) -> Result<KeyRow> {
        self.audited(audit, move |conn| insert_key(conn, &k))
    }

    fn key_rotate(
        &self,
        new: KeyRow,
        old: &str,
        now: DateTime<Utc>,
        audit: Audit<KeyRotation>,
    ) -> Result<KeyRotation> {
        let old = old.to_owned();
        self.audited(audit, move |conn| {
            if let Some(refused) = rotation_refused(&key_by_id(conn, &new.tenant, &old)?) {
                return Err(refused);
            }
            let old = update_key_state(conn, &new.tenant, &old, KeyState::DecryptOnly, now)?;
            let new = insert_key(conn, &new)?;
            Ok(KeyRotation { new, old })
        })
    }

    fn key_get(&self, tenant: &TenantId, id: &str) -> Result<KeyRow> {
        self.read(|conn| key_by_id(conn, tenant, id))
    }

    fn key_list(&self, tenant: &TenantId) -> Result<Vec<KeyRow>> {
        self.read(|conn| {
            let sql =
                format!("SELECT {KEY_COLS} FROM keys WHERE tenant_id = ?1 ORDER BY created_at, id");
            let mut s = conn.prepare_cached(&sql).map_err(be)?;
            let rows = s.query_map([tenant.as_str()], key_from_row).map_err(be)?;
            rows.map(|r| r.map_err(be)?).collect()
        })
    }

    fn key_set_state(
        &self,
        tenant: &TenantId,
        id: &str,
        state: KeyState,
        now: DateTime<Utc>,
        audit: Audit<KeyRow>,
    ) -> Result<KeyRow> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.audited(audit, move |conn| {
            update_key_state(conn, &tenant, &id, state, now)
        })
    }
}

fn insert_key(conn: &Connection, k: &KeyRow) -> Result<KeyRow> {
    let ids = serde_json::to_string(&k.key_ids).map_err(json_err)?;
    let res = conn.execute(
        "INSERT INTO keys (id, tenant_id, kind, algorithm, purpose, key_ids, public_key, \
         sealed_secret, state, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![
            k.id,
            k.tenant.as_str(),
            k.kind,
            k.algorithm,
            k.purpose.as_str(),
            ids,
            k.public_key,
            k.sealed_secret,
            k.state.as_str(),
            us(k.created_at)
        ],
    );
    match res {
        Ok(_) => key_by_id(conn, &k.tenant, &k.id),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Conflict(format!(
                "a key with the id '{}' exists already",
                k.id
            )))
        }
        Err(e) => Err(be(e)),
    }
}

fn update_key_state(
    conn: &Connection,
    tenant: &TenantId,
    id: &str,
    state: KeyState,
    now: DateTime<Utc>,
) -> Result<KeyRow> {
    let n = conn
        .execute(
            "UPDATE keys SET state = ?3, updated_at = ?4 WHERE tenant_id = ?1 AND id = ?2",
            params![tenant.as_str(), id, state.as_str(), us(now)],
        )
        .map_err(be)?;
    if n == 0 {
        return Err(StoreError::NotFound { what: "key" });
    }
    key_by_id(conn, tenant, id)
}

fn key_by_id(conn: &Connection, tenant: &TenantId, id: &str) -> Result<KeyRow> {
    let sql = format!("SELECT {KEY_COLS} FROM keys WHERE tenant_id = ?1 AND id = ?2");
    conn.prepare_cached(&sql)
        .map_err(be)?
        .query_row(params![tenant.as_str(), id], key_from_row)
        .optional()
        .map_err(be)?
        .ok_or(StoreError::NotFound { what: "key" })?
}

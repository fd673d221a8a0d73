//! [`Keys`] on PostgreSQL. Tenant keys (decryption and sender verification) and
//! clients' intake policies.
use crate::*;

impl Keys for PostgresStore {
    fn key_create(&self, k: KeyRow, audit: Audit<KeyRow>) -> Result<KeyRow> {
        self.audited(audit, |s| insert_key(s, &k))
    }

    fn key_rotate(
        &self,
        new: KeyRow,
        old: &str,
        now: DateTime<Utc>,
        audit: Audit<KeyRotation>,
    ) -> Result<KeyRotation> {
        self.audited(audit, |s| {
            // The row lock keeps a concurrent rotation or revocation of the
            // old key out until this one commits.
            let locked = s
                .opt(
                    concat!(
                        "SELECT ",
                        key_cols!(),
                        " FROM keys WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
                    ),
                    &[&new.tenant.as_str(), &old],
                )?
                .map(|r| to_key(&r))
                .transpose()?
                .ok_or(StoreError::NotFound { what: "key" })?;
            if let Some(refused) = rotation_refused(&locked) {
                return Err(refused);
            }
            let old = update_key_state(s, &new.tenant, old, KeyState::DecryptOnly, now)?;
            let new = insert_key(s, &new)?;
            Ok(KeyRotation { new, old })
        })
    }

    fn key_get(&self, tenant: &TenantId, id: &str) -> Result<KeyRow> {
        self.pool.run(|s| key_by_id(s, tenant, id))
    }

    fn key_list(&self, tenant: &TenantId) -> Result<Vec<KeyRow>> {
        self.pool.run(|s| {
            s.query(
                concat!(
                    "SELECT ",
                    key_cols!(),
                    " FROM keys WHERE tenant_id = $1 ORDER BY created_at, id"
                ),
                &[&tenant.as_str()],
            )?
            .iter()
            .map(to_key)
            .collect()
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
        self.audited(audit, |s| update_key_state(s, tenant, id, state, now))
    }

    fn intake_policy_get(&self, principal_id: &str) -> Result<IntakePolicy> {
        let row = self.pool.run(|s| {
            s.opt(
                "SELECT policy FROM intake_policies WHERE principal_id = $1",
                &[&principal_id],
            )
        })?;
        match row {
            Some(r) => serde_json::from_value(get::<serde_json::Value>(&r, 0)?).map_err(json_err),
            None => Ok(IntakePolicy::default()),
        }
    }

    fn intake_policy_put(
        &self,
        principal_id: &str,
        p: &IntakePolicy,
        audit: Audit<()>,
    ) -> Result<()> {
        let v = serde_json::to_value(p).map_err(json_err)?;
        self.audited(audit, |s| {
            match s.try_exec(
                "INSERT INTO intake_policies (principal_id, policy) VALUES ($1, $2) \
                 ON CONFLICT (principal_id) DO UPDATE SET policy = excluded.policy",
                &[&principal_id, &v],
            )? {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                    Err(StoreError::NotFound { what: "client" })
                }
                Err(e) => Err(be(e)),
            }
        })
    }
}

fn insert_key<C: GenericClient>(s: &mut Sql<'_, C>, k: &KeyRow) -> Result<KeyRow> {
    let ids = serde_json::to_value(&k.key_ids).map_err(json_err)?;
    let res = s.try_exec(
        "INSERT INTO keys (id, tenant_id, kind, algorithm, purpose, key_ids, public_key, \
         sealed_secret, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        &[
            &k.id,
            &k.tenant.as_str(),
            &k.kind,
            &k.algorithm,
            &k.purpose.as_str(),
            &ids,
            &k.public_key,
            &k.sealed_secret,
            &k.state.as_str(),
            &k.created_at,
        ],
    )?;
    match res {
        Ok(_) => key_by_id(s, &k.tenant, &k.id),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
            "a key with the id '{}' exists already",
            k.id
        ))),
        Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            Err(StoreError::NotFound { what: "tenant" })
        }
        Err(e) => Err(be(e)),
    }
}

fn update_key_state<C: GenericClient>(
    s: &mut Sql<'_, C>,
    tenant: &TenantId,
    id: &str,
    state: KeyState,
    now: DateTime<Utc>,
) -> Result<KeyRow> {
    s.opt(
        concat!(
            "UPDATE keys SET state = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2 \
             RETURNING ",
            key_cols!()
        ),
        &[&tenant.as_str(), &id, &state.as_str(), &now],
    )?
    .map(|r| to_key(&r))
    .transpose()?
    .ok_or(StoreError::NotFound { what: "key" })
}

fn key_by_id<C: GenericClient>(s: &mut Sql<'_, C>, tenant: &TenantId, id: &str) -> Result<KeyRow> {
    s.opt(
        concat!(
            "SELECT ",
            key_cols!(),
            " FROM keys WHERE tenant_id = $1 AND id = $2"
        ),
        &[&tenant.as_str(), &id],
    )?
    .map(|r| to_key(&r))
    .transpose()?
    .ok_or(StoreError::NotFound { what: "key" })
}

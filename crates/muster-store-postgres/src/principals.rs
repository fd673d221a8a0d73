//! [`Principals`] on PostgreSQL. Who calls: admins and integration clients,
//! their tokens (OAuth and admin API), their signing and assertion keys, and
//! the nonces their signatures use once.
use crate::*;

impl Principals for PostgresStore {
    fn client_create(
        &self,
        c: NewClient,
        now: DateTime<Utc>,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow> {
        self.audited(audit, |s| {
            if s.opt("SELECT 1 FROM tenants WHERE id = $1", &[&c.tenant.as_str()])?
                .is_none()
            {
                return Err(StoreError::NotFound { what: "tenant" });
            }
            let id = insert_principal(s, &c, now)?;
            principal_by_id(s, &id)?.ok_or(StoreError::NotFound { what: "client" })
        })
    }

    fn client_get(&self, client_id: &str) -> Result<ClientRow> {
        self.pool
            .run(|s| principal_by_client_id(s, client_id))?
            .ok_or(StoreError::NotFound { what: "client" })
    }

    fn client_list(&self, tenant: &TenantId) -> Result<Vec<ClientRow>> {
        self.pool.run(|s| {
            s.query(
                principal_where!("p.tenant_id = $1 AND p.kind = 'client' ORDER BY p.client_id"),
                &[&tenant.as_str()],
            )?
            .iter()
            .map(|r| to_principal(r, 0))
            .collect()
        })
    }

    fn client_set_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow> {
        self.audited(audit, |s| {
            let id: String = match s.opt(
                "UPDATE principals SET disabled = $2 WHERE client_id = $1 RETURNING id",
                &[&client_id, &disabled],
            )? {
                Some(r) => get(&r, 0)?,
                None => return Err(StoreError::NotFound { what: "client" }),
            };
            if disabled {
                s.exec("DELETE FROM tokens WHERE principal_id = $1", &[&id])?;
            }
            principal_by_id(s, &id)?.ok_or(StoreError::NotFound { what: "client" })
        })
    }

    fn client_set_read_policy(
        &self,
        client_id: &str,
        policy: &ReadPolicy,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow> {
        let value = crate::read_policy_value(policy)?;
        self.audited(audit, |s| {
            let id: String = match s.opt(
                "UPDATE principals SET read_policy = $2 WHERE client_id = $1 RETURNING id",
                &[&client_id, &value],
            )? {
                Some(r) => get(&r, 0)?,
                None => return Err(StoreError::NotFound { what: "client" }),
            };
            principal_by_id(s, &id)?.ok_or(StoreError::NotFound { what: "client" })
        })
    }

    fn client_rotate_secret(
        &self,
        client_id: &str,
        new_secret: SecretDigest,
        old_until: DateTime<Utc>,
        now: DateTime<Utc>,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow> {
        self.audited(audit, |s| {
            // Locks the principal, so two rotations take turns.
            let id: String = match s.opt(
                "SELECT id FROM principals WHERE client_id = $1 FOR UPDATE",
                &[&client_id],
            )? {
                Some(r) => get(&r, 0)?,
                None => return Err(StoreError::NotFound { what: "client" }),
            };
            s.exec(
                "UPDATE client_secrets SET expires_at = $1 \
                 WHERE principal_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
                &[&old_until, &id],
            )?;
            // Secrets that expired long ago serve no purpose.
            s.exec(
                "DELETE FROM client_secrets WHERE principal_id = $1 AND expires_at <= $2",
                &[&id, &now],
            )?;
            s.exec(
                "INSERT INTO client_secrets (principal_id, digest, created_at) VALUES ($1, $2, $3)",
                &[&id, &new_secret.as_slice(), &now],
            )?;
            principal_by_id(s, &id)?.ok_or(StoreError::NotFound { what: "client" })
        })
    }

    fn token_insert(&self, t: NewToken) -> Result<()> {
        self.pool.run(|s| insert_token(s, &t))
    }

    fn token_use(
        &self,
        digest: SecretDigest,
        now: DateTime<Utc>,
    ) -> Result<Result<TokenGrant, TokenRefusal>> {
        self.pool.run(|s| {
            let Some(t) = s.opt(
                concat!(
                    "SELECT ",
                    principal_cols!(),
                    ", t.scope, t.one_time, t.expires_at, t.consumed_at, t.revoked_at, \
                     t.id, t.last_used_at \
                     FROM tokens t JOIN principals p ON p.id = t.principal_id \
                     WHERE t.digest = $1"
                ),
                &[&digest.as_slice()],
            )?
            else {
                return Ok(Err(TokenRefusal::Unknown));
            };
            let principal = to_principal(&t, 0)?;
            let n = crate::PRINCIPAL_COLS;
            let scope: String = get(&t, n)?;
            let one_time: bool = get(&t, n + 1)?;
            let expires: Option<DateTime<Utc>> = get(&t, n + 2)?;
            let consumed: Option<DateTime<Utc>> = get(&t, n + 3)?;
            let revoked: Option<DateTime<Utc>> = get(&t, n + 4)?;
            let admin_id: Option<String> = get(&t, n + 5)?;
            let last_used: Option<DateTime<Utc>> = get(&t, n + 6)?;
            if revoked.is_some() {
                return Ok(Err(TokenRefusal::Revoked.as_told_to(principal.kind)));
            }
            if consumed.is_some() {
                return Ok(Err(TokenRefusal::Consumed));
            }
            if expires.is_some_and(|e| e <= now) {
                return Ok(Err(TokenRefusal::Expired.as_told_to(principal.kind)));
            }
            let stale = last_used
                .is_none_or(|t| now - t >= ChronoDuration::seconds(LAST_USE_RESOLUTION_SECONDS));
            if admin_id.is_some() && stale {
                s.exec(
                    "UPDATE tokens SET last_used_at = $1 WHERE digest = $2",
                    &[&now, &digest.as_slice()],
                )?;
            }
            if principal.disabled {
                return Ok(Err(TokenRefusal::ClientDisabled));
            }
            if one_time {
                // One conditional UPDATE (autocommit): of several racing
                // requests, on any instances, exactly one changes the row.
                let won = s.exec(
                    "UPDATE tokens SET consumed_at = $1 \
                     WHERE digest = $2 AND consumed_at IS NULL AND revoked_at IS NULL",
                    &[&now, &digest.as_slice()],
                )?;
                if won != 1 {
                    return Ok(Err(TokenRefusal::Consumed));
                }
            }
            Ok(Ok(TokenGrant {
                principal,
                scope,
                expires_at: expires,
            }))
        })
    }

    fn token_revoke(&self, digest: SecretDigest, principal_id: &str) -> Result<()> {
        self.pool.run(|s| {
            s.exec(
                "DELETE FROM tokens WHERE digest = $1 AND principal_id = $2",
                &[&digest.as_slice(), &principal_id],
            )?;
            Ok(())
        })
    }

    fn admin_token_create(
        &self,
        t: NewAdminToken,
        audit: Audit<AdminTokenRow>,
    ) -> Result<AdminTokenRow> {
        self.audited(audit, |s| {
            let kind: Option<String> = s
                .opt(
                    "SELECT kind FROM principals WHERE id = $1",
                    &[&t.principal_id],
                )?
                .map(|r| get(&r, 0))
                .transpose()?;
            if kind.as_deref() != Some("admin") {
                return Err(StoreError::NotFound { what: "admin" });
            }
            insert_admin_token(s, &t)?;
            let r = s.one(concat!(admin_token_select!(), " AND t.id = $1"), &[&t.id])?;
            to_admin_token(&r)
        })
    }

    fn admin_token_list(&self, tenant: &TenantId) -> Result<Vec<AdminTokenRow>> {
        self.pool.run(|s| {
            s.query(
                concat!(
                    admin_token_select!(),
                    " AND p.tenant_id = $1 ORDER BY t.created_at, t.id"
                ),
                &[&tenant.as_str()],
            )?
            .iter()
            .map(to_admin_token)
            .collect()
        })
    }

    fn admin_token_revoke(
        &self,
        tenant: &TenantId,
        which: AdminTokenRef,
        now: DateTime<Utc>,
        audit: Audit<AdminTokenRow>,
    ) -> Result<AdminTokenRow> {
        self.audited(audit, |s| {
            let id: Option<String> = match &which {
                AdminTokenRef::Id(id) => Some(id.clone()),
                AdminTokenRef::Digest(d) => s
                    .opt("SELECT id FROM tokens WHERE digest = $1", &[&d.as_slice()])?
                    .map(|r| get::<Option<String>>(&r, 0))
                    .transpose()?
                    .flatten(),
            };
            let Some(id) = id else {
                return Err(StoreError::NotFound {
                    what: "admin token",
                });
            };
            let found = s.opt(
                concat!(admin_token_select!(), " AND t.id = $1 AND p.tenant_id = $2"),
                &[&id, &tenant.as_str()],
            )?;
            if found.is_none() {
                return Err(StoreError::NotFound {
                    what: "admin token",
                });
            }
            s.exec(
                "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                &[&now, &id],
            )?;
            let r = s.one(concat!(admin_token_select!(), " AND t.id = $1"), &[&id])?;
            to_admin_token(&r)
        })
    }

    fn client_keys_get(&self, client_id: &str) -> Result<ClientKeys> {
        self.pool.run(|s| {
            let p = s
                .opt(
                    "SELECT id FROM principals WHERE client_id = $1",
                    &[&client_id],
                )?
                .ok_or(StoreError::NotFound { what: "client" })?;
            let pid: String = get(&p, 0)?;
            client_keys_of(s, &pid)
        })
    }

    fn client_keys_set(
        &self,
        client_id: &str,
        change: ClientKeyChange,
        now: DateTime<Utc>,
        audit: Audit<ClientKeys>,
    ) -> Result<ClientKeys> {
        self.audited(audit, |s| {
            let pid = crate::rotate::lock_client_keys(s, client_id, now)?;
            match &change {
                ClientKeyChange::Hmac(v) => s.exec(
                    // Set or removed outright: no previous key stays valid.
                    "UPDATE client_keys SET hmac_sealed = $2, hmac_previous_sealed = NULL, \
                     hmac_previous_until = NULL WHERE principal_id = $1",
                    &[&pid, v],
                ),
                ClientKeyChange::Ed25519(v) => s.exec(
                    "UPDATE client_keys SET ed25519_public = $2 WHERE principal_id = $1",
                    &[&pid, v],
                ),
                ClientKeyChange::JwtKeys(v) => s.exec(
                    "UPDATE client_keys SET jwt_keys = $2 WHERE principal_id = $1",
                    &[&pid, v],
                ),
            }?;
            client_keys_of(s, &pid)
        })
    }

    fn nonce_record(
        &self,
        principal_id: &str,
        nonce: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.pool.run(|s| {
            // Bounded purge, so no request pays for a backlog.
            s.exec(
                "DELETE FROM auth_nonces WHERE ctid IN \
                 (SELECT ctid FROM auth_nonces WHERE expires_at <= $1 LIMIT 64)",
                &[&now],
            )?;
            // An expired record not purged yet counts as absent.
            let n = s.exec(
                "INSERT INTO auth_nonces (principal_id, nonce, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (principal_id, nonce) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE auth_nonces.expires_at <= $4",
                &[&principal_id, &nonce, &expires_at, &now],
            )?;
            Ok(n == 1)
        })
    }

    fn client_hmac_rotate(
        &self,
        client_id: &str,
        sealed: Vec<u8>,
        previous_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        audit: Audit<ClientKeys>,
    ) -> Result<ClientKeys> {
        self.audited(audit, |s| {
            let pid = rotate::hmac_rotate(s, client_id, &sealed, previous_until, now)?;
            client_keys_of(s, &pid)
        })
    }
}

pub(crate) fn principal_by_id<C: GenericClient>(
    s: &mut Sql<'_, C>,
    id: &str,
) -> Result<Option<ClientRow>> {
    s.opt(principal_where!("p.id = $1"), &[&id])?
        .map(|r| to_principal(&r, 0))
        .transpose()
}

fn principal_by_client_id<C: GenericClient>(
    s: &mut Sql<'_, C>,
    client_id: &str,
) -> Result<Option<ClientRow>> {
    s.opt(principal_where!("p.client_id = $1"), &[&client_id])?
        .map(|r| to_principal(&r, 0))
        .transpose()
}

fn client_keys_of<C: postgres::GenericClient>(
    s: &mut pool::Sql<'_, C>,
    pid: &str,
) -> Result<ClientKeys> {
    Ok(s.opt(
        "SELECT hmac_sealed, ed25519_public, jwt_keys, updated_at, \
             hmac_previous_sealed, hmac_previous_until \
             FROM client_keys WHERE principal_id = $1",
        &[&pid],
    )?
    .map(|r| -> Result<ClientKeys> {
        Ok(ClientKeys {
            hmac_sealed: get(&r, 0)?,
            ed25519_public: get(&r, 1)?,
            jwt_keys: get(&r, 2)?,
            updated_at: Some(get(&r, 3)?),
            hmac_previous_sealed: get(&r, 4)?,
            hmac_previous_until: get(&r, 5)?,
        })
    })
    .transpose()?
    .unwrap_or_default())
}

pub(crate) fn to_admin_token(r: &Row) -> Result<AdminTokenRow> {
    Ok(AdminTokenRow {
        id: get(r, 0)?,
        admin: get(r, 1)?,
        name: get(r, 2)?,
        created_at: get(r, 3)?,
        expires_at: get(r, 4)?,
        last_used_at: get(r, 5)?,
        revoked_at: get(r, 6)?,
    })
}

fn insert_token<C: GenericClient>(s: &mut Sql<'_, C>, t: &NewToken) -> Result<()> {
    s.exec(
        "INSERT INTO tokens (digest, principal_id, scope, one_time, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &t.digest.as_slice(),
            &t.principal_id,
            &t.scope,
            &t.one_time,
            &t.created_at,
            &t.expires_at,
        ],
    )?;
    Ok(())
}

//! [`Principals`] on SQLite. Who calls: admins and integration clients, their
//! tokens (OAuth and admin API), their signing and assertion keys, and the
//! nonces their signatures use once.
use crate::*;

impl Principals for SqliteStore {
    fn client_create(
        &self,
        c: NewClient,
        now: DateTime<Utc>,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow> {
        self.audited(audit, move |conn| {
            let exists: bool = conn
                .query_row(
                    "SELECT 1 FROM tenants WHERE id = ?1",
                    [c.tenant.as_str()],
                    |_| Ok(true),
                )
                .optional()
                .map_err(be)?
                .unwrap_or(false);
            if !exists {
                return Err(StoreError::NotFound { what: "tenant" });
            }
            let id = insert_principal(conn, &c, now)?;
            load_principal(conn, "id = ?1", &id)?.ok_or(StoreError::NotFound { what: "client" })
        })
    }

    fn client_get(&self, client_id: &str) -> Result<ClientRow> {
        self.read(|conn| load_principal(conn, "client_id = ?1", client_id))?
            .ok_or(StoreError::NotFound { what: "client" })
    }

    fn client_list(&self, tenant: &TenantId) -> Result<Vec<ClientRow>> {
        self.read(|conn| {
            let ids: Vec<String> = conn
                .prepare_cached(
                    "SELECT id FROM principals WHERE tenant_id = ?1 AND kind = 'client' \
                     ORDER BY client_id",
                )
                .map_err(be)?
                .query_map([tenant.as_str()], |r| r.get(0))
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)?;
            ids.iter()
                .filter_map(|id| load_principal(conn, "id = ?1", id).transpose())
                .collect()
        })
    }

    fn client_set_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow> {
        let client_id = client_id.to_owned();
        self.audited(audit, move |conn| {
            let p = load_principal(conn, "client_id = ?1", &client_id)?
                .ok_or(StoreError::NotFound { what: "client" })?;
            conn.execute(
                "UPDATE principals SET disabled = ?1 WHERE id = ?2",
                params![disabled, p.id],
            )
            .map_err(be)?;
            if disabled {
                conn.execute("DELETE FROM tokens WHERE principal_id = ?1", params![p.id])
                    .map_err(be)?;
            }
            load_principal(conn, "id = ?1", &p.id)?.ok_or(StoreError::NotFound { what: "client" })
        })
    }

    fn client_set_read_policy(
        &self,
        client_id: &str,
        policy: &ReadPolicy,
        audit: Audit<ClientRow>,
    ) -> Result<ClientRow> {
        let client_id = client_id.to_owned();
        let text = read_policy_text(policy)?;
        self.audited(audit, move |conn| {
            let p = load_principal(conn, "client_id = ?1", &client_id)?
                .ok_or(StoreError::NotFound { what: "client" })?;
            conn.execute(
                "UPDATE principals SET read_policy = ?1 WHERE id = ?2",
                params![text, p.id],
            )
            .map_err(be)?;
            load_principal(conn, "id = ?1", &p.id)?.ok_or(StoreError::NotFound { what: "client" })
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
        let client_id = client_id.to_owned();
        self.audited(audit, move |conn| {
            let p = load_principal(conn, "client_id = ?1", &client_id)?
                .ok_or(StoreError::NotFound { what: "client" })?;
            conn.execute(
                "UPDATE client_secrets SET expires_at = ?1 \
                 WHERE principal_id = ?2 AND (expires_at IS NULL OR expires_at > ?1)",
                params![us(old_until), p.id],
            )
            .map_err(be)?;
            // Secrets that expired long ago serve no purpose.
            conn.execute(
                "DELETE FROM client_secrets WHERE principal_id = ?1 AND expires_at <= ?2",
                params![p.id, us(now)],
            )
            .map_err(be)?;
            conn.execute(
                "INSERT INTO client_secrets (principal_id, digest, created_at) VALUES (?1, ?2, ?3)",
                params![p.id, new_secret.to_vec(), us(now)],
            )
            .map_err(be)?;
            load_principal(conn, "id = ?1", &p.id)?.ok_or(StoreError::NotFound { what: "client" })
        })
    }

    fn token_insert(&self, t: NewToken) -> Result<()> {
        self.writer.write(move |conn| insert_token(conn, &t))
    }

    fn token_use(
        &self,
        digest: SecretDigest,
        now: DateTime<Utc>,
    ) -> Result<Result<TokenGrant, TokenRefusal>> {
        type TokRow = (
            String,
            String,
            bool,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<i64>,
        );
        let found: Option<(TokRow, Option<ClientRow>)> = self.read(|conn| {
            let row: Option<TokRow> = conn
                .prepare_cached(
                    "SELECT principal_id, scope, one_time, expires_at, consumed_at, revoked_at, \
                     id, last_used_at FROM tokens WHERE digest = ?1",
                )
                .map_err(be)?
                .query_row([digest.to_vec()], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                })
                .optional()
                .map_err(be)?;
            match row {
                None => Ok(None),
                Some(row) => {
                    let p = load_principal(conn, "id = ?1", &row.0)?;
                    Ok(Some((row, p)))
                }
            }
        })?;
        let Some((
            (_, scope, one_time, expires, consumed, revoked, admin_id, last_used),
            principal,
        )) = found
        else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        let Some(principal) = principal else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        if revoked.is_some() {
            return Ok(Err(TokenRefusal::Revoked.as_told_to(principal.kind)));
        }
        if consumed.is_some() {
            return Ok(Err(TokenRefusal::Consumed));
        }
        if expires.is_some_and(|e| e <= us(now)) {
            return Ok(Err(TokenRefusal::Expired.as_told_to(principal.kind)));
        }
        let stale =
            last_used.is_none_or(|t| us(now) - t >= LAST_USE_RESOLUTION_SECONDS * 1_000_000);
        if admin_id.is_some() && stale {
            self.writer.write(move |conn| {
                conn.prepare_cached("UPDATE tokens SET last_used_at = ?1 WHERE digest = ?2")
                    .map_err(be)?
                    .execute(params![us(now), digest.to_vec()])
                    .map_err(be)?;
                Ok(())
            })?;
        }
        if principal.disabled {
            return Ok(Err(TokenRefusal::ClientDisabled));
        }
        if one_time {
            // The single writer makes this check-and-set atomic: of several
            // racing requests, exactly one sees the row still unconsumed.
            let won = self.writer.write(move |conn| {
                let n = conn
                    .prepare_cached(
                        "UPDATE tokens SET consumed_at = ?1 \
                         WHERE digest = ?2 AND consumed_at IS NULL AND revoked_at IS NULL",
                    )
                    .map_err(be)?
                    .execute(params![us(now), digest.to_vec()])
                    .map_err(be)?;
                Ok(n == 1)
            })?;
            if !won {
                return Ok(Err(TokenRefusal::Consumed));
            }
        }
        Ok(Ok(TokenGrant {
            principal,
            scope,
            expires_at: expires.map(from_us),
        }))
    }

    fn token_revoke(&self, digest: SecretDigest, principal_id: &str) -> Result<()> {
        let principal_id = principal_id.to_owned();
        self.writer.write(move |conn| {
            conn.execute(
                "DELETE FROM tokens WHERE digest = ?1 AND principal_id = ?2",
                params![digest.to_vec(), principal_id],
            )
            .map_err(be)?;
            Ok(())
        })
    }

    fn admin_token_create(
        &self,
        t: NewAdminToken,
        audit: Audit<AdminTokenRow>,
    ) -> Result<AdminTokenRow> {
        self.audited(audit, move |conn| {
            let kind: Option<String> = conn
                .query_row(
                    "SELECT kind FROM principals WHERE id = ?1",
                    [&t.principal_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(be)?;
            if kind.as_deref() != Some("admin") {
                return Err(StoreError::NotFound { what: "admin" });
            }
            insert_admin_token(conn, &t)?;
            admin_token_rows(conn, "t.id = ?1", [&t.id])?
                .pop()
                .ok_or(StoreError::NotFound {
                    what: "admin token",
                })
        })
    }

    fn admin_token_list(&self, tenant: &TenantId) -> Result<Vec<AdminTokenRow>> {
        let tenant = tenant.as_str().to_owned();
        self.read(move |conn| admin_token_rows(conn, "p.tenant_id = ?1", [&tenant]))
    }

    fn admin_token_revoke(
        &self,
        tenant: &TenantId,
        which: AdminTokenRef,
        now: DateTime<Utc>,
        audit: Audit<AdminTokenRow>,
    ) -> Result<AdminTokenRow> {
        let tenant = tenant.as_str().to_owned();
        self.audited(audit, move |conn| {
            let id: Option<String> = match &which {
                AdminTokenRef::Id(id) => Some(id.clone()),
                AdminTokenRef::Digest(d) => conn
                    .query_row(
                        "SELECT id FROM tokens WHERE digest = ?1",
                        [d.to_vec()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(be)?
                    .flatten(),
            };
            let row = match id {
                Some(id) => {
                    admin_token_rows(conn, "t.id = ?1 AND p.tenant_id = ?2", params![id, tenant])?
                        .pop()
                }
                None => None,
            }
            .ok_or(StoreError::NotFound {
                what: "admin token",
            })?;
            conn.execute(
                "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![us(now), row.id],
            )
            .map_err(be)?;
            admin_token_rows(conn, "t.id = ?1", [&row.id])?
                .pop()
                .ok_or(StoreError::NotFound {
                    what: "admin token",
                })
        })
    }

    fn client_keys_get(&self, client_id: &str) -> Result<ClientKeys> {
        self.read(|conn| client_keys::keys_get(conn, client_id))
    }

    fn client_keys_set(
        &self,
        client_id: &str,
        change: ClientKeyChange,
        now: DateTime<Utc>,
        audit: Audit<ClientKeys>,
    ) -> Result<ClientKeys> {
        let client_id = client_id.to_owned();
        self.audited(audit, move |conn| {
            client_keys::keys_set(conn, &client_id, &change, now)
        })
    }

    fn nonce_record(
        &self,
        principal_id: &str,
        nonce: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (pid, nonce) = (principal_id.to_owned(), nonce.to_owned());
        self.writer
            .write(move |conn| client_keys::nonce_record(conn, &pid, &nonce, expires_at, now))
    }

    fn client_hmac_rotate(
        &self,
        client_id: &str,
        sealed: Vec<u8>,
        previous_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        audit: Audit<ClientKeys>,
    ) -> Result<ClientKeys> {
        let client_id = client_id.to_owned();
        self.audited(audit, move |conn| {
            rotate::hmac_rotate(conn, &client_id, &sealed, previous_until, now)?;
            client_keys::keys_get(conn, &client_id)
        })
    }
}

fn insert_token(conn: &Connection, t: &NewToken) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tokens (digest, principal_id, scope, one_time, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(be)?
    .execute(params![
        t.digest.to_vec(),
        t.principal_id,
        t.scope,
        t.one_time,
        us(t.created_at),
        t.expires_at.map(us)
    ])
    .map_err(be)?;
    Ok(())
}

/// Admin tokens (rows with an id) of admin principals, where `where_`
/// (over `t` tokens and `p` principals) holds.
pub(crate) fn admin_token_rows(
    conn: &Connection,
    where_: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<AdminTokenRow>> {
    named_token_rows(conn, PrincipalKind::Admin, where_, args)
}

/// Named tokens (rows with an id: admin tokens, clients' SCIM tokens) of
/// principals of `kind`, where `where_` holds.
pub(crate) fn named_token_rows(
    conn: &Connection,
    kind: PrincipalKind,
    where_: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<AdminTokenRow>> {
    let kind = match kind {
        PrincipalKind::Admin => "admin",
        PrincipalKind::Client => "client",
    };
    let sql = format!(
        "SELECT t.id, p.client_id, coalesce(t.name, ''), t.created_at, t.expires_at, \
         t.last_used_at, t.revoked_at FROM tokens t JOIN principals p ON p.id = t.principal_id \
         WHERE t.id IS NOT NULL AND p.kind = '{kind}' AND {where_} ORDER BY t.created_at, t.id"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(be)?;
    let rows = stmt
        .query_map(args, |r| {
            Ok(AdminTokenRow {
                id: r.get(0)?,
                admin: r.get(1)?,
                name: r.get(2)?,
                created_at: from_us(r.get(3)?),
                expires_at: r.get::<_, Option<i64>>(4)?.map(from_us),
                last_used_at: r.get::<_, Option<i64>>(5)?.map(from_us),
                revoked_at: r.get::<_, Option<i64>>(6)?.map(from_us),
            })
        })
        .map_err(be)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(be)?;
    Ok(rows)
}

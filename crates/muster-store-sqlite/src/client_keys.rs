//! Client signing keys and the replay (nonce / `jti`) table.
use crate::{be, from_us, load_principal, us};
use chrono::{DateTime, Utc};
use muster_store::{ClientKeyChange, ClientKeys, Result, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

/// Expired nonces deleted per call: bounded, so no request pays for a
/// large backlog, yet the table cannot grow faster than it shrinks.
const PURGE_BATCH: i64 = 64;

fn principal_id(conn: &Connection, client_id: &str) -> Result<String> {
    Ok(load_principal(conn, "client_id = ?1", client_id)?
        .ok_or(StoreError::NotFound { what: "client" })?
        .id)
}

pub(crate) fn keys_get(conn: &Connection, client_id: &str) -> Result<ClientKeys> {
    let pid = principal_id(conn, client_id)?;
    let row = conn
        .prepare_cached(
            "SELECT hmac_sealed, ed25519_public, jwt_keys, updated_at, \
             hmac_previous_sealed, hmac_previous_until \
             FROM client_keys WHERE principal_id = ?1",
        )
        .map_err(be)?
        .query_row([&pid], |r| {
            Ok(ClientKeys {
                hmac_sealed: r.get(0)?,
                ed25519_public: r.get(1)?,
                jwt_keys: r.get(2)?,
                updated_at: Some(from_us(r.get(3)?)),
                hmac_previous_sealed: r.get(4)?,
                hmac_previous_until: r.get::<_, Option<i64>>(5)?.map(from_us),
            })
        })
        .optional()
        .map_err(be)?;
    Ok(row.unwrap_or_default())
}

pub(crate) fn keys_set(
    conn: &Connection,
    client_id: &str,
    change: &ClientKeyChange,
    now: DateTime<Utc>,
) -> Result<ClientKeys> {
    let pid = principal_id(conn, client_id)?;
    conn.execute(
        "INSERT INTO client_keys (principal_id, updated_at) VALUES (?1, ?2) \
         ON CONFLICT (principal_id) DO UPDATE SET updated_at = excluded.updated_at",
        params![pid, us(now)],
    )
    .map_err(be)?;
    let n = match change {
        ClientKeyChange::Hmac(v) => conn.execute(
            // Set or removed outright: no previous key stays valid.
            "UPDATE client_keys SET hmac_sealed = ?2, hmac_previous_sealed = NULL, \
             hmac_previous_until = NULL WHERE principal_id = ?1",
            params![pid, v],
        ),
        ClientKeyChange::Ed25519(v) => conn.execute(
            "UPDATE client_keys SET ed25519_public = ?2 WHERE principal_id = ?1",
            params![pid, v],
        ),
        ClientKeyChange::JwtKeys(v) => conn.execute(
            "UPDATE client_keys SET jwt_keys = ?2 WHERE principal_id = ?1",
            params![pid, v],
        ),
    }
    .map_err(be)?;
    debug_assert_eq!(n, 1);
    keys_get(conn, client_id)
}

pub(crate) fn nonce_record(
    conn: &Connection,
    principal_id: &str,
    nonce: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool> {
    conn.execute(
        "DELETE FROM auth_nonces WHERE (principal_id, nonce) IN \
         (SELECT principal_id, nonce FROM auth_nonces WHERE expires_at <= ?1 LIMIT ?2)",
        params![us(now), PURGE_BATCH],
    )
    .map_err(be)?;
    // A record that expired but was not purged yet counts as absent.
    let n = conn
        .execute(
            "INSERT INTO auth_nonces (principal_id, nonce, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (principal_id, nonce) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE auth_nonces.expires_at <= ?4",
            params![principal_id, nonce, us(expires_at), us(now)],
        )
        .map_err(be)?;
    Ok(n == 1)
}

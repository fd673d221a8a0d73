//! Master-key rotation (every sealed value, swapped only where unchanged),
//! the HMAC key rotation overlap, failed-authentication counters shared by
//! all instances, and the live-instance table.
use crate::pool::Sql;
use crate::{get, Result};
use chrono::{DateTime, Duration, Utc};
use muster_store::{InstanceRow, SealedColumn, SealedSwap, SealedValue, StoreError};
use postgres::GenericClient;

fn update_sql(c: SealedColumn) -> &'static str {
    match c {
        SealedColumn::KeySecret => {
            "UPDATE keys SET sealed_secret = $3 WHERE id = $1 AND sealed_secret = $2"
        }
        SealedColumn::ClientHmac => {
            "UPDATE client_keys SET hmac_sealed = $3 WHERE hmac_sealed = $2 AND principal_id = \
             (SELECT id FROM principals WHERE client_id = $1)"
        }
        SealedColumn::ClientHmacPrevious => {
            "UPDATE client_keys SET hmac_previous_sealed = $3 WHERE hmac_previous_sealed = $2 \
             AND principal_id = (SELECT id FROM principals WHERE client_id = $1)"
        }
        SealedColumn::IssuerHs256 => {
            "UPDATE issuers SET hs256_sealed = $3 WHERE id = $1 AND hs256_sealed = $2"
        }
        SealedColumn::WebhookSecret => {
            "UPDATE subscriptions SET secret_sealed = $3 WHERE id = $1 AND secret_sealed = $2"
        }
        SealedColumn::WebhookPreviousSecret => {
            "UPDATE subscriptions SET previous_secret_sealed = $3 \
             WHERE id = $1 AND previous_secret_sealed = $2"
        }
    }
}

pub(crate) fn sealed_all<C: GenericClient>(s: &mut Sql<'_, C>) -> Result<Vec<SealedValue>> {
    let mut out = Vec::new();
    for column in SealedColumn::ALL {
        for r in s.query(column.select_sql(), &[])? {
            out.push(SealedValue {
                column,
                id: get(&r, 0)?,
                sealed: get(&r, 1)?,
            });
        }
    }
    Ok(out)
}

pub(crate) fn sealed_replace<C: GenericClient>(
    s: &mut Sql<'_, C>,
    column: SealedColumn,
    swaps: &[SealedSwap],
) -> Result<u64> {
    let mut n = 0;
    for w in swaps {
        n += s.exec(update_sql(column), &[&w.id, &w.old, &w.new])?;
    }
    Ok(n)
}

/// Locks a client's principal row and makes sure its `client_keys` row
/// exists (touched at `now`); returns the principal id.
pub(crate) fn lock_client_keys<C: GenericClient>(
    s: &mut Sql<'_, C>,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<String> {
    let p = s
        .opt(
            "SELECT id FROM principals WHERE client_id = $1 FOR UPDATE",
            &[&client_id],
        )?
        .ok_or(StoreError::NotFound { what: "client" })?;
    let pid: String = get(&p, 0)?;
    s.exec(
        "INSERT INTO client_keys (principal_id, updated_at) VALUES ($1, $2) \
         ON CONFLICT (principal_id) DO UPDATE SET updated_at = excluded.updated_at",
        &[&pid, &now],
    )?;
    Ok(pid)
}

pub(crate) fn hmac_rotate<C: GenericClient>(
    s: &mut Sql<'_, C>,
    client_id: &str,
    sealed: &[u8],
    previous_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<String> {
    let pid = lock_client_keys(s, client_id, now)?;
    // The current key becomes the previous one (with an overlap and a
    // current key); the new key becomes current.
    s.exec(
        "UPDATE client_keys SET \
           hmac_previous_sealed = CASE WHEN $3::timestamptz IS NULL THEN NULL ELSE hmac_sealed END, \
           hmac_previous_until = CASE WHEN $3::timestamptz IS NULL OR hmac_sealed IS NULL \
             THEN NULL ELSE $3::timestamptz END, \
           hmac_sealed = $2 \
         WHERE principal_id = $1",
        &[&pid, &sealed, &previous_until],
    )?;
    Ok(pid)
}

pub(crate) fn failure_record<C: GenericClient>(
    s: &mut Sql<'_, C>,
    keys: &[String],
    window: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<(u32, DateTime<Utc>)>> {
    let cutoff = now - window;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        // One statement per key: atomic against every other instance.
        let r = s.one(
            "INSERT INTO auth_failures AS f (key, window_start, failures) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN f.window_start <= $3 THEN 1 ELSE f.failures + 1 END, \
               window_start = CASE WHEN f.window_start <= $3 THEN $2 ELSE f.window_start END \
             RETURNING failures, window_start",
            &[k, &now, &cutoff],
        )?;
        let n: i32 = get(&r, 0)?;
        out.push((u32::try_from(n).unwrap_or(0), get(&r, 1)?));
    }
    Ok(out)
}

pub(crate) fn failures_over<C: GenericClient>(
    s: &mut Sql<'_, C>,
    max: u32,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>> {
    let cutoff = now - window;
    s.exec(
        "DELETE FROM auth_failures WHERE ctid IN \
         (SELECT ctid FROM auth_failures WHERE window_start <= $1 LIMIT 64)",
        &[&cutoff],
    )?;
    let max = i32::try_from(max).unwrap_or(i32::MAX);
    s.query(
        "SELECT key, window_start FROM auth_failures WHERE failures >= $1 AND window_start > $2",
        &[&max, &cutoff],
    )?
    .iter()
    .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
    .collect()
}

pub(crate) fn heartbeat<C: GenericClient>(
    s: &mut Sql<'_, C>,
    id: &str,
    key_id: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    s.exec(
        "INSERT INTO instances (id, seen_at, master_key_id) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, \
         master_key_id = excluded.master_key_id",
        &[&id, &now, &key_id],
    )?;
    // Instances silent for a day are gone for good.
    let stale = now - Duration::days(1);
    s.exec("DELETE FROM instances WHERE seen_at < $1", &[&stale])?;
    Ok(())
}

pub(crate) fn instances<C: GenericClient>(
    s: &mut Sql<'_, C>,
    since: DateTime<Utc>,
) -> Result<Vec<InstanceRow>> {
    s.query(
        "SELECT id, seen_at, master_key_id FROM instances WHERE seen_at >= $1 ORDER BY id",
        &[&since],
    )?
    .iter()
    .map(|r| {
        Ok(InstanceRow {
            id: get(r, 0)?,
            seen_at: get(r, 1)?,
            master_key_id: get(r, 2)?,
        })
    })
    .collect()
}

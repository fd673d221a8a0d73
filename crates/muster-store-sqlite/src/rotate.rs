//! Master-key rotation (every sealed value, swapped only where unchanged),
//! the HMAC key rotation overlap, failed-authentication counters and the
//! live-instance table.
use crate::{be, from_us, us};
use chrono::{DateTime, Duration, Utc};
use muster_store::{InstanceRow, Result, SealedColumn, SealedSwap, SealedValue, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

fn update_sql(c: SealedColumn) -> &'static str {
    match c {
        SealedColumn::KeySecret => {
            "UPDATE keys SET sealed_secret = ?3 WHERE id = ?1 AND sealed_secret = ?2"
        }
        SealedColumn::ClientHmac => {
            "UPDATE client_keys SET hmac_sealed = ?3 WHERE hmac_sealed = ?2 AND principal_id = \
             (SELECT id FROM principals WHERE client_id = ?1)"
        }
        SealedColumn::ClientHmacPrevious => {
            "UPDATE client_keys SET hmac_previous_sealed = ?3 WHERE hmac_previous_sealed = ?2 \
             AND principal_id = (SELECT id FROM principals WHERE client_id = ?1)"
        }
        SealedColumn::IssuerHs256 => {
            "UPDATE issuers SET hs256_sealed = ?3 WHERE id = ?1 AND hs256_sealed = ?2"
        }
        SealedColumn::WebhookSecret => {
            "UPDATE subscriptions SET secret_sealed = ?3 WHERE id = ?1 AND secret_sealed = ?2"
        }
        SealedColumn::WebhookPreviousSecret => {
            "UPDATE subscriptions SET previous_secret_sealed = ?3 \
             WHERE id = ?1 AND previous_secret_sealed = ?2"
        }
    }
}

pub(crate) fn sealed_all(conn: &Connection) -> Result<Vec<SealedValue>> {
    let mut out = Vec::new();
    for column in SealedColumn::ALL {
        let mut s = conn.prepare_cached(column.select_sql()).map_err(be)?;
        let rows = s
            .query_map([], |r| {
                Ok(SealedValue {
                    column,
                    id: r.get(0)?,
                    sealed: r.get(1)?,
                })
            })
            .map_err(be)?;
        for r in rows {
            out.push(r.map_err(be)?);
        }
    }
    Ok(out)
}

pub(crate) fn sealed_replace(
    conn: &Connection,
    column: SealedColumn,
    swaps: &[SealedSwap],
) -> Result<u64> {
    let mut s = conn.prepare_cached(update_sql(column)).map_err(be)?;
    let mut n = 0u64;
    for w in swaps {
        n += s.execute(params![w.id, w.old, w.new]).map_err(be)? as u64;
    }
    Ok(n)
}

pub(crate) fn hmac_rotate(
    conn: &Connection,
    client_id: &str,
    sealed: &[u8],
    previous_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    let pid: String = conn
        .prepare_cached("SELECT id FROM principals WHERE client_id = ?1")
        .map_err(be)?
        .query_row([client_id], |r| r.get(0))
        .optional()
        .map_err(be)?
        .ok_or(StoreError::NotFound { what: "client" })?;
    conn.execute(
        "INSERT INTO client_keys (principal_id, updated_at) VALUES (?1, ?2) \
         ON CONFLICT (principal_id) DO UPDATE SET updated_at = excluded.updated_at",
        params![pid, us(now)],
    )
    .map_err(be)?;
    // The current key becomes the previous one (when there is an overlap
    // and a current key); the new key becomes current.
    conn.execute(
        "UPDATE client_keys SET \
           hmac_previous_sealed = CASE WHEN ?3 IS NULL THEN NULL ELSE hmac_sealed END, \
           hmac_previous_until = CASE WHEN ?3 IS NULL OR hmac_sealed IS NULL THEN NULL ELSE ?3 END, \
           hmac_sealed = ?2 \
         WHERE principal_id = ?1",
        params![pid, sealed, previous_until.map(us)],
    )
    .map_err(be)?;
    Ok(())
}

/// Expired counters deleted per call, so no caller pays for a backlog.
const PURGE_BATCH: i64 = 64;

pub(crate) fn failure_record(
    conn: &Connection,
    keys: &[String],
    window: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<(u32, DateTime<Utc>)>> {
    let cutoff = us(now - window);
    let mut s = conn
        .prepare_cached(
            "INSERT INTO auth_failures (key, window_start, failures) VALUES (?1, ?2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN window_start <= ?3 THEN 1 ELSE failures + 1 END, \
               window_start = CASE WHEN window_start <= ?3 THEN ?2 ELSE window_start END \
             RETURNING failures, window_start",
        )
        .map_err(be)?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let (n, start): (i64, i64) = s
            .query_row(params![k, us(now), cutoff], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(be)?;
        out.push((u32::try_from(n).unwrap_or(u32::MAX), from_us(start)));
    }
    Ok(out)
}

pub(crate) fn failures_purge(
    conn: &Connection,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.execute(
        "DELETE FROM auth_failures WHERE key IN \
         (SELECT key FROM auth_failures WHERE window_start <= ?1 LIMIT ?2)",
        params![us(now - window), PURGE_BATCH],
    )
    .map_err(be)?;
    Ok(())
}

pub(crate) fn failures_over(
    conn: &Connection,
    max: u32,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>> {
    let mut s = conn
        .prepare_cached(
            "SELECT key, window_start FROM auth_failures \
             WHERE failures >= ?1 AND window_start > ?2",
        )
        .map_err(be)?;
    let rows = s
        .query_map(params![max, us(now - window)], |r| {
            Ok((r.get::<_, String>(0)?, from_us(r.get(1)?)))
        })
        .map_err(be)?;
    rows.map(|r| r.map_err(be)).collect()
}

pub(crate) fn heartbeat(
    conn: &Connection,
    id: &str,
    key_id: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO instances (id, seen_at, master_key_id) VALUES (?1, ?2, ?3) \
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, \
         master_key_id = excluded.master_key_id",
        params![id, us(now), key_id],
    )
    .map_err(be)?;
    // Instances silent for a day are gone for good.
    conn.execute(
        "DELETE FROM instances WHERE seen_at < ?1",
        params![us(now - Duration::days(1))],
    )
    .map_err(be)?;
    Ok(())
}

pub(crate) fn instances(conn: &Connection, since: DateTime<Utc>) -> Result<Vec<InstanceRow>> {
    let mut s = conn
        .prepare_cached(
            "SELECT id, seen_at, master_key_id FROM instances WHERE seen_at >= ?1 ORDER BY id",
        )
        .map_err(be)?;
    let rows = s
        .query_map([us(since)], |r| {
            Ok(InstanceRow {
                id: r.get(0)?,
                seen_at: from_us(r.get(1)?),
                master_key_id: r.get(2)?,
            })
        })
        .map_err(be)?;
    rows.map(|r| r.map_err(be)).collect()
}

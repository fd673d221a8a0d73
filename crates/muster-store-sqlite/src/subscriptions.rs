//! Webhook subscriptions, their delivery progress and delivery log
//! (docs/events.md#webhook-subscriptions). The change events themselves are written by `apply_items`.
use crate::{be, from_us, json_err, us};
use chrono::{DateTime, Utc};
use muster_core::TenantId;
use muster_store::{
    DeliveryProgress, DeliveryRecord, DeliverySave, Result, StoreError, SubscriptionRow,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

const COLS: &str = "id, tenant_id, url, events, attributes, secret_sealed, \
    previous_secret_sealed, previous_until, state, disabled_reason, cursor, attempt, \
    next_attempt_at, redeliver_from, redeliver_to, created_at, updated_at, owner_client_id, \
    kind, target, sink_progress";

type Raw = (
    SubscriptionRow,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn from_row(r: &Row<'_>) -> rusqlite::Result<Raw> {
    let redeliver = match (r.get::<_, Option<i64>>(13)?, r.get::<_, Option<i64>>(14)?) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    let row = SubscriptionRow {
        id: r.get(0)?,
        tenant: TenantId::default_tenant(),
        kind: muster_store::SubscriptionKind::parse(&r.get::<_, String>(18)?).unwrap_or_default(),
        url: r.get(2)?,
        target: serde_json::Value::Null,
        events: Vec::new(),
        attributes: Vec::new(),
        owner: r.get(17)?,
        secret_sealed: r.get(5)?,
        previous_secret_sealed: r.get(6)?,
        previous_until: r.get::<_, Option<i64>>(7)?.map(from_us),
        state: muster_store::SubscriptionState::parse(&r.get::<_, String>(8)?).unwrap_or_default(),
        disabled_reason: r.get(9)?,
        progress: DeliveryProgress {
            cursor: r.get(10)?,
            attempt: r.get(11)?,
            next_attempt_at: r.get::<_, Option<i64>>(12)?.map(from_us),
            redeliver,
            sink: Default::default(),
        },
        created_at: from_us(r.get(15)?),
        updated_at: from_us(r.get(16)?),
    };
    Ok((row, r.get(1)?, r.get(3)?, r.get(4)?, r.get(19)?, r.get(20)?))
}

fn decode((mut row, tenant, events, attributes, target, sink): Raw) -> Result<SubscriptionRow> {
    if let Some(t) = target {
        row.target = serde_json::from_str(&t).map_err(json_err)?;
    }
    if let Some(p) = sink {
        row.progress.sink = serde_json::from_str(&p).map_err(json_err)?;
    }
    row.tenant = TenantId::parse(&tenant)
        .map_err(|_| StoreError::backend("a stored tenant id does not parse"))?;
    row.events = serde_json::from_str(&events).map_err(json_err)?;
    row.attributes = serde_json::from_str(&attributes).map_err(json_err)?;
    Ok(row)
}

fn query(
    conn: &Connection,
    where_: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<SubscriptionRow>> {
    let sql = format!("SELECT {COLS} FROM subscriptions {where_}");
    let mut st = conn.prepare_cached(&sql).map_err(be)?;
    let raws = st
        .query_map(args, from_row)
        .map_err(be)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(be)?;
    raws.into_iter().map(decode).collect()
}

pub(crate) fn get(conn: &Connection, tenant: &TenantId, id: &str) -> Result<SubscriptionRow> {
    query(
        conn,
        "WHERE tenant_id = ?1 AND id = ?2",
        &[&tenant.as_str(), &id],
    )?
    .pop()
    .ok_or(StoreError::NotFound {
        what: "subscription",
    })
}

pub(crate) fn list(conn: &Connection, tenant: &TenantId) -> Result<Vec<SubscriptionRow>> {
    query(
        conn,
        "WHERE tenant_id = ?1 ORDER BY created_at, id",
        &[&tenant.as_str()],
    )
}

pub(crate) fn active(conn: &Connection) -> Result<Vec<SubscriptionRow>> {
    query(conn, "WHERE state = 'active' ORDER BY created_at, id", &[])
}

fn json(v: &[String]) -> Result<String> {
    serde_json::to_string(v).map_err(json_err)
}

fn sink_json(p: &muster_store::SinkProgress) -> Result<Option<String>> {
    muster_store::shared::sink_progress_json(p)
}

pub(crate) fn create(conn: &Connection, s: &SubscriptionRow) -> Result<SubscriptionRow> {
    let p = &s.progress;
    conn.execute(
        &format!(
            "INSERT INTO subscriptions ({COLS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
             ?19, ?20, ?21)"
        ),
        params![
            s.id,
            s.tenant.as_str(),
            s.url,
            json(&s.events)?,
            json(&s.attributes)?,
            s.secret_sealed,
            s.previous_secret_sealed,
            s.previous_until.map(us),
            s.state.as_str(),
            s.disabled_reason,
            p.cursor,
            p.attempt,
            p.next_attempt_at.map(us),
            p.redeliver.map(|r| r.0),
            p.redeliver.map(|r| r.1),
            us(s.created_at),
            us(s.updated_at),
            s.owner,
            s.kind.as_str(),
            muster_store::shared::nullable_json(&s.target)?,
            sink_json(&p.sink)?
        ],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict("subscription id or tenant".into())
        }
        e => be(e),
    })?;
    get(conn, &s.tenant, &s.id)
}

pub(crate) fn update(conn: &Connection, s: &SubscriptionRow) -> Result<SubscriptionRow> {
    let n = conn
        .execute(
            "UPDATE subscriptions SET url = ?3, events = ?4, attributes = ?5, \
             secret_sealed = ?6, previous_secret_sealed = ?7, previous_until = ?8, state = ?9, \
             disabled_reason = ?10, updated_at = ?11, target = ?12 \
             WHERE tenant_id = ?1 AND id = ?2",
            params![
                s.tenant.as_str(),
                s.id,
                s.url,
                json(&s.events)?,
                json(&s.attributes)?,
                s.secret_sealed,
                s.previous_secret_sealed,
                s.previous_until.map(us),
                s.state.as_str(),
                s.disabled_reason,
                us(s.updated_at),
                muster_store::shared::nullable_json(&s.target)?
            ],
        )
        .map_err(be)?;
    if n == 0 {
        return Err(StoreError::NotFound {
            what: "subscription",
        });
    }
    get(conn, &s.tenant, &s.id)
}

pub(crate) fn delete(conn: &Connection, tenant: &TenantId, id: &str) -> Result<()> {
    let n = conn
        .execute(
            "DELETE FROM subscriptions WHERE tenant_id = ?1 AND id = ?2",
            params![tenant.as_str(), id],
        )
        .map_err(be)?;
    if n == 0 {
        return Err(StoreError::NotFound {
            what: "subscription",
        });
    }
    Ok(())
}

fn insert_records(conn: &Connection, id: &str, records: &[DeliveryRecord]) -> Result<()> {
    let mut ins = conn
        .prepare_cached(
            "INSERT INTO deliveries (subscription_id, event_id, cursor, attempt, at, status, \
             outcome, error, manual) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(be)?;
    for r in records {
        ins.execute(params![
            id,
            r.event_id,
            r.cursor,
            r.attempt,
            us(r.at),
            r.status,
            r.outcome,
            r.error,
            r.manual
        ])
        .map_err(be)?;
    }
    Ok(())
}

pub(crate) fn redeliver(
    conn: &Connection,
    tenant: &TenantId,
    id: &str,
    range: (i64, i64),
    now: DateTime<Utc>,
) -> Result<SubscriptionRow> {
    let n = conn
        .execute(
            "UPDATE subscriptions SET redeliver_from = ?3, redeliver_to = ?4, updated_at = ?5 \
             WHERE tenant_id = ?1 AND id = ?2",
            params![tenant.as_str(), id, range.0, range.1, us(now)],
        )
        .map_err(be)?;
    if n == 0 {
        return Err(StoreError::NotFound {
            what: "subscription",
        });
    }
    get(conn, tenant, id)
}

pub(crate) fn deliveries(
    conn: &Connection,
    id: &str,
    after: i64,
    limit: u32,
) -> Result<Vec<DeliveryRecord>> {
    let mut st = conn
        .prepare_cached(
            "SELECT seq, subscription_id, event_id, cursor, attempt, at, status, outcome, \
             error, manual FROM deliveries WHERE subscription_id = ?1 AND seq > ?2 \
             ORDER BY seq LIMIT ?3",
        )
        .map_err(be)?;
    let rows = st
        .query_map(params![id, after, i64::from(limit)], |r| {
            Ok(DeliveryRecord {
                seq: r.get(0)?,
                subscription_id: r.get(1)?,
                event_id: r.get(2)?,
                cursor: r.get(3)?,
                attempt: r.get(4)?,
                at: from_us(r.get(5)?),
                status: r.get(6)?,
                outcome: r.get(7)?,
                error: r.get(8)?,
                manual: r.get(9)?,
            })
        })
        .map_err(be)?;
    rows.collect::<rusqlite::Result<_>>().map_err(be)
}

// ---- fan-out: delivery leases ---------------------------------------------

pub(crate) fn claim(
    conn: &Connection,
    id: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<Option<SubscriptionRow>> {
    let n = conn
        .prepare_cached(
            "UPDATE subscriptions SET lease_owner = ?2, lease_until = ?4 \
             WHERE id = ?1 AND state = 'active' \
               AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_until <= ?3)",
        )
        .map_err(be)?
        .execute(params![id, owner, now, until])
        .map_err(be)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(query(conn, "WHERE id = ?1", &[&id])?.pop())
}

pub(crate) fn save(
    conn: &Connection,
    id: &str,
    owner: &str,
    until: i64,
    v: &DeliverySave,
    now: DateTime<Utc>,
) -> Result<bool> {
    let p = &v.progress;
    let n = conn
        .prepare_cached(
            "UPDATE subscriptions SET cursor = ?3, attempt = ?4, next_attempt_at = ?5, \
             redeliver_from = CASE WHEN redeliver_from IS ?6 AND redeliver_to IS ?7 \
               THEN ?8 ELSE redeliver_from END, \
             redeliver_to = CASE WHEN redeliver_from IS ?6 AND redeliver_to IS ?7 \
               THEN ?9 ELSE redeliver_to END, \
             updated_at = ?10, \
             state = CASE WHEN ?11 IS NULL THEN state ELSE 'disabled' END, \
             disabled_reason = coalesce(?11, disabled_reason), lease_until = ?12, \
             sink_progress = ?13 \
             WHERE id = ?1 AND lease_owner = ?2",
        )
        .map_err(be)?
        .execute(params![
            id,
            owner,
            p.cursor,
            p.attempt,
            p.next_attempt_at.map(us),
            v.redeliver_seen.map(|r| r.0),
            v.redeliver_seen.map(|r| r.1),
            p.redeliver.map(|r| r.0),
            p.redeliver.map(|r| r.1),
            us(now),
            v.disable,
            until,
            sink_json(&p.sink)?
        ])
        .map_err(be)?;
    if n == 0 {
        return Ok(false);
    }
    insert_records(conn, id, &v.records)?;
    Ok(true)
}

pub(crate) fn release(conn: &Connection, id: &str, owner: &str) -> Result<()> {
    conn.execute(
        "UPDATE subscriptions SET lease_owner = NULL, lease_until = NULL \
         WHERE id = ?1 AND lease_owner = ?2",
        params![id, owner],
    )
    .map_err(be)?;
    Ok(())
}

// ---- provisioning: links to the target's objects ---------------------------

use muster_store::{LinkKind, TargetLink};

fn link_from(r: &Row<'_>) -> rusqlite::Result<(String, String, Option<String>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn link_decode((key, target_id, sent): (String, String, Option<String>)) -> Result<TargetLink> {
    Ok(TargetLink {
        key,
        target_id,
        sent: match sent {
            Some(s) => serde_json::from_str(&s).map_err(json_err)?,
            None => serde_json::Value::Null,
        },
    })
}

pub(crate) fn links(
    conn: &Connection,
    sub: &str,
    kind: LinkKind,
    keys: &[&str],
) -> Result<Vec<Option<TargetLink>>> {
    let mut st = conn
        .prepare_cached(
            "SELECT key, target_id, sent FROM subscription_links \
             WHERE subscription_id = ?1 AND kind = ?2 AND key = ?3",
        )
        .map_err(be)?;
    keys.iter()
        .map(|k| {
            st.query_row(params![sub, kind.as_str(), k], link_from)
                .optional()
                .map_err(be)?
                .map(link_decode)
                .transpose()
        })
        .collect()
}

pub(crate) fn link_of(
    conn: &Connection,
    sub: &str,
    kind: LinkKind,
    target_id: &str,
) -> Result<Option<TargetLink>> {
    conn.prepare_cached(
        "SELECT key, target_id, sent FROM subscription_links \
         WHERE subscription_id = ?1 AND kind = ?2 AND target_id = ?3 LIMIT 1",
    )
    .map_err(be)?
    .query_row(params![sub, kind.as_str(), target_id], link_from)
    .optional()
    .map_err(be)?
    .map(link_decode)
    .transpose()
}

pub(crate) fn link_put(conn: &Connection, sub: &str, kind: LinkKind, l: &TargetLink) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO subscription_links (subscription_id, kind, key, target_id, sent) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (subscription_id, kind, key) \
         DO UPDATE SET target_id = excluded.target_id, sent = excluded.sent",
    )
    .map_err(be)?
    .execute(params![
        sub,
        kind.as_str(),
        l.key,
        l.target_id,
        muster_store::shared::nullable_json(&l.sent)?
    ])
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::NotFound {
                what: "subscription",
            }
        }
        e => be(e),
    })?;
    Ok(())
}

pub(crate) fn link_delete(conn: &Connection, sub: &str, kind: LinkKind, key: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM subscription_links WHERE subscription_id = ?1 AND kind = ?2 AND key = ?3",
        params![sub, kind.as_str(), key],
    )
    .map_err(be)?;
    Ok(())
}

pub(crate) fn link_list(
    conn: &Connection,
    sub: &str,
    kind: LinkKind,
    after: &str,
    limit: u32,
) -> Result<Vec<TargetLink>> {
    let mut st = conn
        .prepare_cached(
            "SELECT key, target_id, sent FROM subscription_links \
             WHERE subscription_id = ?1 AND kind = ?2 AND key > ?3 ORDER BY key LIMIT ?4",
        )
        .map_err(be)?;
    let raws = st
        .query_map(
            params![sub, kind.as_str(), after, i64::from(limit)],
            link_from,
        )
        .map_err(be)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(be)?;
    raws.into_iter().map(link_decode).collect()
}

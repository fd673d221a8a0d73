//! Webhook subscriptions, their delivery progress and delivery log
//! (docs/events.md#webhook-subscriptions). The change events themselves are written by `apply`.
use crate::pool::Sql;
use crate::{get, is_unique_violation, json_err, tenant_id, Result};
use chrono::{DateTime, Utc};
use muster_core::TenantId;
use muster_store::{DeliveryProgress, DeliveryRecord, DeliverySave, StoreError, SubscriptionRow};
use postgres::{GenericClient, Row};

macro_rules! sub_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, url, events::text, attributes::text, secret_sealed, \
             previous_secret_sealed, previous_until, state, disabled_reason, cursor, attempt, \
             next_attempt_at, redeliver_from, redeliver_to, created_at, updated_at, \
             owner_client_id, kind, target::text, sink_progress::text FROM subscriptions ",
            $rest
        )
    };
}

const NOT_FOUND: StoreError = StoreError::NotFound {
    what: "subscription",
};

fn to_row(r: &Row) -> Result<SubscriptionRow> {
    let redeliver = match (get::<Option<i64>>(r, 13)?, get::<Option<i64>>(r, 14)?) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    let events: String = get(r, 3)?;
    let attributes: String = get(r, 4)?;
    let attempt: i32 = get(r, 11)?;
    Ok(SubscriptionRow {
        id: get(r, 0)?,
        tenant: tenant_id(&get::<String>(r, 1)?)?,
        kind: muster_store::SubscriptionKind::parse(&get::<String>(r, 18)?).unwrap_or_default(),
        url: get(r, 2)?,
        target: match get::<Option<String>>(r, 19)? {
            Some(t) => serde_json::from_str(&t).map_err(json_err)?,
            None => serde_json::Value::Null,
        },
        events: serde_json::from_str(&events).map_err(json_err)?,
        attributes: serde_json::from_str(&attributes).map_err(json_err)?,
        owner: get(r, 17)?,
        secret_sealed: get(r, 5)?,
        previous_secret_sealed: get(r, 6)?,
        previous_until: get(r, 7)?,
        state: muster_store::SubscriptionState::parse(&get::<String>(r, 8)?).unwrap_or_default(),
        disabled_reason: get(r, 9)?,
        progress: DeliveryProgress {
            cursor: get(r, 10)?,
            attempt: u32::try_from(attempt).unwrap_or(0),
            next_attempt_at: get(r, 12)?,
            redeliver,
            sink: match get::<Option<String>>(r, 20)? {
                Some(p) => serde_json::from_str(&p).map_err(json_err)?,
                None => Default::default(),
            },
        },
        created_at: get(r, 15)?,
        updated_at: get(r, 16)?,
    })
}

fn json(v: &[String]) -> Result<String> {
    serde_json::to_string(v).map_err(json_err)
}

pub(crate) fn get_one<C: GenericClient>(
    s: &mut Sql<'_, C>,
    tenant: &TenantId,
    id: &str,
) -> Result<SubscriptionRow> {
    match s.opt(
        sub_select!("WHERE tenant_id = $1 AND id = $2"),
        &[&tenant.as_str(), &id],
    )? {
        Some(r) => to_row(&r),
        None => Err(NOT_FOUND),
    }
}

pub(crate) fn list<C: GenericClient>(
    s: &mut Sql<'_, C>,
    tenant: &TenantId,
) -> Result<Vec<SubscriptionRow>> {
    s.query(
        sub_select!("WHERE tenant_id = $1 ORDER BY created_at, id"),
        &[&tenant.as_str()],
    )?
    .iter()
    .map(to_row)
    .collect()
}

pub(crate) fn active<C: GenericClient>(s: &mut Sql<'_, C>) -> Result<Vec<SubscriptionRow>> {
    s.query(
        sub_select!("WHERE state = 'active' ORDER BY created_at, id"),
        &[],
    )?
    .iter()
    .map(to_row)
    .collect()
}

pub(crate) fn create<C: GenericClient>(
    s: &mut Sql<'_, C>,
    r: &SubscriptionRow,
) -> Result<SubscriptionRow> {
    let p = &r.progress;
    let attempt = i32::try_from(p.attempt).unwrap_or(i32::MAX);
    let res = s.try_exec(
        "INSERT INTO subscriptions (id, tenant_id, url, events, attributes, secret_sealed, \
         previous_secret_sealed, previous_until, state, disabled_reason, cursor, attempt, \
         next_attempt_at, redeliver_from, redeliver_to, created_at, updated_at, \
         owner_client_id, kind, target, sink_progress) VALUES \
         ($1, $2, $3, $4::text::jsonb, $5::text::jsonb, $6, $7, $8, $9, $10, $11, $12, $13, \
          $14, $15, $16, $17, $18, $19, $20::text::jsonb, $21::text::jsonb)",
        &[
            &r.id,
            &r.tenant.as_str(),
            &r.url,
            &json(&r.events)?,
            &json(&r.attributes)?,
            &r.secret_sealed,
            &r.previous_secret_sealed,
            &r.previous_until,
            &r.state.as_str(),
            &r.disabled_reason,
            &p.cursor,
            &attempt,
            &p.next_attempt_at,
            &p.redeliver.map(|x| x.0),
            &p.redeliver.map(|x| x.1),
            &r.created_at,
            &r.updated_at,
            &r.owner,
            &r.kind.as_str(),
            &muster_store::shared::nullable_json(&r.target)?,
            &muster_store::shared::sink_progress_json(&p.sink)?,
        ],
    )?;
    match res {
        Ok(_) => get_one(s, &r.tenant, &r.id),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(
            "the subscription exists already".into(),
        )),
        Err(_) => Err(StoreError::NotFound { what: "tenant" }),
    }
}

pub(crate) fn update<C: GenericClient>(
    s: &mut Sql<'_, C>,
    r: &SubscriptionRow,
) -> Result<SubscriptionRow> {
    let n = s.exec(
        "UPDATE subscriptions SET url = $3, events = $4::text::jsonb, \
         attributes = $5::text::jsonb, secret_sealed = $6, previous_secret_sealed = $7, \
         previous_until = $8, state = $9, disabled_reason = $10, updated_at = $11, \
         target = $12::text::jsonb WHERE tenant_id = $1 AND id = $2",
        &[
            &r.tenant.as_str(),
            &r.id,
            &r.url,
            &json(&r.events)?,
            &json(&r.attributes)?,
            &r.secret_sealed,
            &r.previous_secret_sealed,
            &r.previous_until,
            &r.state.as_str(),
            &r.disabled_reason,
            &r.updated_at,
            &muster_store::shared::nullable_json(&r.target)?,
        ],
    )?;
    if n == 0 {
        return Err(NOT_FOUND);
    }
    get_one(s, &r.tenant, &r.id)
}

pub(crate) fn delete<C: GenericClient>(
    s: &mut Sql<'_, C>,
    tenant: &TenantId,
    id: &str,
) -> Result<()> {
    let n = s.exec(
        "DELETE FROM subscriptions WHERE tenant_id = $1 AND id = $2",
        &[&tenant.as_str(), &id],
    )?;
    if n == 0 {
        return Err(NOT_FOUND);
    }
    Ok(())
}

fn insert_records<C: GenericClient>(
    s: &mut Sql<'_, C>,
    id: &str,
    records: &[DeliveryRecord],
) -> Result<()> {
    for r in records {
        let attempt = i32::try_from(r.attempt).unwrap_or(i32::MAX);
        let status = r.status.map(i32::from);
        s.exec(
            "INSERT INTO deliveries (subscription_id, event_id, cursor, attempt, at, status, \
             outcome, error, manual) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &id,
                &r.event_id,
                &r.cursor,
                &attempt,
                &r.at,
                &status,
                &r.outcome,
                &r.error,
                &r.manual,
            ],
        )?;
    }
    Ok(())
}

pub(crate) fn redeliver<C: GenericClient>(
    s: &mut Sql<'_, C>,
    tenant: &TenantId,
    id: &str,
    range: (i64, i64),
    now: DateTime<Utc>,
) -> Result<SubscriptionRow> {
    let n = s.exec(
        "UPDATE subscriptions SET redeliver_from = $3, redeliver_to = $4, updated_at = $5 \
         WHERE tenant_id = $1 AND id = $2",
        &[&tenant.as_str(), &id, &range.0, &range.1, &now],
    )?;
    if n == 0 {
        return Err(NOT_FOUND);
    }
    get_one(s, tenant, id)
}

pub(crate) fn deliveries<C: GenericClient>(
    s: &mut Sql<'_, C>,
    id: &str,
    after: i64,
    limit: u32,
) -> Result<Vec<DeliveryRecord>> {
    s.query(
        "SELECT seq, subscription_id, event_id, cursor, attempt, at, status, outcome, error, \
         manual FROM deliveries WHERE subscription_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        &[&id, &after, &i64::from(limit)],
    )?
    .iter()
    .map(|r| {
        let attempt: i32 = get(r, 4)?;
        let status: Option<i32> = get(r, 6)?;
        Ok(DeliveryRecord {
            seq: get(r, 0)?,
            subscription_id: get(r, 1)?,
            event_id: get(r, 2)?,
            cursor: get(r, 3)?,
            attempt: u32::try_from(attempt).unwrap_or(0),
            at: get(r, 5)?,
            status: status.and_then(|s| u16::try_from(s).ok()),
            outcome: get(r, 7)?,
            error: get(r, 8)?,
            manual: get(r, 9)?,
        })
    })
    .collect()
}

// ---- fan-out: delivery leases ---------------------------------------------
// A claim is one conditional UPDATE: of two instances racing, the second
// waits on the row lock and then re-checks the condition against the
// first one's lease (READ COMMITTED), so it finds the row taken.

pub(crate) fn claim<C: GenericClient>(
    s: &mut Sql<'_, C>,
    id: &str,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<SubscriptionRow>> {
    let n = s.exec(
        "UPDATE subscriptions SET lease_owner = $2, lease_until = $4 \
         WHERE id = $1 AND state = 'active' \
           AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until <= $3)",
        &[&id, &owner, &now, &until],
    )?;
    if n == 0 {
        return Ok(None);
    }
    s.opt(sub_select!("WHERE id = $1"), &[&id])?
        .map(|r| to_row(&r))
        .transpose()
}

pub(crate) fn save<C: GenericClient>(
    s: &mut Sql<'_, C>,
    id: &str,
    owner: &str,
    until: DateTime<Utc>,
    v: &DeliverySave,
    now: DateTime<Utc>,
) -> Result<bool> {
    let p = &v.progress;
    let attempt = i32::try_from(p.attempt).unwrap_or(i32::MAX);
    let n = s.exec(
        "UPDATE subscriptions SET cursor = $3, attempt = $4, next_attempt_at = $5, \
         redeliver_from = CASE WHEN redeliver_from IS NOT DISTINCT FROM $6::bigint \
           AND redeliver_to IS NOT DISTINCT FROM $7::bigint THEN $8::bigint \
           ELSE redeliver_from END, \
         redeliver_to = CASE WHEN redeliver_from IS NOT DISTINCT FROM $6::bigint \
           AND redeliver_to IS NOT DISTINCT FROM $7::bigint THEN $9::bigint \
           ELSE redeliver_to END, \
         updated_at = $10, \
         state = CASE WHEN $11::text IS NULL THEN state ELSE 'disabled' END, \
         disabled_reason = coalesce($11::text, disabled_reason), lease_until = $12, \
         sink_progress = $13::text::jsonb \
         WHERE id = $1 AND lease_owner = $2",
        &[
            &id,
            &owner,
            &p.cursor,
            &attempt,
            &p.next_attempt_at,
            &v.redeliver_seen.map(|x| x.0),
            &v.redeliver_seen.map(|x| x.1),
            &p.redeliver.map(|x| x.0),
            &p.redeliver.map(|x| x.1),
            &now,
            &v.disable,
            &until,
            &muster_store::shared::sink_progress_json(&p.sink)?,
        ],
    )?;
    if n == 0 {
        return Ok(false);
    }
    insert_records(s, id, &v.records)?;
    Ok(true)
}

pub(crate) fn release<C: GenericClient>(s: &mut Sql<'_, C>, id: &str, owner: &str) -> Result<()> {
    s.exec(
        "UPDATE subscriptions SET lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND lease_owner = $2",
        &[&id, &owner],
    )?;
    Ok(())
}

// ---- provisioning: links to the target's objects ---------------------------

use muster_store::{LinkKind, TargetLink};

fn link_row(r: &Row) -> Result<TargetLink> {
    Ok(TargetLink {
        key: get(r, 0)?,
        target_id: get(r, 1)?,
        sent: match get::<Option<String>>(r, 2)? {
            Some(s) => serde_json::from_str(&s).map_err(json_err)?,
            None => serde_json::Value::Null,
        },
    })
}

pub(crate) fn links<C: GenericClient>(
    s: &mut Sql<'_, C>,
    sub: &str,
    kind: LinkKind,
    keys: &[&str],
) -> Result<Vec<Option<TargetLink>>> {
    let rows = s.query(
        "SELECT key, target_id, sent::text FROM subscription_links \
         WHERE subscription_id = $1 AND kind = $2 AND key = ANY($3)",
        &[&sub, &kind.as_str(), &keys],
    )?;
    let mut found = std::collections::HashMap::new();
    for r in &rows {
        let l = link_row(r)?;
        found.insert(l.key.clone(), l);
    }
    Ok(keys.iter().map(|k| found.get(*k).cloned()).collect())
}

pub(crate) fn link_of<C: GenericClient>(
    s: &mut Sql<'_, C>,
    sub: &str,
    kind: LinkKind,
    target_id: &str,
) -> Result<Option<TargetLink>> {
    s.opt(
        "SELECT key, target_id, sent::text FROM subscription_links \
         WHERE subscription_id = $1 AND kind = $2 AND target_id = $3 LIMIT 1",
        &[&sub, &kind.as_str(), &target_id],
    )?
    .as_ref()
    .map(link_row)
    .transpose()
}

pub(crate) fn link_put<C: GenericClient>(
    s: &mut Sql<'_, C>,
    sub: &str,
    kind: LinkKind,
    l: &TargetLink,
) -> Result<()> {
    let res = s.try_exec(
        "INSERT INTO subscription_links (subscription_id, kind, key, target_id, sent) \
         VALUES ($1, $2, $3, $4, $5::text::jsonb) ON CONFLICT (subscription_id, kind, key) \
         DO UPDATE SET target_id = excluded.target_id, sent = excluded.sent",
        &[
            &sub,
            &kind.as_str(),
            &l.key,
            &l.target_id,
            &muster_store::shared::nullable_json(&l.sent)?,
        ],
    )?;
    match res {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(&postgres::error::SqlState::FOREIGN_KEY_VIOLATION) => {
            Err(NOT_FOUND)
        }
        Err(e) => Err(crate::be(e)),
    }
}

pub(crate) fn link_delete<C: GenericClient>(
    s: &mut Sql<'_, C>,
    sub: &str,
    kind: LinkKind,
    key: &str,
) -> Result<()> {
    s.exec(
        "DELETE FROM subscription_links WHERE subscription_id = $1 AND kind = $2 AND key = $3",
        &[&sub, &kind.as_str(), &key],
    )?;
    Ok(())
}

pub(crate) fn link_list<C: GenericClient>(
    s: &mut Sql<'_, C>,
    sub: &str,
    kind: LinkKind,
    after: &str,
    limit: u32,
) -> Result<Vec<TargetLink>> {
    s.query(
        "SELECT key, target_id, sent::text FROM subscription_links \
         WHERE subscription_id = $1 AND kind = $2 AND key > $3 ORDER BY key LIMIT $4",
        &[&sub, &kind.as_str(), &after, &i64::from(limit)],
    )?
    .iter()
    .map(link_row)
    .collect()
}

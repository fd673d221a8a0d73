//! The change feed (`GET /api/v1/changes`, `people:read`) and the webhook
//! subscription admin API (`/api/v1/subscriptions`, `subscriptions:admin`),
//! SPEC 4. Delivery itself is in [`crate::webhooks`].
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::people::page_limit;
use crate::state::AppState;
use crate::webhooks;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use muster_core::policy::Permission;
use muster_proto::{
    ChangesPage, DeliveryInfo, Page, RedeliverRequest, SubscriptionCreated, SubscriptionInfo,
    SubscriptionPatch, SubscriptionSpec,
};
use muster_store::{
    Audit, AuditDraft, DeliveryProgress, DeliveryRecord, SubscriptionRow, EVENT_KINDS,
};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// The longest a change-feed request may wait for news.
const MAX_WAIT_SECONDS: u64 = 30;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    pub after: Option<i64>,
    pub limit: Option<u32>,
    /// Long poll: wait up to this many seconds (at most 30) for an event.
    pub wait: Option<u64>,
}

/// `GET /api/v1/changes`: the caller's tenant's events in cursor order.
pub async fn changes_list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<Json<ChangesPage>> {
    caller.require(Permission::PeopleRead)?;
    let limit = page_limit(q.limit)?;
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "after: must not be negative",
        ));
    }
    let wait = match q.wait {
        Some(w) if w > MAX_WAIT_SECONDS => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("wait: at most {MAX_WAIT_SECONDS} seconds"),
            ))
        }
        w => Duration::from_secs(w.unwrap_or(0)),
    };
    let deadline = tokio::time::Instant::now() + wait;
    let tenant = caller.principal.tenant.clone();
    let events = loop {
        // Registered before the read, so a commit between the read and
        // the wait still wakes us.
        let woken = state.changes_committed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let t = tenant.clone();
        let events = state.db(move |s| s.changes_list(&t, after, limit)).await?;
        if !events.is_empty() || tokio::time::Instant::now() >= deadline {
            break events;
        }
        // Another instance's commits do not wake us: look again now and then.
        let _ = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_secs(1)),
            woken,
        )
        .await;
    };
    let next = events.last().map_or(after, |e| e.cursor);
    Ok(Json(ChangesPage {
        items: events
            .iter()
            .filter_map(|e| webhooks::event_info(e, None))
            .collect(),
        next_cursor: next.to_string(),
    }))
}

fn info(s: &SubscriptionRow) -> SubscriptionInfo {
    SubscriptionInfo {
        id: s.id.clone(),
        url: s.url.clone(),
        events: s.events.clone(),
        attributes: s.attributes.clone(),
        state: s.state.clone(),
        disabled_reason: s.disabled_reason.clone(),
        cursor: s.progress.cursor,
        attempt: s.progress.attempt,
        next_attempt_at: s.progress.next_attempt_at,
        previous_secret_until: s.previous_until,
        created_at: s.created_at,
    }
}

fn check_events(events: Vec<String>) -> ApiResult<Vec<String>> {
    if events.is_empty() {
        return Ok(EVENT_KINDS.iter().map(|e| (*e).to_owned()).collect());
    }
    if let Some(bad) = events.iter().find(|e| !EVENT_KINDS.contains(&e.as_str())) {
        return Err(ApiError::unprocessable(
            "invalid_subscription",
            format!("events: '{bad}' is not an event name"),
        ));
    }
    Ok(events)
}

fn check_attributes(attributes: Vec<String>) -> ApiResult<Vec<String>> {
    if attributes.is_empty() || attributes.iter().any(|a| a.trim().is_empty()) {
        return Err(ApiError::unprocessable(
            "invalid_subscription",
            "attributes: list the attributes the receiver may get ('*' for all)",
        ));
    }
    Ok(attributes)
}

async fn check_url(state: &AppState, url: &str) -> ApiResult<()> {
    crate::outbound::Rule::webhooks(&state.config)
        .check_registration(url)
        .await
        .map(|_| ())
        .map_err(|why| ApiError::unprocessable("invalid_subscription", format!("url: {why}")))
}

/// A destination as the audit log keeps it: without query or fragment,
/// which may carry a receiver's own token.
fn audit_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

fn seal(state: &AppState, id: &str, secret: &str) -> Vec<u8> {
    state
        .master_key
        .seal_box(&webhooks::secret_aad(id), secret.as_bytes())
}

pub async fn subscription_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<SubscriptionSpec>,
) -> ApiResult<(StatusCode, Json<SubscriptionCreated>)> {
    caller.require(Permission::SubscriptionsAdmin)?;
    let events = check_events(spec.events)?;
    let attributes = check_attributes(spec.attributes)?;
    check_url(&state, &spec.url).await?;
    let tenant = caller.principal.tenant.clone();
    let cursor = if spec.from_beginning {
        0
    } else {
        let t = tenant.clone();
        state.db(move |s| s.changes_head(&t)).await?
    };
    let id = format!("sub_{}", uuid::Uuid::new_v4().simple());
    let secret = webhooks::new_secret();
    let now = state.clock.now();
    let row = SubscriptionRow {
        secret_sealed: seal(&state, &id, &secret),
        id,
        tenant,
        url: spec.url,
        events,
        attributes,
        previous_secret_sealed: None,
        previous_until: None,
        state: "active".into(),
        disabled_reason: None,
        progress: DeliveryProgress {
            cursor,
            ..Default::default()
        },
        created_at: now,
        updated_at: now,
    };
    let audit = crate::admin::recorded(
        &state,
        &caller,
        "subscription.created",
        |r: &SubscriptionRow| {
            serde_json::json!({
                "subscription": r.id,
                "url": audit_url(&r.url),
                "events": r.events,
                "attributes": r.attributes,
                "cursor": r.progress.cursor,
            })
        },
    );
    let row = state.db(move |s| s.subscription_create(row, audit)).await?;
    tracing::info!(subscription = %row.id, "webhook subscription created");
    Ok((
        StatusCode::CREATED,
        Json(SubscriptionCreated {
            subscription: info(&row),
            secret,
        }),
    ))
}

pub async fn subscription_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SubscriptionInfo>>> {
    caller.require(Permission::SubscriptionsAdmin)?;
    let t = caller.principal.tenant.clone();
    let rows = state.db(move |s| s.subscription_list(&t)).await?;
    Ok(Json(rows.iter().map(info).collect()))
}

async fn load(state: &AppState, caller: &Caller, id: String) -> ApiResult<SubscriptionRow> {
    caller.require(Permission::SubscriptionsAdmin)?;
    let t = caller.principal.tenant.clone();
    state.db(move |s| s.subscription_get(&t, &id)).await
}

pub async fn subscription_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionInfo>> {
    Ok(Json(info(&load(&state, &caller, id).await?)))
}

pub async fn subscription_update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<SubscriptionPatch>,
) -> ApiResult<Json<SubscriptionInfo>> {
    let mut row = load(&state, &caller, id).await?;
    let before = row.clone();
    if let Some(url) = patch.url {
        check_url(&state, &url).await?;
        row.url = url;
    }
    if let Some(e) = patch.events {
        row.events = check_events(e)?;
    }
    if let Some(a) = patch.attributes {
        row.attributes = check_attributes(a)?;
    }
    match patch.state.as_deref() {
        None => {}
        Some("active") => {
            row.state = "active".into();
            row.disabled_reason = None;
        }
        Some("disabled") => {
            row.state = "disabled".into();
            row.disabled_reason = Some("disabled by an admin".into());
        }
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_subscription",
                "state: 'active' or 'disabled'",
            ))
        }
    }
    row.updated_at = state.clock.now();
    let audit = audit_update(&state, &caller, before);
    let row = state
        .db(move |s| s.subscription_update(&row, audit))
        .await?;
    Ok(Json(info(&row)))
}

/// The audit of an update: what it changed in the settings
/// (`subscription.updated`, new values, never a secret) and the state
/// (`subscription.disabled` or `subscription.enabled`); nothing for an
/// update that changed neither.
fn audit_update(
    state: &AppState,
    caller: &Caller,
    before: SubscriptionRow,
) -> Audit<SubscriptionRow> {
    let updated = crate::admin::audit_entry(state, caller, "subscription.updated", Value::Null);
    Box::new(move |after| settings_and_state_entries(updated, &before, after))
}

fn settings_and_state_entries(
    base: AuditDraft,
    before: &SubscriptionRow,
    after: &SubscriptionRow,
) -> Vec<AuditDraft> {
    let mut entries = Vec::new();
    let mut changed = serde_json::Map::new();
    if before.url != after.url {
        changed.insert("url".into(), audit_url(&after.url).into());
    }
    if before.events != after.events {
        changed.insert("events".into(), after.events.clone().into());
    }
    if before.attributes != after.attributes {
        changed.insert("attributes".into(), after.attributes.clone().into());
    }
    if !changed.is_empty() {
        changed.insert("subscription".into(), after.id.clone().into());
        entries.push(AuditDraft {
            detail: changed.into(),
            ..base.clone()
        });
    }
    if before.state != after.state {
        let action = if after.state == "active" {
            "subscription.enabled"
        } else {
            "subscription.disabled"
        };
        entries.push(AuditDraft {
            action: action.into(),
            detail: serde_json::json!({"subscription": after.id, "reason": after.disabled_reason}),
            ..base
        });
    }
    entries
}

pub async fn subscription_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::SubscriptionsAdmin)?;
    let t = caller.principal.tenant.clone();
    let sid = id.clone();
    let detail = serde_json::json!({ "subscription": id });
    let audit = crate::admin::recorded(&state, &caller, "subscription.deleted", move |_: &()| {
        detail
    });
    state
        .db(move |s| s.subscription_delete(&t, &sid, audit))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret; the old one keeps signing (a second signature in the
/// same header) until the overlap ends, so receivers can switch over.
pub async fn subscription_rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: bytes::Bytes,
) -> ApiResult<Json<SubscriptionCreated>> {
    let mut row = load(&state, &caller, id).await?;
    // The body is optional: an empty one takes the configured overlap.
    let overlap =
        crate::admin::rotation_overlap(&body, state.config.webhooks.secret_overlap_seconds)?;
    let now = state.clock.now();
    let secret = webhooks::new_secret();
    row.previous_secret_sealed = Some(std::mem::replace(
        &mut row.secret_sealed,
        seal(&state, &row.id, &secret),
    ));
    row.previous_until =
        Some(now + chrono::Duration::seconds(i64::try_from(overlap).unwrap_or(i64::MAX / 1000)));
    row.updated_at = now;
    let audit = crate::admin::recorded(
        &state,
        &caller,
        "subscription.secret_rotated",
        |r: &SubscriptionRow| {
            serde_json::json!({
                "subscription": r.id,
                "previous_secret_until": r.previous_until,
            })
        },
    );
    let row = state
        .db(move |s| s.subscription_update(&row, audit))
        .await?;
    tracing::info!(subscription = %row.id, "webhook secret rotated");
    Ok(Json(SubscriptionCreated {
        subscription: info(&row),
        secret,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

fn delivery_info(r: DeliveryRecord) -> DeliveryInfo {
    DeliveryInfo {
        seq: r.seq,
        event_id: r.event_id,
        cursor: r.cursor,
        attempt: r.attempt,
        at: r.at,
        status: r.status,
        outcome: r.outcome,
        error: r.error,
        manual: r.manual,
    }
}

pub async fn subscription_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<Page<DeliveryInfo>>> {
    let row = load(&state, &caller, id).await?;
    let limit = page_limit(q.limit)?;
    let after = q.after.unwrap_or(0);
    let rows = state
        .db(move |s| s.delivery_list(&row.id, after, limit))
        .await?;
    let next_cursor = if rows.len() == limit as usize {
        rows.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    Ok(Json(Page {
        items: rows.into_iter().map(delivery_info).collect(),
        next_cursor,
    }))
}

/// Queues events for delivery again: one (by id from the delivery log, or
/// by cursor) or a cursor range. The subscription's own filter and
/// attribute list still apply.
pub async fn subscription_redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RedeliverRequest>,
) -> ApiResult<(StatusCode, Json<SubscriptionInfo>)> {
    let row = load(&state, &caller, id).await?;
    let (from, to) =
        match (req.event_id, req.from_cursor, req.to_cursor) {
            (Some(ev), None, None) => {
                let sid = row.id.clone();
                let mut found = None;
                let mut after = 0;
                // The delivery log names the events a subscription was sent.
                loop {
                    let sid = sid.clone();
                    let page = state
                        .db(move |s| s.delivery_list(&sid, after, 1000))
                        .await?;
                    if let Some(r) = page.iter().find(|r| r.event_id == ev) {
                        found = Some(r.cursor);
                        break;
                    }
                    match page.last() {
                        Some(r) if page.len() == 1000 => after = r.seq,
                        _ => break,
                    }
                }
                let c = found.ok_or(ApiError::NotFound("event in this subscription's log"))?;
                (c, c)
            }
            (None, Some(f), t) if f >= 1 && t.is_none_or(|t| t >= f) => (f, t.unwrap_or(f)),
            _ => return Err(ApiError::unprocessable(
                "invalid_redelivery",
                "give event_id, or from_cursor (>= 1) and optionally to_cursor (>= from_cursor)",
            )),
        };
    let t = caller.principal.tenant.clone();
    let now = state.clock.now();
    let rid = row.id.clone();
    let audit = crate::admin::recorded(
        &state,
        &caller,
        "subscription.redelivery_requested",
        move |r: &SubscriptionRow| {
            serde_json::json!({
                "subscription": r.id,
                "from_cursor": from,
                "to_cursor": to,
            })
        },
    );
    let row = state
        .db(move |s| s.subscription_redeliver(&t, &rid, (from, to), now, audit))
        .await?;
    state.changes_committed.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(info(&row))))
}

//! The change feed (`GET /api/v1/changes`, `people:read`) and the
//! subscription admin API (`/api/v1/subscriptions`, `subscriptions:admin`),
//! see docs/events.md. Delivery itself is in [`crate::jobs::delivery`].
use crate::api::page_limit;
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use crate::http::json::JsonBody;
use crate::http::json::QueryParams;
use crate::jobs::sinks::nats::NatsTarget;
use crate::ops::input::Overlap;
use crate::ops::subscriptions::{self, load};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use muster_core::policy::Permission;
use muster_proto::ErrorCode;
use muster_proto::{
    ChangesPage, DeliveryInfo, Page, RedeliverRequest, SubscriptionCreated, SubscriptionInfo,
    SubscriptionKind, SubscriptionPatch, SubscriptionSpec,
};
use muster_store::{DeliveryRecord, SubscriptionRow};
use serde::Deserialize;
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
    QueryParams(q): QueryParams<ChangesQuery>,
) -> ApiResult<Json<ChangesPage>> {
    caller.require(Permission::PeopleRead)?;
    let limit = page_limit(q.limit)?;
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "after: must not be negative",
        ));
    }
    let wait = match q.wait {
        Some(w) if w > MAX_WAIT_SECONDS => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
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
    // The reader's read policy cuts the page down as a subscription's
    // attribute list does (docs/people.md#read-policies); the cursor still
    // moves past what it may not see.
    let policy = &caller.principal.read_policy;
    let allowed = (!policy.all_attributes()).then_some(policy.attributes.as_slice());
    Ok(Json(ChangesPage {
        items: events
            .iter()
            .filter(|e| policy.may_see(&e.kind))
            .filter_map(|e| crate::jobs::delivery::event_info(e, allowed))
            .collect(),
        next_cursor: next.to_string(),
    }))
}

fn info(s: &SubscriptionRow) -> SubscriptionInfo {
    SubscriptionInfo {
        id: s.id.clone(),
        kind: s.kind,
        url: s.url.clone(),
        subject_prefix: match s.kind {
            SubscriptionKind::Nats => Some(NatsTarget::of(s).subject_prefix),
            _ => None,
        },
        scim: match s.kind {
            SubscriptionKind::Scim => crate::jobs::sinks::scim::settings(s).ok(),
            _ => None,
        },
        provisioning: (s.kind == SubscriptionKind::Scim).then(|| {
            let q = s.progress.sink.quarantine.as_ref();
            muster_proto::ProvisioningState {
                backfilling: s.progress.sink.backfill.is_some(),
                quarantined_since: q.map(|q| q.since),
                quarantine_reason: q.map(|q| q.reason.clone()),
                backfill_error: s.progress.sink.backfill_error.clone(),
            }
        }),
        events: s.events.clone(),
        attributes: s.attributes.clone(),
        owner: s.owner.clone(),
        state: s.state.as_str().into(),
        disabled_reason: s.disabled_reason.clone(),
        cursor: s.progress.cursor,
        attempt: s.progress.attempt,
        next_attempt_at: s.progress.next_attempt_at,
        previous_secret_until: s.previous_until,
        created_at: s.created_at,
    }
}

pub async fn subscription_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SubscriptionInfo>>> {
    let rows = subscriptions::list(&state, &caller).await?;
    Ok(Json(rows.iter().map(info).collect()))
}

pub async fn subscription_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionInfo>> {
    Ok(Json(info(&load(&state, &caller, id).await?)))
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
    QueryParams(q): QueryParams<DeliveriesQuery>,
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

pub async fn subscription_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<SubscriptionSpec>,
) -> ApiResult<(StatusCode, Json<SubscriptionCreated>)> {
    let (row, secret) = subscriptions::create(&state, &caller, spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(SubscriptionCreated {
            subscription: info(&row),
            secret,
        }),
    ))
}

pub async fn subscription_update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<SubscriptionPatch>,
) -> ApiResult<Json<SubscriptionInfo>> {
    Ok(Json(info(
        &subscriptions::update(&state, &caller, id, patch).await?,
    )))
}

pub async fn subscription_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    subscriptions::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The optional body `{"overlap_seconds": N}`; an empty one takes the
/// configured overlap.
pub async fn subscription_rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: bytes::Bytes,
) -> ApiResult<Json<SubscriptionCreated>> {
    let overlap = Overlap::from_body(&body, state.config.webhooks.secret_overlap_seconds)?;
    let (row, secret) = subscriptions::rotate_secret(&state, &caller, id, overlap).await?;
    Ok(Json(SubscriptionCreated {
        subscription: info(&row),
        secret: Some(secret),
    }))
}

pub async fn subscription_redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RedeliverRequest>,
) -> ApiResult<(StatusCode, Json<SubscriptionInfo>)> {
    let row = subscriptions::redeliver(&state, &caller, id, req).await?;
    Ok((StatusCode::ACCEPTED, Json(info(&row))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileQuery {
    #[serde(default)]
    pub dry_run: bool,
}

pub async fn subscription_reconcile(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ReconcileQuery>,
) -> ApiResult<Json<muster_proto::ReconcileReport>> {
    Ok(Json(
        crate::jobs::sinks::scim::reconcile::reconcile(&state, &caller, id, q.dry_run).await?,
    ))
}

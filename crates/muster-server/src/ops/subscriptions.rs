//! Subscriptions, webhook, NATS or SCIM: a destination (checked by the
//! outbound rule), the events and attributes it gets, a secret sealed at
//! rest (a webhook's signing secret, rotated with an overlap; a NATS
//! server's credentials; a SCIM target's token or password), redeliveries.
//! A kind's own settings are checked by its sink's pure checks
//! (`jobs::sinks`); a SCIM target's reconcile is `jobs::sinks::scim::reconcile`. Administrators manage all of a
//! tenant's; a client with `subscriptions:own` manages those it made,
//! within its read policy. Delivery itself is `jobs::delivery`.
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use crate::http::outbound::Protocol;
use crate::jobs::sinks::{nats, scim, webhook};
use crate::ops::input::Overlap;
use muster_core::policy::Permission;
use muster_proto::ErrorCode;
use muster_proto::{
    NatsCredentials, RedeliverRequest, ScimSecret, ScimTarget, SubscriptionKind, SubscriptionPatch,
    SubscriptionSpec,
};
use muster_store::{
    Audit, AuditDraft, DeliveryProgress, SubscriptionRow, SubscriptionState, EVENT_KINDS,
};
use serde_json::Value;

fn check_events(events: Vec<String>) -> ApiResult<Vec<String>> {
    if events.is_empty() {
        return Ok(EVENT_KINDS.iter().map(|e| (*e).to_owned()).collect());
    }
    if let Some(bad) = events.iter().find(|e| !EVENT_KINDS.contains(&e.as_str())) {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidSubscription,
            format!("events: '{bad}' is not an event name"),
        ));
    }
    Ok(events)
}

fn check_attributes(attributes: Vec<String>) -> ApiResult<Vec<String>> {
    if attributes.is_empty() || attributes.iter().any(|a| a.trim().is_empty()) {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidSubscription,
            "attributes: list the attributes the receiver may get ('*' for all)",
        ));
    }
    Ok(attributes)
}

async fn check_url(state: &AppState, kind: SubscriptionKind, url: &str) -> ApiResult<()> {
    let protocol = match kind {
        SubscriptionKind::Webhook | SubscriptionKind::Scim => Protocol::Http,
        SubscriptionKind::Nats => Protocol::Nats,
    };
    crate::http::outbound::Rule::webhooks(&state.config)
        .check_registration_as(url, protocol)
        .await
        .map(|_| ())
        .map_err(|why| {
            ApiError::unprocessable(ErrorCode::InvalidSubscription, format!("url: {why}"))
        })
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
        .seal_box(&crate::base::sealed::secret_aad(id), secret.as_bytes())
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
    let updated =
        crate::ops::audit::audit_entry(state, caller, "subscription.updated", Value::Null);
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
    if before.target != after.target {
        changed.insert("target".into(), after.target.clone());
    }
    if after.kind != SubscriptionKind::Webhook && before.secret_sealed != after.secret_sealed {
        // That they changed, never what they are.
        changed.insert("credentials".into(), "replaced".into());
    }
    if !changed.is_empty() {
        changed.insert("subscription".into(), after.id.clone().into());
        entries.push(AuditDraft {
            detail: changed.into(),
            ..base.clone()
        });
    }
    if before.state != after.state {
        let action = if after.state == SubscriptionState::Active {
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

/// Who a caller manages subscriptions as: an administrator of all of the
/// tenant's (`None`), or a client of only those it owns, within its read
/// policy (`Some(its client id)`); anyone else is refused.
pub(crate) fn manager(caller: &Caller) -> ApiResult<Option<&str>> {
    if caller.has(Permission::SubscriptionsAdmin) {
        Ok(None)
    } else if caller.has(Permission::SubscriptionsOwn) {
        Ok(Some(caller.principal.client_id.as_str()))
    } else {
        Err(ApiError::Forbidden(
            Permission::SubscriptionsAdmin.as_str().to_owned(),
        ))
    }
}

/// A subscription of the caller's tenant that the caller manages; one it
/// does not is not found.
pub(crate) async fn load(
    state: &AppState,
    caller: &Caller,
    id: String,
) -> ApiResult<SubscriptionRow> {
    let owner = manager(caller)?.map(str::to_owned);
    let t = caller.principal.tenant.clone();
    let row = state.db(move |s| s.subscription_get(&t, &id)).await?;
    match owner {
        Some(o) if row.owner.as_deref() != Some(o.as_str()) => {
            Err(ApiError::NotFound("subscription"))
        }
        _ => Ok(row),
    }
}

/// The subscriptions of the caller's tenant that the caller manages.
pub(crate) async fn list(state: &AppState, caller: &Caller) -> ApiResult<Vec<SubscriptionRow>> {
    let owner = manager(caller)?.map(str::to_owned);
    let t = caller.principal.tenant.clone();
    let mut rows = state.db(move |s| s.subscription_list(&t)).await?;
    if let Some(o) = owner {
        rows.retain(|r| r.owner.as_deref() == Some(o.as_str()));
    }
    Ok(rows)
}

/// For a client managing its own subscription: the events and attributes
/// it asks for are within its read policy (`*` stands for all the policy
/// allows, now and as it changes).
fn within_read_policy(caller: &Caller, events: &[String], attributes: &[String]) -> ApiResult<()> {
    let policy = &caller.principal.read_policy;
    let outside = |what: String| {
        ApiError::unprocessable(
            ErrorCode::OutsideReadPolicy,
            format!(
                "{what} is outside the read policy of client '{}'",
                caller.principal.client_id
            ),
        )
    };
    if let Some(e) = events.iter().find(|e| !policy.may_see(e)) {
        return Err(outside(format!("events: '{e}'")));
    }
    if let Some(a) = attributes.iter().find(|a| *a != "*" && !policy.may_read(a)) {
        return Err(outside(format!("attributes: '{a}'")));
    }
    Ok(())
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable(ErrorCode::InvalidSubscription, detail)
}

/// A `nats` subscription's subject prefix, checked.
fn nats_target(prefix: Option<String>) -> ApiResult<Value> {
    let prefix = prefix.unwrap_or_else(|| nats::DEFAULT_PREFIX.to_owned());
    nats::check_prefix(&prefix).map_err(|why| invalid(format!("subject_prefix: {why}")))?;
    Ok(serde_json::to_value(nats::NatsTarget {
        subject_prefix: prefix,
    })
    .unwrap_or_default())
}

fn nats_credentials(c: &NatsCredentials) -> ApiResult<()> {
    nats::check_credentials(c).map_err(|why| invalid(format!("credentials: {why}")))
}

/// Which kind-specific settings a request gives.
struct Given {
    subject_prefix: bool,
    credentials: bool,
    scim: bool,
    scim_secret: bool,
}

/// Settings of one kind given to a subscription of another.
fn only_its_own(kind: SubscriptionKind, g: Given) -> ApiResult<()> {
    let nats = kind == SubscriptionKind::Nats;
    let scim = kind == SubscriptionKind::Scim;
    match () {
        _ if g.subject_prefix && !nats => {
            Err(invalid("subject_prefix: only a nats subscription has one"))
        }
        _ if g.credentials && !nats => {
            Err(invalid("credentials: only a nats subscription has them"))
        }
        _ if g.scim && !scim => Err(invalid("scim: only a scim subscription has these settings")),
        _ if g.scim_secret && !scim => {
            Err(invalid("scim_secret: only a scim subscription has one"))
        }
        _ => Ok(()),
    }
}

/// A `scim` subscription's settings and secret, checked: the mapping and
/// scope parse, the limits are in range, the secret its `auth` needs is
/// there, and an OAuth token endpoint is a destination the outbound rule
/// allows.
async fn scim_target(
    state: &AppState,
    t: &ScimTarget,
    secret: &ScimSecret,
    attributes: &[String],
) -> ApiResult<Value> {
    scim::map::Plan::new(t, attributes).map_err(invalid)?;
    scim::client::check_auth(t, secret).map_err(invalid)?;
    if !(1..=32).contains(&t.concurrency) {
        return Err(invalid("scim.concurrency: from 1 to 32"));
    }
    if let Some(url) = &t.token_url {
        crate::http::outbound::Rule::webhooks(&state.config)
            .check_registration_as(url, Protocol::Http)
            .await
            .map_err(|why| invalid(format!("scim.token_url: {why}")))?;
    }
    Ok(serde_json::to_value(t).unwrap_or_default())
}

/// Creates a subscription from its cursor now (or from the beginning of the
/// feed). Returns it and, for a webhook, its signing secret, which is
/// shown once.
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    spec: SubscriptionSpec,
) -> ApiResult<(SubscriptionRow, Option<String>)> {
    let owner = manager(caller)?.map(str::to_owned);
    let policy = &caller.principal.read_policy;
    // A node that names no events gets those its read policy allows.
    let events = if spec.events.is_empty() && owner.is_some() && !policy.events.is_empty() {
        policy.events.clone()
    } else {
        check_events(spec.events)?
    };
    let attributes = check_attributes(spec.attributes)?;
    if owner.is_some() {
        within_read_policy(caller, &events, &attributes)?;
    }
    check_url(state, spec.kind, &spec.url).await?;
    // What is sealed: a webhook's signing secret (shown once), a NATS
    // subscription's credentials (never shown).
    only_its_own(
        spec.kind,
        Given {
            subject_prefix: spec.subject_prefix.is_some(),
            credentials: spec.credentials.is_some(),
            scim: spec.scim.is_some(),
            scim_secret: spec.scim_secret.is_some(),
        },
    )?;
    let (target, sealed, shown) = match spec.kind {
        SubscriptionKind::Webhook => {
            let secret = webhook::new_secret();
            (Value::Null, secret.clone(), Some(secret))
        }
        SubscriptionKind::Scim => {
            let t = spec.scim.clone().unwrap_or_default();
            let secret = spec.scim_secret.clone().unwrap_or_default();
            (
                scim_target(state, &t, &secret, &attributes).await?,
                scim::client::secret_text(&Some(secret)),
                None,
            )
        }
        SubscriptionKind::Nats => {
            if let Some(c) = &spec.credentials {
                nats_credentials(c)?;
            }
            (
                nats_target(spec.subject_prefix)?,
                nats::credentials_text(&spec.credentials),
                None,
            )
        }
    };
    let tenant = caller.principal.tenant.clone();
    let cursor = if spec.from_beginning {
        0
    } else {
        let t = tenant.clone();
        state.db(move |s| s.changes_head(&t)).await?
    };
    let id = format!("sub_{}", uuid::Uuid::new_v4().simple());
    let now = state.clock.now();
    let row = SubscriptionRow {
        secret_sealed: seal(state, &id, &sealed),
        id,
        tenant,
        kind: spec.kind,
        url: spec.url,
        target,
        events,
        attributes,
        owner,
        previous_secret_sealed: None,
        previous_until: None,
        state: SubscriptionState::Active,
        disabled_reason: None,
        progress: DeliveryProgress {
            cursor,
            // A SCIM target gets the people already there first, then
            // every change from now on.
            sink: muster_store::SinkProgress {
                backfill: (spec.kind == SubscriptionKind::Scim).then(String::new),
                quarantine: None,
                backfill_error: None,
                failed_for: None,
            },
            ..Default::default()
        },
        created_at: now,
        updated_at: now,
    };
    let audit = crate::ops::audit::recorded(
        state,
        caller,
        "subscription.created",
        |r: &SubscriptionRow| {
            serde_json::json!({
                "subscription": r.id,
                "kind": r.kind.as_str(),
                "url": audit_url(&r.url),
                "target": r.target,
                "events": r.events,
                "attributes": r.attributes,
                "owner": r.owner,
                "cursor": r.progress.cursor,
            })
        },
    );
    let row = state.db(move |s| s.subscription_create(row, audit)).await?;
    // A backlog (from_beginning) starts now, not at the next poll.
    state.changes_committed.notify_waiters();
    tracing::info!(subscription = %row.id, kind = row.kind.as_str(), "subscription created");
    Ok((row, shown))
}

/// Changes a subscription's destination, filters or state.
pub(crate) async fn update(
    state: &AppState,
    caller: &Caller,
    id: String,
    patch: SubscriptionPatch,
) -> ApiResult<SubscriptionRow> {
    let mut row = load(state, caller, id).await?;
    let before = row.clone();
    if let Some(url) = patch.url {
        check_url(state, row.kind, &url).await?;
        row.url = url;
    }
    only_its_own(
        row.kind,
        Given {
            subject_prefix: patch.subject_prefix.is_some(),
            credentials: patch.credentials.is_some(),
            scim: patch.scim.is_some(),
            scim_secret: patch.scim_secret.is_some(),
        },
    )?;
    if let Some(a) = patch.attributes.clone() {
        row.attributes = check_attributes(a)?;
    }
    match row.kind {
        SubscriptionKind::Webhook => {}
        SubscriptionKind::Scim => {
            if patch.scim.is_some() || patch.scim_secret.is_some() || patch.attributes.is_some() {
                let t = match patch.scim.clone() {
                    Some(t) => t,
                    None => scim::settings(&row).map_err(invalid)?,
                };
                let secret = match patch.scim_secret.clone() {
                    Some(s) => s,
                    None => scim::client::secret(state, &row).map_err(|_| {
                        invalid("scim_secret: the stored secret does not open; give it again")
                    })?,
                };
                row.target = scim_target(state, &t, &secret, &row.attributes).await?;
                if patch.scim_secret.is_some() {
                    row.secret_sealed =
                        seal(state, &row.id, &scim::client::secret_text(&Some(secret)));
                }
            }
        }
        SubscriptionKind::Nats => {
            if let Some(p) = patch.subject_prefix {
                row.target = nats_target(Some(p))?;
            }
            if let Some(c) = patch.credentials {
                nats_credentials(&c)?;
                row.secret_sealed = seal(state, &row.id, &nats::credentials_text(&Some(c)));
            }
        }
    }
    if let Some(e) = patch.events {
        row.events = check_events(e)?;
    }
    if row.owner.is_some() && !caller.has(Permission::SubscriptionsAdmin) {
        within_read_policy(caller, &row.events, &row.attributes)?;
    }
    match patch.state.as_deref() {
        None => {}
        Some("active") => {
            row.state = SubscriptionState::Active;
            row.disabled_reason = None;
        }
        Some("disabled") => {
            row.state = SubscriptionState::Disabled;
            row.disabled_reason = Some("disabled by an admin".into());
        }
        Some(_) => {
            return Err(ApiError::unprocessable(
                ErrorCode::InvalidSubscription,
                "state: 'active' or 'disabled'",
            ))
        }
    }
    row.updated_at = state.clock.now();
    let audit = audit_update(state, caller, before);
    state.db(move |s| s.subscription_update(&row, audit)).await
}

pub(crate) async fn delete(state: &AppState, caller: &Caller, id: String) -> ApiResult<()> {
    let row = load(state, caller, id).await?;
    let (t, sid, id) = (row.tenant, row.id.clone(), row.id);
    let detail = serde_json::json!({ "subscription": id });
    let audit =
        crate::ops::audit::recorded(state, caller, "subscription.deleted", move |_: &()| detail);
    state
        .db(move |s| s.subscription_delete(&t, &sid, audit))
        .await?;
    Ok(())
}

/// A new secret; the old one keeps signing (a second signature in the
/// same header) until the overlap ends, so receivers can switch over.
pub(crate) async fn rotate_secret(
    state: &AppState,
    caller: &Caller,
    id: String,
    overlap: Overlap,
) -> ApiResult<(SubscriptionRow, String)> {
    let mut row = load(state, caller, id).await?;
    if row.kind != SubscriptionKind::Webhook {
        return Err(invalid(format!(
            "a {} subscription signs nothing: change its credentials with PATCH",
            row.kind.as_str()
        )));
    }
    let overlap = overlap.seconds();
    let now = state.clock.now();
    let secret = webhook::new_secret();
    row.previous_secret_sealed = Some(std::mem::replace(
        &mut row.secret_sealed,
        seal(state, &row.id, &secret),
    ));
    row.previous_until =
        Some(now + chrono::Duration::seconds(i64::try_from(overlap).unwrap_or(i64::MAX / 1000)));
    row.updated_at = now;
    let audit = crate::ops::audit::recorded(
        state,
        caller,
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
    Ok((row, secret))
}

/// Queues events for delivery again: one (by id from the delivery log, or
/// by cursor) or a cursor range. The subscription's own filter and
/// attribute list still apply.
pub(crate) async fn redeliver(
    state: &AppState,
    caller: &Caller,
    id: String,
    req: RedeliverRequest,
) -> ApiResult<SubscriptionRow> {
    let row = load(state, caller, id).await?;
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
                ErrorCode::InvalidRedelivery,
                "give event_id, or from_cursor (>= 1) and optionally to_cursor (>= from_cursor)",
            )),
        };
    let t = caller.principal.tenant.clone();
    let now = state.clock.now();
    let rid = row.id.clone();
    let audit = crate::ops::audit::recorded(
        state,
        caller,
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
    Ok(row)
}

//! Reconciling a SCIM target (docs/provisioning.md#reconcile): every User
//! on the target is read and compared with what Muster says each person
//! should be there. Drift made behind Muster's back is repaired (or, dry,
//! only reported): changed attributes, Users deleted on the target,
//! people who should be inactive but are not, memberships of the Groups
//! Muster manages, and Users no person is linked to (deactivated only
//! when the target's settings say so).
use super::map::{is_active, Desired, TargetPath};
use super::{forget_link, links, put_link, Round};
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use muster_proto::{
    ErrorCode, ReconcileChange, ReconcileFailure, ReconcileReport, ScimExtraUsers, ScimMatch,
    SubscriptionKind,
};
use muster_store::{LinkKind, SubscriptionRow};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Users read from a target at most (a bigger directory is refused
/// rather than read in part).
const MAX_TARGET_USERS: usize = 200_000;
const PAGE: usize = 100;

/// Why a reconcile stopped.
pub(crate) type Stop = String;

/// Reconciles a subscription the caller manages (the operation behind
/// `POST /api/v1/subscriptions/{id}/reconcile`): with `dry_run` it only
/// reports. A reconcile that may have changed something is audited with
/// the counts of what it found, never values.
pub(crate) async fn reconcile(
    state: &AppState,
    caller: &Caller,
    id: String,
    dry_run: bool,
) -> ApiResult<ReconcileReport> {
    let row = crate::ops::subscriptions::load(state, caller, id).await?;
    let refused = |why: String| ApiError::unprocessable(ErrorCode::InvalidSubscription, why);
    if row.kind != SubscriptionKind::Scim {
        return Err(refused(format!(
            "only a scim subscription is reconciled; this one is {}",
            row.kind.as_str()
        )));
    }
    let http = crate::jobs::delivery::http_client(state).map_err(refused)?;
    let cfg = super::settings(&row).map_err(refused)?;
    let shared = std::sync::Arc::new(super::client::Shared::new(
        crate::jobs::sinks::fingerprint(&row),
        cfg.concurrency,
    ));
    let round = Round::new(http, state, &row, cfg, shared).map_err(refused)?;
    let report = run(state, &row, &round, dry_run)
        .await
        .map_err(|why| ApiError::unprocessable(ErrorCode::TargetFailed, why))?;
    if !dry_run {
        let d = crate::ops::audit::audit_entry(
            state,
            caller,
            "subscription.reconciled",
            serde_json::json!({
                "subscription": row.id,
                "target_users": report.target_users,
                "created": report.created.len(),
                "linked": report.linked.len(),
                "updated": report.updated.len(),
                "deactivated": report.deactivated.len(),
                "memberships": report.memberships,
                "extra": report.extra.len(),
                "failed": report.failed.len(),
            }),
        );
        state.db(move |s| s.audit_append(d)).await?;
    }
    tracing::info!(subscription = %row.id, dry_run, "a SCIM target was reconciled");
    Ok(report)
}

async fn read_all(
    round: &Round,
    sub: &SubscriptionRow,
    kind: &str,
    attrs: &str,
) -> Result<Vec<Value>, Stop> {
    let mut out: Vec<Value> = Vec::new();
    let mut start = 1usize;
    loop {
        let path = format!("/{kind}?startIndex={start}&count={PAGE}{attrs}");
        let a = round
            .target()
            .call(sub, Method::GET, &path, None)
            .await
            .map_err(|f| format!("reading the target's {kind}: {}", f.error))?;
        if a.status != 200 {
            return Err(format!(
                "reading the target's {kind}: it answered {}",
                a.status
            ));
        }
        let page = a
            .body
            .get("Resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = a
            .body
            .get("totalResults")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let n = page.len();
        out.extend(page);
        if out.len() > MAX_TARGET_USERS {
            return Err(format!(
                "the target holds more than {MAX_TARGET_USERS} {kind}"
            ));
        }
        if n == 0 || out.len() >= total {
            return Ok(out);
        }
        start += n;
    }
}

fn id_of(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

/// What the target holds for `user` at the mapped paths, as a [`Desired`]
/// that PATCH operations can be computed from.
fn as_found(round: &Round, user: &Value, groups: BTreeSet<String>) -> Desired {
    let mut attrs = BTreeMap::new();
    for (path, key, _) in &round.plan().paths {
        if let Some(v) = path.get(user) {
            attrs.insert(key.clone(), v.clone());
        }
    }
    Desired {
        attrs,
        active: is_active(user),
        in_scope: true,
        groups,
    }
}

async fn run(
    state: &AppState,
    sub: &SubscriptionRow,
    round: &Round,
    dry_run: bool,
) -> Result<ReconcileReport, Stop> {
    let mut report = ReconcileReport {
        dry_run,
        ..Default::default()
    };
    let users = read_all(round, sub, "Users", "").await?;
    report.target_users = users.len() as u64;
    let by_id: HashMap<&str, &Value> = users.iter().filter_map(|u| Some((id_of(u)?, u))).collect();
    // The match attribute's values, as the target compares them (userName
    // without case, RFC 7643 4.1.1; externalId exactly).
    let match_key = |v: &str| match round.target().cfg.match_on {
        ScimMatch::UserName => v.to_lowercase(),
        ScimMatch::ExternalId => v.to_owned(),
    };
    let match_attr = match round.target().cfg.match_on {
        ScimMatch::UserName => "userName",
        ScimMatch::ExternalId => "externalId",
    };
    let by_match: HashMap<String, &str> = users
        .iter()
        .filter_map(|u| Some((match_key(u.get(match_attr)?.as_str()?), id_of(u)?)))
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    // Who should be in each managed Group, and who Muster links at all.
    let mut members: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let (t, a) = (sub.tenant.clone(), after.clone());
        let rows = state
            .db(move |s| s.person_list(&t, a.as_deref(), 500))
            .await
            .map_err(|_| "the database failed".to_owned())?;
        let Some(last) = rows.last() else { break };
        after = Some(last.external_id.as_str().to_owned());
        let keys: Vec<String> = rows
            .iter()
            .map(|r| r.external_id.as_str().to_owned())
            .collect();
        let found = links(state, sub, LinkKind::User, keys)
            .await
            .map_err(|f| f.error)?;
        for (row, link) in rows.iter().zip(found) {
            let ext = row.external_id.as_str().to_owned();
            let want = round.desired(state, sub, row).await.map_err(|f| f.error)?;
            report.in_scope += u64::from(want.in_scope);
            let on_target = link
                .as_ref()
                .and_then(|l| by_id.get(l.target_id.as_str()).copied());
            let fix = match (&link, on_target) {
                (Some(l), Some(user)) => {
                    seen.insert(l.target_id.clone());
                    let drift = want.drift(round.plan(), user);
                    if drift.is_empty() {
                        None
                    } else {
                        if !want.active && is_active(user) {
                            report.deactivated.push(ext.clone());
                        } else {
                            report.updated.push(ReconcileChange {
                                external_id: ext.clone(),
                                paths: drift,
                            });
                        }
                        let groups = Desired::from_sent(&l.sent)
                            .map(|d| d.groups)
                            .unwrap_or_default();
                        Some(Some(as_found(round, user, groups)))
                    }
                }
                // Deleted on the target: made again if it should be there.
                (Some(_), None) => {
                    if want.active {
                        report.created.push(ext.clone());
                    }
                    Some(None)
                }
                (None, _) if !want.active => None,
                (None, _) => {
                    let id = want
                        .attrs
                        .get(match_attr)
                        .and_then(Value::as_str)
                        .and_then(|v| by_match.get(&match_key(v)).copied());
                    match id {
                        Some(id) => {
                            seen.insert(id.to_owned());
                            report.linked.push(ext.clone());
                            let drift = by_id
                                .get(id)
                                .map(|u| want.drift(round.plan(), u))
                                .unwrap_or_default();
                            if !drift.is_empty() {
                                report.updated.push(ReconcileChange {
                                    external_id: ext.clone(),
                                    paths: drift,
                                });
                            }
                        }
                        None => report.created.push(ext.clone()),
                    }
                    Some(None)
                }
            };
            let mut member_of = |target_id: &str| {
                for g in &want.groups {
                    members
                        .entry(g.clone())
                        .or_default()
                        .insert(target_id.to_owned());
                }
            };
            let before = match fix {
                Some(before) if !dry_run => before,
                _ => {
                    if let Some(l) = &link {
                        member_of(&l.target_id);
                    }
                    continue;
                }
            };
            // Repaired through the same steps as an event: from what the
            // target holds (or, unlinked or gone, from nothing).
            let fixed = async {
                match (&link, before) {
                    (Some(l), Some(found)) => {
                        put_link(
                            state,
                            sub,
                            LinkKind::User,
                            &ext,
                            &l.target_id,
                            found.to_sent(),
                        )
                        .await?;
                    }
                    (Some(_), None) => forget_link(state, sub, LinkKind::User, &ext).await?,
                    (None, _) => {}
                }
                let current = links(state, sub, LinkKind::User, vec![ext.clone()])
                    .await?
                    .pop()
                    .flatten();
                round.apply(state, sub, &ext, &want, current).await?;
                links(state, sub, LinkKind::User, vec![ext.clone()]).await
            }
            .await;
            match fixed {
                Ok(now) => {
                    if let Some(Some(l)) = now.first() {
                        seen.insert(l.target_id.clone());
                        member_of(&l.target_id);
                    }
                }
                Err(f) => report.failed.push(ReconcileFailure {
                    external_id: ext.clone(),
                    error: f.error,
                }),
            }
        }
        if rows.len() < 500 {
            break;
        }
    }
    // Users no person is linked to.
    let linked_ids: HashSet<String> = seen.clone();
    for u in &users {
        let Some(id) = id_of(u) else { continue };
        if linked_ids.contains(id) {
            continue;
        }
        report.extra.push(id.to_owned());
        if round.target().cfg.extra_users == ScimExtraUsers::Deactivate && is_active(u) && !dry_run
        {
            let body = json!({"schemas": [super::PATCH_OP],
                "Operations": [{"op": "replace", "path": "active", "value": false}]});
            let path = format!("/Users/{}", urlencoding::encode(id));
            if let Err(f) = round
                .target()
                .call(sub, Method::PATCH, &path, Some(&body))
                .await
            {
                return Err(format!(
                    "deactivating a User no person is linked to: {}",
                    f.error
                ));
            }
        }
    }
    report.extra_deactivated = round.target().cfg.extra_users == ScimExtraUsers::Deactivate
        && !dry_run
        && !report.extra.is_empty();
    if round.plan().groups {
        report.memberships = groups(state, sub, round, &members, &linked_ids, dry_run).await?;
    }
    Ok(report)
}

/// Makes the members of each Group Muster manages be the linked people
/// holding its role; members Muster does not link are left alone.
async fn groups(
    state: &AppState,
    sub: &SubscriptionRow,
    round: &Round,
    members: &BTreeMap<String, HashSet<String>>,
    linked: &HashSet<String>,
    dry_run: bool,
) -> Result<u64, Stop> {
    let mut changed = 0u64;
    let mut after = String::new();
    let members_path = TargetPath::parse("members").map_err(|e| e.to_string())?;
    loop {
        let (id, a) = (sub.id.clone(), after.clone());
        let page = state
            .db(move |s| s.target_link_list(&id, LinkKind::Group, &a, 200))
            .await
            .map_err(|_| "the database failed".to_owned())?;
        let Some(last) = page.last() else { break };
        after = last.key.clone();
        for g in &page {
            let path = format!("/Groups/{}", urlencoding::encode(&g.target_id));
            let a = round
                .target()
                .call(sub, Method::GET, &path, None)
                .await
                .map_err(|f| format!("reading a Group: {}", f.error))?;
            if a.status == 404 {
                // Gone on the target: the next change of one of its
                // people makes it again.
                if !dry_run {
                    forget_link(state, sub, LinkKind::Group, &g.key)
                        .await
                        .map_err(|f| f.error)?;
                }
                continue;
            }
            let have: HashSet<String> = members_path
                .get(&a.body)
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .filter_map(|v| v.get("value").and_then(Value::as_str).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let empty = HashSet::new();
            let want = members.get(&g.key).unwrap_or(&empty);
            let mut ops = Vec::new();
            let add: Vec<Value> = want
                .difference(&have)
                .map(|id| json!({"value": id}))
                .collect();
            if !add.is_empty() {
                changed += add.len() as u64;
                ops.push(json!({"op": "add", "path": "members", "value": add}));
            }
            for id in have
                .iter()
                .filter(|id| linked.contains(*id) && !want.contains(*id))
            {
                changed += 1;
                ops.push(json!({"op": "remove",
                    "path": format!("members[value eq {}]", Value::String(id.clone()))}));
            }
            if ops.is_empty() || dry_run {
                continue;
            }
            let body = json!({"schemas": [super::PATCH_OP], "Operations": ops});
            round
                .target()
                .call(sub, Method::PATCH, &path, Some(&body))
                .await
                .map_err(|f| format!("repairing a Group's members: {}", f.error))?;
        }
        if page.len() < 200 {
            break;
        }
    }
    Ok(changed)
}

//! The people API: single and batch upserts (`people:write`), reads
//! (`people:read`). Writes go through the same gate and the same store
//! call as imports.
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::state::AppState;
use crate::write::{incoming_from_api, policy_errors};
use axum::extract::{Path, Query, State};
use axum::Json;
use muster_core::policy::Permission;
use muster_core::ExternalId;
use muster_proto::*;
use muster_store::{BatchItem, PersonRow, WriteContext};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};

fn write_context(state: &AppState, caller: &Caller) -> WriteContext {
    WriteContext {
        tenant: caller.principal.tenant.clone(),
        principal: caller.name(),
        on_behalf_of: caller.on_behalf_of.clone(),
        source: "api".into(),
        policy: caller.principal.write_policy.clone(),
        now: state.clock.now(),
        source_system: None,
    }
}

/// Checks every item, applies the good ones in one transaction, and answers
/// per item in request order.
async fn sync_items(
    state: &AppState,
    caller: &Caller,
    items: Vec<SyncItem>,
) -> ApiResult<Vec<SyncResult>> {
    let mut results: Vec<Option<SyncResult>> = Vec::with_capacity(items.len());
    let mut batch = Vec::new();
    let mut slots = Vec::new();
    let mut seen = HashSet::new();
    let client = caller.principal.client_id.clone();
    for (i, item) in items.iter().enumerate() {
        let row = i as u64 + 1;
        let fail = |errors: Vec<RowErrorInfo>| SyncResult {
            external_id: item.external_id.clone(),
            status: "error".into(),
            version: None,
            errors,
        };
        match incoming_from_api(
            row,
            &item.external_id,
            &item.attributes,
            item.roles.as_ref(),
        ) {
            Err(errors) => results.push(Some(fail(errors))),
            Ok(inc) => {
                let errors =
                    policy_errors(row, &client, &caller.principal.write_policy, &inc, &|_| {
                        None
                    });
                if !errors.is_empty() {
                    results.push(Some(fail(errors)));
                } else if !seen.insert(inc.external_id.clone()) {
                    results.push(Some(fail(vec![RowErrorInfo {
                        row,
                        column: None,
                        attribute: None,
                        code: "duplicate_key".into(),
                        message: "the same external_id appears earlier in this request".into(),
                    }])));
                } else {
                    slots.push(i);
                    results.push(None);
                    batch.push(BatchItem::new(row, inc));
                }
            }
        }
    }
    // Managers must be in this request or already stored.
    let refused = crate::write::manager_errors(state, &caller.principal.tenant, &batch).await?;
    if !refused.is_empty() {
        let bad: HashSet<usize> = refused.iter().map(|(i, _)| *i).collect();
        for (i, error) in refused {
            let slot = slots[i];
            results[slot] = Some(SyncResult {
                external_id: items[slot].external_id.clone(),
                status: "error".into(),
                version: None,
                errors: vec![error],
            });
        }
        let (mut kept_slots, mut kept) = (Vec::new(), Vec::new());
        for (i, (slot, item)) in slots.into_iter().zip(batch).enumerate() {
            if !bad.contains(&i) {
                kept_slots.push(slot);
                kept.push(item);
            }
        }
        slots = kept_slots;
        batch = kept;
    }
    if !batch.is_empty() {
        let ctx = write_context(state, caller);
        let applied = state
            .db(move |s| s.apply_batch(&ctx, batch, None, false))
            .await?;
        state.changes_committed.notify_waiters();
        for (slot, r) in slots.into_iter().zip(applied) {
            results[slot] = Some(SyncResult {
                external_id: items[slot].external_id.clone(),
                status: r.kind.as_str().into(),
                version: Some(r.version),
                errors: Vec::new(),
            });
        }
    }
    Ok(results.into_iter().flatten().collect())
}

pub async fn person_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(external_id): Path<String>,
    JsonBody(input): JsonBody<PersonInput>,
) -> ApiResult<Json<SyncResult>> {
    caller.require(Permission::PeopleWrite)?;
    let item = SyncItem {
        external_id,
        attributes: input.attributes,
        roles: input.roles,
    };
    let mut out = sync_items(&state, &caller, vec![item]).await?;
    let r = out
        .pop()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no result for a single upsert")))?;
    if r.status == "error" {
        return Err(ApiError::Unprocessable {
            code: "invalid_person",
            detail: "the person was not written; see errors".into(),
            errors: r.errors,
        });
    }
    Ok(Json(r))
}

pub async fn people_sync(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<SyncRequest>,
) -> ApiResult<Json<SyncResponse>> {
    caller.require(Permission::PeopleWrite)?;
    let max = state.config.limits.max_sync_items;
    if req.people.len() > max {
        return Err(ApiError::PayloadTooLarge(format!(
            "people: at most {max} items per request"
        )));
    }
    let results = sync_items(&state, &caller, req.people).await?;
    Ok(Json(SyncResponse { results }))
}

pub fn person_info(p: PersonRow) -> PersonInfo {
    PersonInfo {
        external_id: p.external_id.to_string(),
        attributes: p
            .state
            .attrs
            .into_iter()
            .map(|(k, v)| (k, v.into_json()))
            .collect::<BTreeMap<_, _>>(),
        roles: p.state.roles.into_iter().collect(),
        version: p.version,
        updated_at: p.updated_at,
        updated_by: p.updated_by,
        on_behalf_of: p.on_behalf_of,
        source: p.source,
        source_system: p.source_system,
    }
}

pub async fn person_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(external_id): Path<String>,
) -> ApiResult<Json<PersonInfo>> {
    caller.require(Permission::PeopleRead)?;
    let id = ExternalId::parse(&external_id).map_err(|_| ApiError::NotFound("person"))?;
    let t = caller.principal.tenant.clone();
    let p = state.db_read(move |s| s.person_get(&t, &id)).await?;
    Ok(Json(person_info(p)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub after: Option<String>,
    pub limit: Option<u32>,
}

pub fn page_limit(limit: Option<u32>) -> ApiResult<u32> {
    match limit {
        None => Ok(100),
        Some(l) if (1..=1000).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::bad_request(
            "invalid_parameter",
            "limit: must be between 1 and 1000",
        )),
    }
}

pub async fn person_list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<PersonInfo>>> {
    caller.require(Permission::PeopleRead)?;
    let limit = page_limit(q.limit)?;
    let t = caller.principal.tenant.clone();
    let rows = state
        .db(move |s| s.person_list(&t, q.after.as_deref(), limit))
        .await?;
    let next_cursor = if rows.len() == limit as usize {
        rows.last().map(|p| p.external_id.to_string())
    } else {
        None
    };
    Ok(Json(Page {
        items: rows.into_iter().map(person_info).collect(),
        next_cursor,
    }))
}

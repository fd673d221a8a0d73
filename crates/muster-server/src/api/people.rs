//! The people API: single and batch upserts (`people:write`, the operation
//! `ops::people::write`), reads (`people:read`).
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use crate::http::json::JsonBody;
use crate::http::json::QueryParams;
use axum::extract::{Path, State};
use axum::Json;
use muster_core::policy::{Permission, ReadPolicy};
use muster_core::ExternalId;
use muster_proto::*;
use muster_store::PersonRow;
use serde::Deserialize;
use std::collections::BTreeMap;

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
    let mut out = crate::ops::people::write(&state, &caller, vec![item]).await?;
    let r = out
        .pop()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no result for a single upsert")))?;
    if r.status == "error" {
        return Err(ApiError::Unprocessable {
            code: ErrorCode::InvalidPerson,
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
    let results = crate::ops::people::write(&state, &caller, req.people).await?;
    Ok(Json(SyncResponse { results }))
}

/// A person as a reader with `policy` may see them
/// (docs/people.md#read-policies): only the attributes it allows, and the
/// roles only if it allows `roles`.
pub fn person_info(p: PersonRow, policy: &ReadPolicy) -> PersonInfo {
    PersonInfo {
        external_id: p.external_id.to_string(),
        attributes: p
            .state
            .attrs
            .into_iter()
            .filter(|(k, _)| policy.may_read(k))
            .map(|(k, v)| (k, v.into_json()))
            .collect::<BTreeMap<_, _>>(),
        roles: if policy.may_read(muster_core::schema::ROLES) {
            p.state.roles.into_iter().collect()
        } else {
            Vec::new()
        },
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
    Ok(Json(person_info(p, &caller.principal.read_policy)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub after: Option<String>,
    pub limit: Option<u32>,
}

pub async fn person_list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Page<PersonInfo>>> {
    caller.require(Permission::PeopleRead)?;
    let limit = crate::api::page_limit(q.limit)?;
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
        items: rows
            .into_iter()
            .map(|p| person_info(p, &caller.principal.read_policy))
            .collect(),
        next_cursor,
    }))
}

/// `POST /api/v1/effective-dates/run`: applies the caller's tenant's due
/// transitions now.
pub async fn effective_dates_run(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<EffectiveDatesRun>> {
    caller.require(Permission::TenantAdmin)?;
    let applied = crate::ops::people::settle_due(&state, &caller.principal.tenant).await?;
    Ok(Json(EffectiveDatesRun { applied }))
}

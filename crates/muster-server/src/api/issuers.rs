//! Login-sync issuers over HTTP (`/api/v1/issuers`, `clients:admin`). The
//! operations are `ops::issuers`.
use crate::auth::login_sync::principal_name;
use crate::auth::Caller;
use crate::base::error::ApiResult;
use crate::base::state::AppState;
use crate::http::json::JsonBody;
use crate::ops::issuers;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use muster_core::policy::Permission;
use muster_proto::{IssuerInfo, IssuerSpec, WritePolicyInfo};
use muster_store::IssuerRow;

fn issuer_info(i: &IssuerRow) -> IssuerInfo {
    IssuerInfo {
        name: i.name.clone(),
        issuer: i.issuer.clone(),
        audience: i.audience.clone(),
        algorithms: i.settings.algorithms.clone(),
        clock_skew_seconds: i.settings.clock_skew_seconds,
        jwks: i
            .settings
            .jwks
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok()),
        jwks_url: i.settings.jwks_url.clone(),
        jwks_cache_seconds: i.settings.jwks_cache_seconds,
        hs256: i.hs256_sealed.is_some(),
        mapping: i.settings.mapping.clone(),
        roles_claim: i.settings.roles_claim.clone(),
        write_policy: WritePolicyInfo {
            attributes: i.settings.write_policy.attributes.clone(),
            roles: i.settings.write_policy.roles.clone(),
        },
        principal: principal_name(i),
        created_at: i.created_at,
    }
}

pub async fn issuer_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<IssuerInfo>>> {
    caller.require(Permission::ClientsAdmin)?;
    let t = caller.principal.tenant.clone();
    let rows = state.db(move |s| s.issuer_list(&t)).await?;
    Ok(Json(rows.iter().map(issuer_info).collect()))
}

pub async fn issuer_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<IssuerInfo>> {
    caller.require(Permission::ClientsAdmin)?;
    let t = caller.principal.tenant.clone();
    let row = state.db(move |s| s.issuer_get(&t, &name)).await?;
    Ok(Json(issuer_info(&row)))
}

pub async fn issuer_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<IssuerSpec>,
) -> ApiResult<(StatusCode, Json<IssuerInfo>)> {
    let row = issuers::create(&state, &caller, spec).await?;
    Ok((StatusCode::CREATED, Json(issuer_info(&row))))
}

pub async fn issuer_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    issuers::delete(&state, &caller, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

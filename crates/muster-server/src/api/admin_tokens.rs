//! Admin API tokens over HTTP: minted for the calling admin, listed
//! without their secrets, revoked by id or as `current` (the token the
//! request presents, which is how `muster admin token replace-initial`
//! retires the initial token). The operations are `ops::admin_tokens`.
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use crate::http::json::JsonBody;
use crate::ops::admin_tokens::{self, require_admin, TokenName};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use muster_core::secret;
use muster_proto::{AdminTokenCreated, AdminTokenInfo, AdminTokenSpec};
use muster_store::{AdminTokenRef, AdminTokenRow};

/// The path segment that names the presented token instead of an id.
pub const CURRENT: &str = "current";

fn info(t: AdminTokenRow) -> AdminTokenInfo {
    AdminTokenInfo {
        id: t.id,
        name: t.name,
        admin: t.admin,
        created_at: t.created_at,
        expires_at: t.expires_at,
        last_used_at: t.last_used_at,
        revoked_at: t.revoked_at,
    }
}

pub async fn admin_token_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<AdminTokenSpec>,
) -> ApiResult<(StatusCode, Json<AdminTokenCreated>)> {
    let name = TokenName::parse(&spec.name)?;
    let (row, token) = admin_tokens::create(&state, &caller, name, spec.lifetime_seconds).await?;
    Ok((
        StatusCode::CREATED,
        Json(AdminTokenCreated {
            token: info(row),
            admin_token: token,
        }),
    ))
}

pub async fn admin_token_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<AdminTokenInfo>>> {
    require_admin(&caller)?;
    let tenant = caller.principal.tenant.clone();
    let rows = state.db(move |s| s.admin_token_list(&tenant)).await?;
    Ok(Json(rows.into_iter().map(info).collect()))
}

pub async fn admin_token_revoke(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<AdminTokenInfo>> {
    let which = if id == CURRENT {
        // The extractor accepted this token already: it is a bearer token.
        let presented = crate::auth::authorization(&headers, "bearer")
            .ok_or(ApiError::NotFound("admin token"))?;
        AdminTokenRef::Digest(secret::digest(presented))
    } else {
        AdminTokenRef::Id(id)
    };
    Ok(Json(info(
        admin_tokens::revoke(&state, &caller, which).await?,
    )))
}

//! Admin API tokens: minted by an admin for itself with a lifetime, listed
//! without their secrets, and revoked one by one (`current`: the token
//! the request presents, which is how `muster admin token replace-initial`
//! retires the initial token). Stored as SHA-256 digests only; minting and
//! revoking are audited (`admin_token.created`, `admin_token.revoked`),
//! never with the token. See docs/security.md.
use crate::admin::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use muster_core::policy::Permission;
use muster_core::secret;
use muster_proto::{AdminTokenCreated, AdminTokenInfo, AdminTokenSpec};
use muster_store::{AdminTokenRef, AdminTokenRow, NewAdminToken, PrincipalKind};

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

/// Admin tokens belong to admin users; an integration client, whatever
/// its role, authenticates with its own credentials.
fn require_admin(caller: &Caller) -> ApiResult<()> {
    caller.require(Permission::TenantAdmin)?;
    if caller.principal.kind != PrincipalKind::Admin {
        return Err(ApiError::Forbidden("tenant:admin as an admin user".into()));
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.chars().count()) && !name.chars().any(char::is_control)
}

pub async fn admin_token_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<AdminTokenSpec>,
) -> ApiResult<(StatusCode, Json<AdminTokenCreated>)> {
    require_admin(&caller)?;
    let name = spec.name.trim().to_owned();
    if !valid_name(&name) {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "name: 1 to 64 characters, no control characters",
        ));
    }
    let tokens = &state.config.tokens;
    let lifetime = spec.lifetime_seconds.unwrap_or(tokens.admin_ttl_seconds);
    if !(60..=tokens.admin_max_ttl_seconds).contains(&lifetime) {
        return Err(ApiError::unprocessable(
            "invalid_lifetime",
            format!(
                "lifetime_seconds: between 60 and {} (tokens.admin_max_ttl_seconds)",
                tokens.admin_max_ttl_seconds
            ),
        ));
    }
    let now = state.clock.now();
    let expires_at = now + chrono::Duration::seconds(i64::try_from(lifetime).unwrap_or(i64::MAX));
    let (token, digest) = secret::generate("mat_");
    let new = NewAdminToken {
        id: uuid::Uuid::now_v7().to_string(),
        digest,
        principal_id: caller.principal.id.clone(),
        name,
        created_at: now,
        expires_at: Some(expires_at),
    };
    let row = state.db(move |s| s.admin_token_create(new)).await?;
    audit(
        &state,
        &caller,
        "admin_token.created",
        serde_json::json!({
            "id": row.id,
            "name": row.name,
            "admin": row.admin,
            "expires_at": row.expires_at,
        }),
    )
    .await?;
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
    require_admin(&caller)?;
    let which = if id == CURRENT {
        // The extractor accepted this token already: it is a bearer token.
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or(ApiError::NotFound("admin token"))?;
        AdminTokenRef::Digest(secret::digest(presented))
    } else {
        AdminTokenRef::Id(id)
    };
    let tenant = caller.principal.tenant.clone();
    let now = state.clock.now();
    let row = state
        .db(move |s| s.admin_token_revoke(&tenant, which, now))
        .await?;
    audit(
        &state,
        &caller,
        "admin_token.revoked",
        serde_json::json!({ "id": row.id, "name": row.name, "admin": row.admin }),
    )
    .await?;
    Ok(Json(info(row)))
}

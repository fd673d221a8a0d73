//! Admin API tokens: minted by an admin for itself with a lifetime, listed
//! without their secrets, and revoked one by one (`current`: the token
//! the request presents, which is how `muster admin token replace-initial`
//! retires the initial token). Stored as SHA-256 digests only; minting and
//! revoking are audited (`admin_token.created`, `admin_token.revoked`),
//! never with the token. See docs/security.md.
use crate::admin::recorded;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use muster_core::policy::Permission;
use muster_core::secret;
use muster_core::secret::SecretDigest;
use muster_core::TenantId;
use muster_proto::{AdminTokenCreated, AdminTokenInfo, AdminTokenSpec};
use muster_store::{
    AdminTokenRef, AdminTokenRow, AuditDraft, NewAdminToken, PrincipalKind, Store,
    INITIAL_TOKEN_NAME,
};

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

/// `now` plus `seconds`, saturating (lifetimes are bounded by the
/// configuration's checks; this only keeps an arithmetic slip from
/// panicking).
/// What the audit trail keeps of a minted admin token (never its secret).
pub(crate) fn created_detail(t: &AdminTokenRow) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "name": t.name,
        "admin": t.admin,
        "expires_at": t.expires_at,
    })
}

pub fn expiry(now: chrono::DateTime<chrono::Utc>, seconds: u64) -> chrono::DateTime<chrono::Utc> {
    chrono::Duration::try_seconds(i64::try_from(seconds).unwrap_or(i64::MAX))
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
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
    let expires_at = expiry(now, lifetime);
    let (token, digest) = secret::generate("mat_");
    let new = NewAdminToken {
        id: uuid::Uuid::now_v7().to_string(),
        digest,
        principal_id: caller.principal.id.clone(),
        name,
        created_at: now,
        expires_at: Some(expires_at),
    };
    let audit = recorded(&state, &caller, "admin_token.created", created_detail);
    let row = state.db(move |s| s.admin_token_create(new, audit)).await?;
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
    let audit = recorded(
        &state,
        &caller,
        "admin_token.revoked",
        |t: &AdminTokenRow| serde_json::json!({ "id": t.id, "name": t.name, "admin": t.admin }),
    );
    let row = state
        .db(move |s| s.admin_token_revoke(&tenant, which, now, audit))
        .await?;
    Ok(Json(info(row)))
}

/// At a start after the first: when the installation's first admin (the
/// default tenant's `admin`) has no admin token left that works, stores
/// `digest` as a new initial token and returns true, so that the caller
/// writes the initial token file as at the first start. Whoever can start
/// the gateway and read its data directory can read the database anyway;
/// an installation whose tokens all lapsed must not be locked out for good.
pub fn reissue_initial(
    store: &dyn Store,
    digest: SecretDigest,
    expires_at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<bool> {
    let tenant = TenantId::default_tenant();
    let operator = match store.client_get("admin") {
        Ok(p) if p.kind == PrincipalKind::Admin && p.tenant == tenant => p,
        _ => return Ok(false),
    };
    let live = store.admin_token_list(&tenant)?.into_iter().any(|t| {
        t.admin == operator.client_id
            && t.revoked_at.is_none()
            && t.expires_at.is_none_or(|e| e > now)
    });
    if live {
        return Ok(false);
    }
    let audit: muster_store::Audit<AdminTokenRow> = Box::new(move |row| {
        let mut detail = created_detail(row);
        detail["reason"] = "the first admin had no admin token left that works".into();
        vec![AuditDraft {
            tenant,
            at: now,
            principal: "system".into(),
            on_behalf_of: None,
            source: "bootstrap".into(),
            action: "admin_token.created".into(),
            person: None,
            detail,
        }]
    });
    store.admin_token_create(
        NewAdminToken {
            id: uuid::Uuid::now_v7().to_string(),
            digest,
            principal_id: operator.id,
            name: INITIAL_TOKEN_NAME.into(),
            created_at: now,
            expires_at: Some(expires_at),
        },
        audit,
    )?;
    Ok(true)
}

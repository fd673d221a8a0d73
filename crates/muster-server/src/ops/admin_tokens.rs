//! Admin API tokens: minted by an admin for itself with a lifetime and
//! revoked one by one. Stored as SHA-256 digests only; minting and revoking
//! are audited (`admin_token.created`, `admin_token.revoked`), never with the
//! token. See docs/security.md.
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use crate::ops::audit::recorded;
use muster_core::policy::Permission;
use muster_core::secret;
use muster_core::secret::SecretDigest;
use muster_core::TenantId;
use muster_proto::ErrorCode;
use muster_store::{
    AdminTokenRef, AdminTokenRow, AuditDraft, NewAdminToken, PrincipalKind, Store,
    INITIAL_TOKEN_NAME,
};

/// Admin tokens belong to admin users; an integration client, whatever
/// its role, authenticates with its own credentials.
pub(crate) fn require_admin(caller: &Caller) -> ApiResult<()> {
    caller.require(Permission::TenantAdmin)?;
    if caller.principal.kind != PrincipalKind::Admin {
        return Err(ApiError::Forbidden("tenant:admin as an admin user".into()));
    }
    Ok(())
}

/// What the audit trail keeps of a minted admin token (never its secret).
pub(crate) fn created_detail(t: &AdminTokenRow) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "name": t.name,
        "admin": t.admin,
        "expires_at": t.expires_at,
    })
}

/// `now` plus `seconds`, saturating (lifetimes are bounded by the
/// configuration's checks; this only keeps an arithmetic slip from
/// panicking).
pub(crate) fn expiry(
    now: chrono::DateTime<chrono::Utc>,
    seconds: u64,
) -> chrono::DateTime<chrono::Utc> {
    chrono::Duration::try_seconds(i64::try_from(seconds).unwrap_or(i64::MAX))
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// An admin token's name: 1 to 64 characters, no control characters,
/// trimmed.
pub(crate) struct TokenName(String);

impl TokenName {
    pub fn parse(name: &str) -> ApiResult<Self> {
        let name = name.trim();
        if (1..=64).contains(&name.chars().count()) && !name.chars().any(char::is_control) {
            Ok(Self(name.to_owned()))
        } else {
            Err(ApiError::unprocessable(
                ErrorCode::InvalidName,
                "name: 1 to 64 characters, no control characters",
            ))
        }
    }
}

/// Mints an admin token for the calling admin, valid for `lifetime`
/// seconds (the configured default when absent). Returns the row and the
/// token, which is shown once.
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    name: TokenName,
    lifetime: Option<u64>,
) -> ApiResult<(AdminTokenRow, String)> {
    require_admin(caller)?;
    let tokens = &state.config.tokens;
    let lifetime = lifetime.unwrap_or(tokens.admin_ttl_seconds);
    if !(60..=tokens.admin_max_ttl_seconds).contains(&lifetime) {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidLifetime,
            format!(
                "lifetime_seconds: between 60 and {} (tokens.admin_max_ttl_seconds)",
                tokens.admin_max_ttl_seconds
            ),
        ));
    }
    let now = state.clock.now();
    let (token, digest) = secret::generate("mat_");
    let new = NewAdminToken {
        id: uuid::Uuid::now_v7().to_string(),
        digest,
        principal_id: caller.principal.id.clone(),
        name: name.0,
        created_at: now,
        expires_at: Some(expiry(now, lifetime)),
    };
    let audit = recorded(state, caller, "admin_token.created", created_detail);
    let row = state.db(move |s| s.admin_token_create(new, audit)).await?;
    Ok((row, token))
}

/// Revokes one of the tenant's admin tokens, by id or by the digest of
/// the token presented.
pub(crate) async fn revoke(
    state: &AppState,
    caller: &Caller,
    which: AdminTokenRef,
) -> ApiResult<AdminTokenRow> {
    require_admin(caller)?;
    let tenant = caller.principal.tenant.clone();
    let now = state.clock.now();
    let audit = recorded(
        state,
        caller,
        "admin_token.revoked",
        |t: &AdminTokenRow| serde_json::json!({ "id": t.id, "name": t.name, "admin": t.admin }),
    );
    state
        .db(move |s| s.admin_token_revoke(&tenant, which, now, audit))
        .await
}

/// At a start after the first: when the installation's first admin (the
/// default tenant's `admin`) has no admin token left that works, stores
/// `digest` as a new initial token and returns true, so that the caller
/// writes the initial token file as at the first start. Whoever can start
/// the gateway and read its data directory can read the database anyway;
/// an installation whose tokens all lapsed must not be locked out for good.
pub(crate) fn reissue_initial(
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

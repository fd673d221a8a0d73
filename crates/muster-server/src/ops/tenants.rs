//! Tenants: created by the operator (an administrator of the `default`
//! tenant), each with its first administrator and that administrator's
//! first admin token.
use crate::auth::Caller;
use crate::base::error::ApiResult;
use crate::base::state::AppState;
use crate::ops::admin_tokens::{created_detail, expiry};
use crate::ops::audit::recorded;
use crate::ops::require_operator;
use muster_core::policy::WritePolicy;
use muster_core::{secret, TenantId};
use muster_store::{ClientRow, NewAdminToken, NewClient, PrincipalKind, TenantRow};

/// Creates tenant `id` (named `name`, else its id), its administrator
/// `admin@<id>` and an admin token for it. Returns the tenant and the
/// token, which is shown once; like any minted admin token it expires, and
/// the tenant's admin mints its own with it and revokes it.
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    id: TenantId,
    name: Option<String>,
) -> ApiResult<(TenantRow, String)> {
    require_operator(caller)?;
    let name = name.unwrap_or_else(|| id.to_string());
    let now = state.clock.now();
    let tid = id.clone();
    let audit = recorded(
        state,
        caller,
        "tenant.created",
        |t: &TenantRow| serde_json::json!({ "tenant": t.id.as_str() }),
    );
    let row = state
        .db(move |s| s.tenant_create(&tid, &name, now, audit))
        .await?;
    let (token, digest) = secret::generate("mat_");
    let admin = NewClient {
        tenant: id.clone(),
        kind: PrincipalKind::Admin,
        client_id: format!("admin@{id}"),
        name: "Tenant administrator".into(),
        role: "admin".into(),
        token_policy: "ttl".into(),
        token_ttl_seconds: 0,
        write_policy: WritePolicy::allow_all(),
        secret: None,
    };
    let audit = recorded(
        state,
        caller,
        "client.created",
        |c: &ClientRow| serde_json::json!({ "client_id": c.client_id, "role": c.role, "tenant": c.tenant.as_str() }),
    );
    let created = state
        .db(move |s| s.client_create(admin, now, audit))
        .await?;
    let first = NewAdminToken {
        id: uuid::Uuid::now_v7().to_string(),
        digest,
        principal_id: created.id.clone(),
        name: muster_store::INITIAL_TOKEN_NAME.into(),
        created_at: now,
        expires_at: Some(expiry(now, state.config.tokens.admin_ttl_seconds)),
    };
    let audit = recorded(state, caller, "admin_token.created", created_detail);
    state
        .db(move |s| s.admin_token_create(first, audit))
        .await?;
    Ok((row, token))
}

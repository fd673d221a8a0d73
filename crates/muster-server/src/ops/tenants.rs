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
use muster_store::{
    Audit, ClientRow, NewAdminToken, NewClient, NewTenant, PrincipalKind, TenantCreated, TenantRow,
};

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
    let now = state.clock.now();
    let (token, digest) = secret::generate("mat_");
    let new = NewTenant {
        name: name.unwrap_or_else(|| id.to_string()),
        admin: NewClient {
            tenant: id.clone(),
            kind: PrincipalKind::Admin,
            client_id: format!("admin@{id}"),
            name: "Tenant administrator".into(),
            role: "admin".into(),
            token_policy: "ttl".into(),
            token_ttl_seconds: 0,
            write_policy: WritePolicy::allow_all(),
            read_policy: Default::default(),
            secret: None,
        },
        token: NewAdminToken {
            id: uuid::Uuid::now_v7().to_string(),
            digest,
            // The store makes it the new administrator's.
            principal_id: String::new(),
            name: muster_store::INITIAL_TOKEN_NAME.into(),
            created_at: now,
            expires_at: Some(expiry(now, state.config.tokens.admin_ttl_seconds)),
        },
        id,
    };
    // The three entries the operation always wrote, now in its one
    // transaction.
    let tenant = recorded(
        state,
        caller,
        "tenant.created",
        |t: &TenantRow| serde_json::json!({ "tenant": t.id.as_str() }),
    );
    let admin = recorded(
        state,
        caller,
        "client.created",
        |c: &ClientRow| serde_json::json!({ "client_id": c.client_id, "role": c.role, "tenant": c.tenant.as_str() }),
    );
    let first = recorded(state, caller, "admin_token.created", created_detail);
    let audit: Audit<TenantCreated> = Box::new(move |c| {
        let mut entries = tenant(&c.tenant);
        entries.extend(admin(&c.admin));
        entries.extend(first(&c.token));
        entries
    });
    let made = state.db(move |s| s.tenant_create(new, now, audit)).await?;
    Ok((made.tenant, token))
}

//! The operations every door calls: typed input, permission and write-policy
//! checks, and each change committed with its audit entry.
pub(crate) mod admin_tokens;
pub(crate) mod audit;
pub(crate) mod client_keys;
pub(crate) mod clients;
pub(crate) mod imports;
pub(crate) mod input;
pub(crate) mod issuers;
pub(crate) mod keys;
pub(crate) mod mappings;
pub(crate) mod master_key;
pub(crate) mod people;
pub(crate) mod scim;
pub(crate) mod subscriptions;
pub(crate) mod tenants;
pub(crate) mod write;

use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use muster_core::policy::Permission;
use muster_core::TenantId;
use muster_store::{ClientRow, PrincipalKind};

/// Only an administrator of the `default` tenant manages tenants.
pub(crate) fn require_operator(caller: &Caller) -> ApiResult<()> {
    caller.require(Permission::TenantAdmin)?;
    if caller.principal.tenant != TenantId::default_tenant() {
        return Err(ApiError::Forbidden(
            "tenant:admin on the default tenant".into(),
        ));
    }
    Ok(())
}

/// Finds a client of the caller's tenant; other tenants' clients do not exist.
/// A client of the caller's tenant (404 for another tenant's, or an admin).
pub(crate) async fn own_client(
    state: &AppState,
    caller: &Caller,
    id: String,
) -> ApiResult<ClientRow> {
    let c = state.db(move |s| s.client_get(&id)).await?;
    if c.tenant != caller.principal.tenant || c.kind != PrincipalKind::Client {
        return Err(ApiError::NotFound("client"));
    }
    Ok(c)
}

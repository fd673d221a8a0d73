//! `POST /api/v1/login-sync` (the default tenant's issuers) and
//! `POST /api/v1/tenants/{tenant}/login-sync` (that tenant's): the token is
//! checked by `auth::login_sync`, the person written by
//! `ops::people::login_sync_write`.
use crate::auth::login_sync::{audit_failure, authenticate, guessing, refused, Refusal};
use crate::base::error::ApiResult;
use crate::base::state::AppState;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::Json;
use muster_core::TenantId;
use muster_proto::LoginSyncResult;

/// `POST /api/v1/login-sync`: a login through one of the default
/// tenant's issuers.
pub async fn login_sync(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Json<LoginSyncResult>> {
    sync_login(&state, &TenantId::default_tenant(), peer, &headers).await
}

/// `POST /api/v1/tenants/{tenant}/login-sync`: a login through one of
/// that tenant's issuers. Issuers are per tenant: the same `(iss, aud)`
/// registered by two tenants is two issuers, and the path alone says
/// whose a login is, so it lands in that tenant and no other.
pub async fn tenant_login_sync(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<LoginSyncResult>> {
    // A tenant that cannot exist has no issuers: the same refusal as an
    // unknown one, so the answer does not tell which tenants exist.
    let Ok(tenant) = TenantId::parse(&tenant) else {
        let addr = state.auth_failures.client_addr(peer.ip(), &headers);
        audit_failure(&state, None, Refusal::UnknownIssuer, addr).await;
        return Err(refused(Refusal::UnknownIssuer));
    };
    sync_login(&state, &tenant, peer, &headers).await
}

async fn sync_login(
    state: &AppState,
    tenant: &TenantId,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
) -> ApiResult<Json<LoginSyncResult>> {
    let v = match authenticate(state, tenant, headers).await {
        Ok(v) => v,
        Err((issuer, why)) => {
            let addr = state.auth_failures.client_addr(peer.ip(), headers);
            audit_failure(state, issuer.as_ref(), why, addr).await;
            if guessing(why) {
                crate::auth::ratelimit::record_failure(
                    state,
                    crate::auth::ratelimit::keys(addr, None),
                )
                .await;
            }
            return Err(refused(why));
        }
    };
    crate::ops::people::login_sync_write(state, v)
        .await
        .map(Json)
}

//! The installation's master key over HTTP (`/api/v1/admin/master-key`,
//! the operator only). The operations are `ops::master_key`.
use crate::auth::Caller;
use crate::base::error::ApiResult;
use crate::base::state::AppState;
use crate::ops::master_key::{self, MasterKeyChanged, MasterKeyStatus};
use axum::extract::State;
use axum::Json;

/// `GET /api/v1/admin/master-key`.
pub async fn master_key_get(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MasterKeyStatus>> {
    Ok(Json(master_key::get(&state, &caller).await?))
}

/// `POST /api/v1/admin/master-key/rotate`.
pub async fn master_key_rotate(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MasterKeyChanged>> {
    Ok(Json(master_key::rotate(&state, &caller).await?))
}

/// `POST /api/v1/admin/master-key/retire-previous`.
pub async fn master_key_retire_previous(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MasterKeyChanged>> {
    Ok(Json(master_key::retire_previous(&state, &caller).await?))
}

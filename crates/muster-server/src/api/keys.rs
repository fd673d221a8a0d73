//! Tenant keys and client intake policies over HTTP. The operations are
//! `ops::keys`.
use crate::auth::Caller;
use crate::base::error::ApiResult;
use crate::base::state::AppState;
use crate::http::json::JsonBody;
use crate::ops::keys::{self, plan};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use muster_core::policy::{IntakePolicy, Permission};
use muster_proto::{IntakePolicyInfo, KeyInfo, KeySpec};
use muster_store::{KeyPurpose, KeyRow, KeyState};

pub(crate) fn key_info(k: &KeyRow) -> KeyInfo {
    KeyInfo {
        id: k.id.clone(),
        kind: k.kind.clone(),
        algorithm: k.algorithm.clone(),
        purpose: k.purpose.as_str().into(),
        state: k.state.as_str().into(),
        key_ids: k.key_ids.clone(),
        public_key: k.public_key.clone(),
        created_at: k.created_at,
        updated_at: k.updated_at,
    }
}

fn policy_info(p: IntakePolicy) -> IntakePolicyInfo {
    IntakePolicyInfo {
        require_encryption: p.require_encryption,
        require_signed_by: p.require_signed_by,
    }
}

/// `GET /api/v1/keys`: clients that may import see the keys to encrypt to
/// (active decryption keys); key admins see every key in every state.
pub async fn key_list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<KeyInfo>>> {
    let admin = caller.has(Permission::KeysAdmin);
    if !admin {
        caller.require(Permission::ImportsCreate)?;
    }
    let tenant = caller.principal.tenant.clone();
    let keys = state.db(move |s| s.key_list(&tenant)).await?;
    Ok(Json(
        keys.iter()
            .filter(|k| {
                admin || (k.purpose == KeyPurpose::Decryption && k.state == KeyState::Active)
            })
            .map(key_info)
            .collect(),
    ))
}

pub async fn key_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyInfo>> {
    caller.require(Permission::KeysAdmin)?;
    let tenant = caller.principal.tenant.clone();
    let k = state.db(move |s| s.key_get(&tenant, &id)).await?;
    Ok(Json(key_info(&k)))
}

/// `POST /api/v1/keys`: generate or import a decryption key, or register a
/// sender's signing key.
pub async fn key_create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(spec): JsonBody<KeySpec>,
) -> ApiResult<(StatusCode, Json<KeyInfo>)> {
    caller.require(Permission::KeysAdmin)?;
    let row = keys::create(&state, &caller, plan(spec)?).await?;
    Ok((StatusCode::CREATED, Json(key_info(&row))))
}

/// `POST /api/v1/keys/{id}/rotate`: a new key of the same kind and
/// algorithm becomes active; the old one is kept `decrypt_only`.
pub async fn key_rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<KeyInfo>)> {
    let row = keys::rotate(&state, &caller, id).await?;
    Ok((StatusCode::CREATED, Json(key_info(&row))))
}

/// `POST /api/v1/keys/{id}/revoke`: the key opens nothing from now on.
pub async fn key_revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyInfo>> {
    Ok(Json(key_info(&keys::revoke(&state, &caller, id).await?)))
}

pub async fn intake_policy_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<IntakePolicyInfo>> {
    caller.require(Permission::ClientsAdmin)?;
    let c = crate::ops::own_client(&state, &caller, id).await?;
    Ok(Json(policy_info(
        state.db(move |s| s.intake_policy_get(&c.id)).await?,
    )))
}

/// `PUT /api/v1/clients/{id}/intake-policy`.
pub async fn intake_policy_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(info): JsonBody<IntakePolicyInfo>,
) -> ApiResult<Json<IntakePolicyInfo>> {
    Ok(Json(policy_info(
        keys::intake_policy_put(&state, &caller, id, info).await?,
    )))
}

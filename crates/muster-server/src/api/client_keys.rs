//! A client's request-signing and `private_key_jwt` keys over HTTP (see
//! docs/authentication.md). The operations are `ops::client_keys`.
use crate::auth::keys::{parse_ed25519, JwtKeys};
use crate::auth::Caller;
use crate::base::error::{ApiError, ApiResult};
use crate::base::state::AppState;
use crate::http::json::JsonBody;
use crate::ops::client_keys::{self, own_client, KeyKind};
use crate::ops::input::Overlap;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use muster_proto::ErrorCode;
use muster_proto::{ClientKeysInfo, Ed25519KeyRequest, HmacKeyIssued, JwtKeysRequest};
use muster_store::{ClientKeys, ClientRow};

fn keys_info(client_id: &str, k: &ClientKeys) -> ClientKeysInfo {
    ClientKeysInfo {
        client_id: client_id.to_owned(),
        hmac: k.hmac_sealed.is_some(),
        hmac_previous_until: k.hmac_previous_sealed.as_ref().and(k.hmac_previous_until),
        ed25519_public_key: k
            .ed25519_public
            .as_ref()
            .map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)),
        jwt_keys: k
            .jwt_keys
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok()),
        updated_at: k.updated_at,
    }
}

fn answer((c, keys): (ClientRow, ClientKeys)) -> Json<ClientKeysInfo> {
    Json(keys_info(&c.client_id, &keys))
}

pub async fn client_keys_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientKeysInfo>> {
    let c = own_client(&state, &caller, id).await?;
    let cid = c.client_id.clone();
    let keys = state.db(move |s| s.client_keys_get(&cid)).await?;
    Ok(answer((c, keys)))
}

/// Issues or rotates the HMAC key; the optional body is
/// `{"overlap_seconds": N}`.
pub async fn client_hmac_rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<HmacKeyIssued>)> {
    let overlap = Overlap::from_body(&body, state.config.tokens.secret_overlap_seconds)?;
    let issued = client_keys::hmac_rotate(&state, &caller, id, overlap).await?;
    Ok((
        StatusCode::CREATED,
        Json(HmacKeyIssued {
            client_id: issued.client.client_id.clone(),
            alg: "hmac-sha256".into(),
            hmac_key: issued.key,
            key_id: Some(issued.key_id),
            previous_valid_until: issued.keys.hmac_previous_until,
            keys: keys_info(&issued.client.client_id, &issued.keys),
        }),
    ))
}

pub async fn client_ed25519_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<Ed25519KeyRequest>,
) -> ApiResult<Json<ClientKeysInfo>> {
    let raw = parse_ed25519(&req.public_key).ok_or_else(|| {
        ApiError::unprocessable(
            ErrorCode::InvalidKey,
            "public_key: 32 bytes in base64/base64url, or an Ed25519 SPKI PEM",
        )
    })?;
    Ok(answer(
        client_keys::ed25519_set(&state, &caller, id, raw).await?,
    ))
}

pub async fn client_jwt_keys_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<JwtKeysRequest>,
) -> ApiResult<Json<ClientKeysInfo>> {
    let doc = match (req.jwks, req.public_key_pem) {
        (Some(j), None) => j,
        (None, Some(pem)) => serde_json::json!({ "pem": pem }),
        _ => {
            return Err(ApiError::unprocessable(
                ErrorCode::InvalidKey,
                "give exactly one of jwks and public_key_pem",
            ))
        }
    };
    let keys = JwtKeys::parse(&doc)?;
    Ok(answer(
        client_keys::jwt_keys_set(&state, &caller, id, keys).await?,
    ))
}

pub async fn client_hmac_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientKeysInfo>> {
    Ok(answer(
        client_keys::remove(&state, &caller, id, KeyKind::Hmac).await?,
    ))
}

pub async fn client_ed25519_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientKeysInfo>> {
    Ok(answer(
        client_keys::remove(&state, &caller, id, KeyKind::Ed25519).await?,
    ))
}

pub async fn client_jwt_keys_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientKeysInfo>> {
    Ok(answer(
        client_keys::remove(&state, &caller, id, KeyKind::Jwt).await?,
    ))
}

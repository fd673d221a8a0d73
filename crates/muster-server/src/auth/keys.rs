//! The keys clients prove themselves with, as the server holds them: a
//! client's request-signing keys (RFC 9421 3.3.3 HMAC-SHA256, 3.3.6
//! Ed25519), opened with the master key, and the `private_key_jwt` keys a
//! client registers (RFC 7523 2.2). Parsing JWKs and PEM keys is
//! `muster_jose::jwk`'s. Nothing here touches the database.
use crate::base::error::{ApiError, ApiResult};
use crate::base::sealed::hmac_aad;
use crate::base::state::AppState;
use muster_httpsig::{HmacKey, VerifyingKey};
use muster_proto::ErrorCode;
use muster_store::ClientKeys;

pub(crate) use muster_jose::jwk::{
    assertion_keys, parse_ed25519, private_members, signature_keys, AssertionKey,
};

/// The request-signing keys a client can verify with: the HMAC key, the
/// previous HMAC key during its rotation overlap, then the Ed25519 key. A
/// sealed HMAC key that does not open (wrong master key) is logged and
/// skipped.
pub fn verifying_keys(state: &AppState, client_id: &str, keys: &ClientKeys) -> Vec<VerifyingKey> {
    let mut out = Vec::new();
    let now = state.clock.now();
    let previous = match (&keys.hmac_previous_sealed, keys.hmac_previous_until) {
        (Some(p), Some(until)) if until > now => Some(p),
        _ => None,
    };
    for sealed in keys.hmac_sealed.iter().chain(previous) {
        match state.master_key.open_box(&hmac_aad(client_id), sealed) {
            Ok(k) => out.push(VerifyingKey::HmacSha256(HmacKey::new(k))),
            Err(e) => tracing::error!(client_id, error = %e, "a sealed HMAC key does not open"),
        }
    }
    if let Some(pk) = keys
        .ed25519_public
        .as_deref()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
    {
        out.push(VerifyingKey::Ed25519(pk));
    }
    out
}

/// A client's `private_key_jwt` keys as stored: a JWK, a JWK Set or
/// `{"pem": ...}`, holding at least one usable public key and no private
/// member.
pub(crate) struct JwtKeys(String);

impl JwtKeys {
    pub fn parse(doc: &serde_json::Value) -> ApiResult<Self> {
        assertion_keys(doc).map_err(|e| ApiError::unprocessable(ErrorCode::InvalidKey, e))?;
        if let Some(private) = private_members(doc) {
            return Err(ApiError::unprocessable(
                ErrorCode::InvalidKey,
                format!("jwks: the private key member '{private}' must not be sent (RFC 7518 6)"),
            ));
        }
        Ok(Self(
            serde_json::to_string(doc).map_err(|e| ApiError::Internal(e.into()))?,
        ))
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

//! A client's credentials besides its secrets, and the admin API that
//! manages them (SPEC 2.1, 2.2):
//!
//! - an HMAC-SHA256 request-signing key (RFC 9421 3.3.3): generated here
//!   (256 bits), shown once, stored only sealed under the master key;
//! - an Ed25519 request-signing public key (RFC 9421 3.3.6): the gateway
//!   holds no secret;
//! - the `private_key_jwt` key(s) (RFC 7523 2.2): a public JWK, a JWKS
//!   (`kid` selects) or one PEM public key, for RS256, ES256 or EdDSA.
//!
//! Every change is audited by kind, never with key material.
use crate::admin::recorded;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use muster_core::policy::Permission;
use muster_httpsig::{HmacKey, VerifyingKey};
use muster_proto::{ClientKeysInfo, Ed25519KeyRequest, HmacKeyIssued, JwtKeysRequest};
use muster_store::{ClientKeyChange, ClientKeys, ClientRow};
use rand::RngCore;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Associated data of a sealed HMAC key: binds it to its client.
pub(crate) fn hmac_aad(client_id: &str) -> Vec<u8> {
    format!("muster client hmac key:{client_id}").into_bytes()
}

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

/// A `private_key_jwt` verification key with the one algorithm it may be
/// used with (so a key can never be tried with another family's algorithm).
pub struct AssertionKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// The JWS algorithm a public JWK is for, or why it is not accepted.
fn jwk_algorithm(jwk: &Jwk) -> Result<Algorithm, &'static str> {
    let from_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys are not accepted for private_key_jwt")
        }
        _ => return Err("only RSA, P-256 and Ed25519 keys are accepted"),
    };
    match jwk.common.key_algorithm {
        None => Ok(from_type),
        Some(KeyAlgorithm::RS256) if from_type == Algorithm::RS256 => Ok(from_type),
        Some(KeyAlgorithm::ES256) if from_type == Algorithm::ES256 => Ok(from_type),
        Some(KeyAlgorithm::EdDSA) if from_type == Algorithm::EdDSA => Ok(from_type),
        Some(_) => Err("a key's alg must be RS256, ES256 or EdDSA and match its type"),
    }
}

/// Parses a stored (or submitted) `jwt_keys` document.
pub fn assertion_keys(doc: &serde_json::Value) -> Result<Vec<AssertionKey>, String> {
    if let Some(pem) = doc.get("pem").and_then(|p| p.as_str()) {
        let pem = pem.as_bytes();
        let (alg, key) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            (Algorithm::RS256, k)
        } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
            (Algorithm::EdDSA, k)
        } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
            (Algorithm::ES256, k)
        } else {
            return Err("public_key_pem: not an RSA, P-256 or Ed25519 public key in PEM".into());
        };
        return Ok(vec![AssertionKey {
            kid: None,
            alg,
            key,
        }]);
    }
    let jwks: Vec<Jwk> = if doc.get("keys").is_some() {
        serde_json::from_value::<JwkSet>(doc.clone())
            .map_err(|_| "jwks: not a valid JWK Set (RFC 7517 5)".to_owned())?
            .keys
    } else {
        vec![serde_json::from_value::<Jwk>(doc.clone())
            .map_err(|_| "jwks: not a valid JWK (RFC 7517 4)".to_owned())?]
    };
    if jwks.is_empty() {
        return Err("jwks: the set holds no key".into());
    }
    let mut out = Vec::new();
    for (i, jwk) in jwks.iter().enumerate() {
        out.push(jwk_key(jwk).map_err(|e| format!("jwks key {i}: {e}"))?);
    }
    Ok(out)
}

fn jwk_key(jwk: &Jwk) -> Result<AssertionKey, &'static str> {
    let alg = jwk_algorithm(jwk)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "the key parameters do not decode")?;
    Ok(AssertionKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// The signature keys of an identity provider's published JWK Set: keys
/// of other kinds or uses (encryption keys, RS512, ...) are skipped rather
/// than refused, since the provider, not the operator, chose them.
pub fn signature_keys(jwks: &JwkSet) -> Vec<AssertionKey> {
    jwks.keys
        .iter()
        .filter(|k| {
            !matches!(
                k.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            )
        })
        .filter_map(|k| jwk_key(k).ok())
        .collect()
}

/// Reads an Ed25519 public key: 32 raw bytes in base64(url), or an SPKI PEM.
fn parse_ed25519(text: &str) -> Option<[u8; 32]> {
    // RFC 8410 4: the SPKI of an Ed25519 key is this fixed prefix and the key.
    const SPKI_PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let text = text.trim();
    let bytes = if let Some(body) = text
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|t| t.strip_suffix("-----END PUBLIC KEY-----"))
    {
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        der.strip_prefix(&SPKI_PREFIX[..])?.to_vec()
    } else {
        let t = text.trim_end_matches('=');
        B64URL
            .decode(t)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
            .ok()?
    };
    let raw = <[u8; 32]>::try_from(bytes.as_slice()).ok()?;
    // Refuse bytes that are not a point on the curve.
    ed25519_dalek::VerifyingKey::from_bytes(&raw).ok()?;
    Some(raw)
}

fn keys_info(client_id: &str, k: &ClientKeys) -> ClientKeysInfo {
    ClientKeysInfo {
        client_id: client_id.to_owned(),
        hmac: k.hmac_sealed.is_some(),
        hmac_previous_until: k.hmac_previous_sealed.as_ref().and(k.hmac_previous_until),
        ed25519_public_key: k.ed25519_public.as_ref().map(|b| B64URL.encode(b)),
        jwt_keys: k
            .jwt_keys
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok()),
        updated_at: k.updated_at,
    }
}

/// A client of the caller's tenant; other tenants' clients do not exist.
async fn own_client(state: &AppState, caller: &Caller, id: String) -> ApiResult<ClientRow> {
    caller.require(Permission::ClientsAdmin)?;
    crate::admin::own_client(state, caller, id).await
}

async fn change(
    state: &AppState,
    caller: &Caller,
    client: &ClientRow,
    change: ClientKeyChange,
    action: &str,
    kind: &str,
) -> ApiResult<ClientKeys> {
    let now = state.clock.now();
    let cid = client.client_id.clone();
    let detail = serde_json::json!({ "client_id": client.client_id, "key": kind });
    let audit = recorded(state, caller, action, move |_: &ClientKeys| detail);
    let keys = state
        .db(move |s| s.client_keys_set(&cid, change, now, audit))
        .await?;
    Ok(keys)
}

pub async fn client_keys_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientKeysInfo>> {
    let c = own_client(&state, &caller, id).await?;
    let cid = c.client_id.clone();
    let keys = state.db(move |s| s.client_keys_get(&cid)).await?;
    Ok(Json(keys_info(&c.client_id, &keys)))
}

/// A short public name for an HMAC key (never the key), so a client and
/// an operator can tell which key is which during an overlap.
fn hmac_key_id(key: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::new()
        .chain_update(b"muster hmac key id\0")
        .chain_update(key)
        .finalize();
    format!("hk_{}", &hex::encode(d)[..12])
}

/// Issues the HMAC key, or rotates it: the new key is shown this once,
/// and the previous one keeps verifying until the overlap ends (like a
/// client secret's rotation). The optional body is
/// `{"overlap_seconds": N}`; 0 drops the previous key at once.
pub async fn client_hmac_rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<HmacKeyIssued>)> {
    let c = own_client(&state, &caller, id).await?;
    let overlap =
        crate::admin::rotation_overlap(&body, state.config.tokens.secret_overlap_seconds)?;
    let now = state.clock.now();
    let until = (overlap > 0).then(|| now + chrono::Duration::seconds(overlap as i64));
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let sealed = state.master_key.seal_box(&hmac_aad(&c.client_id), &key);
    let shown = B64URL.encode(key);
    let key_id = hmac_key_id(&key);
    key.iter_mut().for_each(|b| *b = 0);
    let cid = c.client_id.clone();
    let (client_id, kid) = (c.client_id.clone(), key_id.clone());
    let audit = recorded(&state, &caller, "client.key_set", move |k: &ClientKeys| {
        serde_json::json!({
            "client_id": client_id,
            "key": "hmac",
            "key_id": kid,
            "previous_valid_until": k.hmac_previous_until,
        })
    });
    let keys = state
        .db(move |s| s.client_hmac_rotate(&cid, sealed, until, now, audit))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(HmacKeyIssued {
            client_id: c.client_id.clone(),
            alg: "hmac-sha256".into(),
            hmac_key: shown,
            key_id: Some(key_id),
            previous_valid_until: keys.hmac_previous_until,
            keys: keys_info(&c.client_id, &keys),
        }),
    ))
}

pub async fn client_ed25519_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<Ed25519KeyRequest>,
) -> ApiResult<Json<ClientKeysInfo>> {
    let c = own_client(&state, &caller, id).await?;
    let raw = parse_ed25519(&req.public_key).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_key",
            "public_key: 32 bytes in base64/base64url, or an Ed25519 SPKI PEM",
        )
    })?;
    let keys = change(
        &state,
        &caller,
        &c,
        ClientKeyChange::Ed25519(Some(raw.to_vec())),
        "client.key_set",
        "ed25519",
    )
    .await?;
    Ok(Json(keys_info(&c.client_id, &keys)))
}

pub async fn client_jwt_keys_put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<JwtKeysRequest>,
) -> ApiResult<Json<ClientKeysInfo>> {
    let c = own_client(&state, &caller, id).await?;
    let doc = match (req.jwks, req.public_key_pem) {
        (Some(j), None) => j,
        (None, Some(pem)) => serde_json::json!({ "pem": pem }),
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_key",
                "give exactly one of jwks and public_key_pem",
            ))
        }
    };
    assertion_keys(&doc).map_err(|e| ApiError::unprocessable("invalid_key", e))?;
    if let Some(private) = private_members(&doc) {
        return Err(ApiError::unprocessable(
            "invalid_key",
            format!("jwks: the private key member '{private}' must not be sent (RFC 7518 6)"),
        ));
    }
    let text = serde_json::to_string(&doc).map_err(|e| ApiError::Internal(e.into()))?;
    let keys = change(
        &state,
        &caller,
        &c,
        ClientKeyChange::JwtKeys(Some(text)),
        "client.key_set",
        "jwt",
    )
    .await?;
    Ok(Json(keys_info(&c.client_id, &keys)))
}

/// The name of a private-key member (RFC 7518 6.2.2, 6.3.2, RFC 8037 2) in
/// a JWK or JWKS, if any: the gateway must never hold a client's private key.
pub(crate) fn private_members(doc: &serde_json::Value) -> Option<&'static str> {
    const PRIVATE: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];
    let keys: Vec<&serde_json::Value> = match doc.get("keys").and_then(|k| k.as_array()) {
        Some(a) => a.iter().collect(),
        None => vec![doc],
    };
    keys.iter()
        .find_map(|k| PRIVATE.iter().find(|m| k.get(**m).is_some()).copied())
}

/// Removes one of a client's keys, named by the `kind` path segment.
async fn remove(
    state: AppState,
    caller: Caller,
    id: String,
    kind: &'static str,
) -> ApiResult<Json<ClientKeysInfo>> {
    let c = own_client(&state, &caller, id).await?;
    let what = match kind {
        "hmac" => ClientKeyChange::Hmac(None),
        "ed25519" => ClientKeyChange::Ed25519(None),
        _ => ClientKeyChange::JwtKeys(None),
    };
    let keys = change(&state, &caller, &c, what, "client.key_removed", kind).await?;
    Ok(Json(keys_info(&c.client_id, &keys)))
}

pub async fn client_hmac_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientKeysInfo>> {
    remove(state, caller, id, "hmac").await
}

pub async fn client_ed25519_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientKeysInfo>> {
    remove(state, caller, id, "ed25519").await
}

pub async fn client_jwt_keys_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientKeysInfo>> {
    remove(state, caller, id, "jwt").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_key_is_read_from_base64_or_pem() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
        let raw = sk.verifying_key().to_bytes();
        assert_eq!(parse_ed25519(&B64URL.encode(raw)), Some(raw));
        assert_eq!(
            parse_ed25519(&base64::engine::general_purpose::STANDARD.encode(raw)),
            Some(raw)
        );
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&raw);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        assert_eq!(parse_ed25519(&pem), Some(raw));
        assert_eq!(parse_ed25519("AAAA"), None);
    }

    #[test]
    fn private_key_members_are_refused() {
        let doc =
            serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "a", "d": "b"}]});
        assert_eq!(private_members(&doc), Some("d"));
        let doc = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "a"});
        assert_eq!(private_members(&doc), None);
    }

    #[test]
    fn symmetric_jwks_are_not_accepted() {
        let doc = serde_json::json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(assertion_keys(&doc).is_err());
    }
}

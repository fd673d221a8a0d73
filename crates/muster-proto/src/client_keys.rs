//! Wire types of a client's signing and assertion keys (docs/authentication.md#managing-keys-admin-api).
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which keys a client has. Never carries a secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ClientKeysInfo {
    pub client_id: String,
    /// An HMAC-SHA256 request-signing key is set (its value is never shown
    /// again after it was issued).
    pub hmac: bool,
    /// During an HMAC key rotation overlap: until when the previous key
    /// still verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_previous_until: Option<DateTime<Utc>>,
    /// The Ed25519 request-signing public key, base64url without padding
    /// (32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ed25519_public_key: Option<String>,
    /// The `private_key_jwt` key(s): a JWK, a JWKS, or `{"pem": "..."}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwt_keys: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A freshly generated HMAC key, shown once (RFC 9421 3.3.3, `keyid` is the
/// client id).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HmacKeyIssued {
    pub client_id: String,
    /// `hmac-sha256`.
    pub alg: String,
    /// The 32-byte key, base64url without padding.
    pub hmac_key: String,
    /// A public name for this key (`hk_...`), to tell it from the previous
    /// one; never the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Until when the previous key still verifies (absent: there was none,
    /// or no overlap was asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<DateTime<Utc>>,
    pub keys: ClientKeysInfo,
}

/// Registers an Ed25519 request-signing public key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ed25519KeyRequest {
    /// 32 raw bytes in base64 or base64url, or an SPKI PEM
    /// (`-----BEGIN PUBLIC KEY-----`).
    pub public_key: String,
}

/// Registers the `private_key_jwt` key(s) (RFC 7523 2.2).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtKeysRequest {
    /// A public JWK, or a JWKS `{"keys": [...]}` (a JWT's `kid` picks one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Or one public key in PEM (RSA, P-256 or Ed25519 SPKI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
}

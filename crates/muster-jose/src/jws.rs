//! The signature check of a compact JWS (RFC 7515 5.2) for the asymmetric
//! algorithms clients sign with: RS256 (RFC 7518 3.3), ES256 (3.4) and
//! EdDSA over Ed25519 (RFC 8037).
//!
//! `jsonwebtoken` parses keys and claims; the signature itself is checked
//! here with `ring`, whose P-256 and RSA code is several times faster than
//! the pure-Rust arithmetic `jsonwebtoken` is built with (a `private_key_jwt`
//! grant was mostly P-256 field multiplication before). Claims are then
//! decoded (by [`payload`]) only after [`verify`] passed.
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::de::DeserializeOwned;

/// Why a signature was not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// Not three base64url parts, or the signature does not decode.
    #[error("the JWS is malformed")]
    Malformed,
    /// The algorithm is not one this module checks.
    #[error("the algorithm is not supported")]
    Unsupported,
    /// The signature does not verify with this key.
    #[error("the signature does not verify")]
    Invalid,
}

/// Checks the signature of the compact JWS `token` with `key` under `alg`.
pub fn verify(token: &str, alg: Algorithm, key: &DecodingKey) -> Result<(), SigError> {
    use base64::Engine as _;
    let (signing_input, sig) = token.rsplit_once('.').ok_or(SigError::Malformed)?;
    if signing_input.matches('.').count() != 1 {
        return Err(SigError::Malformed);
    }
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| SigError::Malformed)?;
    let msg = signing_input.as_bytes();
    let ok = match (alg, key.kind()) {
        (Algorithm::ES256, DecodingKeyKind::SecretOrDer(point)) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, &sig)
                .is_ok()
        }
        (Algorithm::EdDSA, DecodingKeyKind::SecretOrDer(raw)) => {
            UnparsedPublicKey::new(&signature::ED25519, raw)
                .verify(msg, &sig)
                .is_ok()
        }
        (Algorithm::RS256, DecodingKeyKind::SecretOrDer(pkcs1)) => {
            UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, pkcs1)
                .verify(msg, &sig)
                .is_ok()
        }
        (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, &sig)
                .is_ok()
        }
        _ => return Err(SigError::Unsupported),
    };
    if ok {
        Ok(())
    } else {
        Err(SigError::Invalid)
    }
}

/// A base64url part of a compact JWS decoded as a JSON object (RFC 7515
/// 7.1), padded or not; read before any signature check only to find the
/// issuer and key.
pub fn b64_json(part: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The JSON payload of the compact JWS `token`, decoded as `T`; call it
/// only once [`verify`] has accepted the token's signature.
pub fn payload<T: DeserializeOwned>(token: &str) -> Option<T> {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (_, body) = (parts.next()?, parts.next()?);
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .ok()?;
    serde_json::from_slice(&json).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    /// A key pair made by `openssl` for this test only.
    const EC_PRIV: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmzhHr5Gl6EsU2EC1
UP86K94/qKuci2cYraLtWTQHzAShRANCAAQ3G8oimqReUhcWEDwcJjX5vom0GrrN
cq7v7KI1Yb7ZJdXHJhqHBur4K+tJTmYR/Mik0jnb5eZpZOICrSdNJfB+
-----END PRIVATE KEY-----";
    const EC_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENxvKIpqkXlIXFhA8HCY1+b6JtBq6
zXKu7+yiNWG+2SXVxyYahwbq+CvrSU5mEfzIpNI52+XmaWTiAq0nTSXwfg==
-----END PUBLIC KEY-----";

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct C {
        sub: String,
    }

    fn signed() -> String {
        let key = EncodingKey::from_ec_pem(EC_PRIV.as_bytes()).unwrap();
        encode(
            &Header::new(Algorithm::ES256),
            &C { sub: "c1".into() },
            &key,
        )
        .unwrap()
    }

    #[test]
    fn an_es256_token_signed_by_jsonwebtoken_verifies_and_a_changed_one_does_not() {
        let pubkey = DecodingKey::from_ec_pem(EC_PUB.as_bytes()).unwrap();
        let t = signed();
        assert_eq!(verify(&t, Algorithm::ES256, &pubkey), Ok(()));
        assert_eq!(payload::<C>(&t), Some(C { sub: "c1".into() }));
        assert_eq!(payload::<C>("e30.bm90IGpzb24.c"), None);

        // Another payload under the same signature.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.eyJzdWIiOiJjMiJ9.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&forged, Algorithm::ES256, &pubkey),
            Err(SigError::Invalid)
        );
        // The right signature under another algorithm's name.
        assert_eq!(
            verify(&t, Algorithm::EdDSA, &pubkey),
            Err(SigError::Invalid)
        );
        assert_eq!(
            verify(&t, Algorithm::HS256, &pubkey),
            Err(SigError::Unsupported)
        );
        assert_eq!(
            verify("a.b", Algorithm::ES256, &pubkey),
            Err(SigError::Malformed)
        );
        assert_eq!(
            verify("a.b.c.d", Algorithm::ES256, &pubkey),
            Err(SigError::Malformed)
        );
        assert_eq!(
            verify(
                &format!("{}.{}.!!", parts[0], parts[1]),
                Algorithm::ES256,
                &pubkey
            ),
            Err(SigError::Malformed)
        );
    }

    #[test]
    fn a_part_is_read_as_a_json_object_padded_or_not() {
        // {"alg":"none"}
        assert_eq!(
            b64_json("eyJhbGciOiJub25lIn0").and_then(|m| m.get("alg").cloned()),
            Some(serde_json::json!("none"))
        );
        assert!(b64_json("eyJhbGciOiJub25lIn0=").is_some());
        // [1] is JSON but not an object.
        assert_eq!(b64_json("WzFd"), None);
        assert_eq!(b64_json("not base64!"), None);
    }
}

//! Reading the public keys clients and issuers prove themselves with: the
//! JWKs, JWK Sets (RFC 7517) and PEM keys of `private_key_jwt` (RFC 7523
//! 2.2) and login sync, each bound to the one JWS algorithm it may be used
//! with, and Ed25519 request-signing keys (RFC 9421 3.3.6, RFC 8410).
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A verification key with the one algorithm it may be used with (so a key
/// can never be tried with another family's algorithm).
#[derive(Clone)]
pub struct AssertionKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
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

/// Parses a `jwt_keys` document: a JWK, a JWK Set or `{"pem": ...}`. The
/// error says, for people, which key is wrong and why; it never quotes a
/// key.
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
pub fn parse_ed25519(text: &str) -> Option<[u8; 32]> {
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

/// The name of a private-key member (RFC 7518 6.2.2, 6.3.2, RFC 8037 2) in
/// a JWK or JWKS, if any: the gateway must never hold a client's private key.
pub fn private_members(doc: &serde_json::Value) -> Option<&'static str> {
    const PRIVATE: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];
    let keys: Vec<&serde_json::Value> = match doc.get("keys").and_then(|k| k.as_array()) {
        Some(a) => a.iter().collect(),
        None => vec![doc],
    };
    keys.iter()
        .find_map(|k| PRIVATE.iter().find(|m| k.get(**m).is_some()).copied())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
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

    /// RFC 8037 A.2: the Ed25519 public key of the RFC's example.
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn each_key_is_bound_to_the_algorithm_of_its_type() {
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": RFC8037_X},
            {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": RFC8037_X}
        ]});
        let keys = assertion_keys(&doc).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|k| k.alg == Algorithm::EdDSA));
        assert_eq!(keys[0].kid.as_deref(), Some("ed"));
        // An alg that does not match the key's type is refused.
        let doc =
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "RS256", "x": RFC8037_X});
        assert!(assertion_keys(&doc).unwrap_err().contains("match its type"));
        assert!(assertion_keys(&serde_json::json!({"keys": []})).is_err());
        assert!(assertion_keys(&serde_json::json!({"pem": "nope"})).is_err());
    }

    #[test]
    fn a_published_set_keeps_its_signature_keys_and_skips_the_rest() {
        let set: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "sig", "x": RFC8037_X},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": RFC8037_X},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}
        ]}))
        .unwrap();
        let keys = signature_keys(&set);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("sig"));
    }
}

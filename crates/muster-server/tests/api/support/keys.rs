//! The JWT key fixtures in `tests/api/fixtures` (see its README): one RSA,
//! one P-256 and one Ed25519 key pair, and `jwks.json` with their public
//! halves under the key ids `rsa-1`, `ec-1` and `ed-1`.
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;
use std::path::PathBuf;

/// The fixtures' algorithms, private key files and key ids.
pub const KEYS: [(&str, &str, &str); 3] = [
    ("RS256", "rsa.key.pem", "rsa-1"),
    ("ES256", "ec.key.pem", "ec-1"),
    ("EdDSA", "ed25519.key.pem", "ed-1"),
];

pub fn fixture_path(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap()
}

/// The public JWK Set of the three key pairs.
pub fn jwks() -> Value {
    serde_json::from_str(&fixture("jwks.json")).unwrap()
}

/// The private key of `alg`'s fixture (RS256, ES256 or EdDSA).
pub fn encoding_key(alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(fixture("rsa.key.pem").as_bytes()).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(fixture("ec.key.pem").as_bytes()).unwrap(),
        Algorithm::EdDSA => {
            EncodingKey::from_ed_pem(fixture("ed25519.key.pem").as_bytes()).unwrap()
        }
        _ => unreachable!("no key fixture for {alg:?}"),
    }
}

/// The key id `jwks.json` gives `alg`'s key; `None` for other algorithms.
pub fn kid(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::RS256 => Some("rsa-1"),
        Algorithm::ES256 => Some("ec-1"),
        Algorithm::EdDSA => Some("ed-1"),
        _ => None,
    }
}

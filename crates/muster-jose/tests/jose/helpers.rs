//! A P-256 key pair made by `openssl` for these tests only, and tokens
//! signed with it.
use jsonwebtoken::{encode, Algorithm, DecodingKey, EncodingKey, Header};

const EC_PRIV: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmzhHr5Gl6EsU2EC1
UP86K94/qKuci2cYraLtWTQHzAShRANCAAQ3G8oimqReUhcWEDwcJjX5vom0GrrN
cq7v7KI1Yb7ZJdXHJhqHBur4K+tJTmYR/Mik0jnb5eZpZOICrSdNJfB+
-----END PRIVATE KEY-----";
pub const EC_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENxvKIpqkXlIXFhA8HCY1+b6JtBq6
zXKu7+yiNWG+2SXVxyYahwbq+CvrSU5mEfzIpNI52+XmaWTiAq0nTSXwfg==
-----END PUBLIC KEY-----";

/// A compact JWS of `claims` signed ES256 with the test key, `kid` in the
/// header when given.
pub fn es256(claims: &serde_json::Value, kid: Option<&str>) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = kid.map(str::to_owned);
    encode(
        &h,
        claims,
        &EncodingKey::from_ec_pem(EC_PRIV.as_bytes()).unwrap(),
    )
    .unwrap()
}

pub fn ec_public() -> DecodingKey {
    DecodingKey::from_ec_pem(EC_PUB.as_bytes()).unwrap()
}

/// A JSON object as a claim map.
pub fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

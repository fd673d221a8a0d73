//! The entry point of the `jwt` fuzz target (`fuzz/`, see
//! `docs/fuzzing.md`), also run over the committed corpus by this crate's
//! `tests/jose/fuzz_corpus.rs`: arbitrary bytes read as a token through
//! what login sync and `private_key_jwt` read before the signature is
//! checked, the signature checks with RS256, ES256, EdDSA and HS256 test
//! keys, and the claim rules of both. It returns for every input; a panic
//! is a bug.
use crate::jwk::{assertion_keys, AssertionKey};
use crate::{assertion, jws, login};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::OnceLock;

/// Public keys (RS256, ES256, EdDSA) that signed the `jwt` seeds; their
/// private halves were thrown away.
const JWKS: &str = r#"{"keys":[
{"kty":"RSA","kid":"rsa-1","alg":"RS256","n":"tFDAIC_JRRKaV_sASvz5Xvmlt9WVLKljMaMHtacA-eMueQz9P5AJ6-M6n6IPT2bEtkrtSAIpL3eoJBeKwthjx9nRbxo2VkR-A08j_YRsG1pbY-gIze4NLE856rkpFzRsn5EzknqgZlzDpBPnpU22S-tk3X8uN37_81KNRMvYaRKT7muPppJP8bGE7QElEVPbeM3BYwQtIwc4iSeNd0Ek_9VCshj7lyZ6h9BuAIqBsih-B9LBftQwLjCJggpdxwijcmwmRZYjDUy5Q7F0pHygKW3WKwLdfuDeCK5crLqzqf3VgiALUF9jpyz_CK23BPKdF2O0RQFkr7YUreyV-r-AEw","e":"AQAB"},
{"kty":"EC","kid":"ec-1","crv":"P-256","x":"CcCB-O75Yx1as0KY-OJ1YAAiA3DPvGsv1oTJrzp4U1s","y":"A_4_GOOou9XPiA5iP8EXvyyejalXfH1ut_YP4sUrc6o"},
{"kty":"OKP","kid":"ed-1","crv":"Ed25519","x":"3Yi8ROpT8mOkCzH15_sQOFpc9GSRNuI1Bx_JU8H0frM"}]}"#;

/// The HS256 secret of the `login-HS256` seed.
const HS256_SECRET: &[u8] = b"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";

/// The clock the seeds were made for (Unix seconds).
const NOW: i64 = 1_700_000_000;

/// The client id, issuer and audience of the seeds.
const CLIENT_ID: &str = "fuzz-client";
const ISSUER: &str = "http://127.0.0.1";
const IDP_ISSUER: &str = "https://idp.example";
const IDP_AUDIENCE: &str = "muster";

/// The seeds' public keys; the replay test checks that all three parse.
pub fn keys() -> &'static [AssertionKey] {
    static KEYS: OnceLock<Vec<AssertionKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        serde_json::from_str(JWKS)
            .ok()
            .and_then(|doc| assertion_keys(&doc).ok())
            .unwrap_or_default()
    })
}

/// JWT/JWS parsing: what login sync and `private_key_jwt` read of a token
/// before and after its signature is checked.
pub fn jwt(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = login::unverified(token);
    let header = assertion::read_unverified(token, None);
    let _ = assertion::read_unverified(token, Some(CLIENT_ID));

    for k in keys() {
        let _ = jws::verify(token, k.alg, &k.key);
        // Login sync has jsonwebtoken check the signature, iss and aud.
        let v = login::validation(k.alg, IDP_ISSUER, IDP_AUDIENCE);
        let _ = login::verify_signature(token, std::slice::from_ref(&k.key), &v);
    }
    if let Ok((header, _)) = header {
        let _ = assertion::verify_signature(token, &header, keys());
    }
    let hs = DecodingKey::from_secret(HS256_SECRET);
    let _ = jws::verify(token, Algorithm::HS256, &hs);
    let v = login::validation(Algorithm::HS256, IDP_ISSUER, IDP_AUDIENCE);
    let _ = login::verify_signature(token, &[hs], &v);

    // The claim checks run only on signed tokens, but must hold for any
    // claims a key holder could sign.
    if let Some(claims) = jws::payload::<assertion::Claims>(token) {
        if let Ok(a) = assertion::check_claims(
            claims,
            CLIENT_ID,
            ISSUER,
            NOW,
            assertion::Lifetimes {
                max_lifetime: 3600,
                max_age: 300,
            },
        ) {
            assert!(!a.jti.is_empty() && a.jti.len() <= assertion::MAX_JTI);
            // The replay memory outlives the request and never the age.
            assert!(a.forget_at >= NOW && a.forget_at <= NOW + 300 + 2 * assertion::LEEWAY);
        }
    }
    if let Some(claims) = jws::payload::<login::ClaimMap>(token) {
        if let Ok(a) = login::check_claims(&claims, NOW, 60) {
            assert!(!a.sub.is_empty() && !a.jti.is_empty());
        }
        let _ = login::roles_claim(&claims, "roles");
    }
}

//! Entry points of the `jwt` and `upload_params` fuzz targets (`fuzz/`, see
//! `docs/fuzzing.md`), also run over the committed corpus by
//! `tests/fuzz_corpus.rs`. They call the pure parsing and checking
//! functions of the request paths (no state, no I/O) on arbitrary bytes and
//! return; a panic is a bug.
use crate::api::imports;
use crate::auth::client_assertion::{self, Claims};
use crate::auth::jws;
use crate::auth::login_sync;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use muster_core::mapping::{MappingDoc, MappingFormat};
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

fn keys() -> &'static [crate::auth::keys::AssertionKey] {
    static KEYS: OnceLock<Vec<crate::auth::keys::AssertionKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        serde_json::from_str(JWKS)
            .ok()
            .and_then(|doc| crate::auth::keys::assertion_keys(&doc).ok())
            .unwrap_or_default()
    })
}

/// JWT/JWS parsing: what login sync and `private_key_jwt` read of a token
/// before and after its signature is checked.
pub fn jwt(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = login_sync::unverified(token);
    let _ = client_assertion::read_unverified(token, None);
    let _ = client_assertion::read_unverified(token, Some(&CLIENT_ID.to_owned()));

    for k in keys() {
        let _ = jws::verify(token, k.alg, &k.key);
        // Login sync has jsonwebtoken check the signature and claims.
        let _ = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &k.key,
            &login_validation(k.alg),
        );
    }
    let hs = DecodingKey::from_secret(HS256_SECRET);
    let _ = jws::verify(token, Algorithm::HS256, &hs);
    let _ = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
        token,
        &hs,
        &login_validation(Algorithm::HS256),
    );

    // The claim checks run only on signed tokens, but must hold for any
    // claims a key holder could sign.
    if let Some(claims) = jws::payload::<Claims>(token) {
        let _ = client_assertion::check_claims(claims, CLIENT_ID, ISSUER, NOW, 300);
    }
    if let Some(claims) = jws::payload::<serde_json::Map<String, serde_json::Value>>(token) {
        let _ = login_sync::check_claims(&claims, NOW, 60);
    }
}

/// The validation login sync asks of jsonwebtoken (times are checked
/// afterwards against the injected clock).
fn login_validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.set_required_spec_claims(&["iss", "aud"]);
    v.set_issuer(&[IDP_ISSUER]);
    v.set_audience(&[IDP_AUDIENCE]);
    v
}

/// A mapping the parsed `header_map` is compiled with.
const MAPPING: &str = r#"
key = "Employee ID"
[attributes.given_name]
column = "First Name"
required = true
[attributes.display_name]
columns = ["First Name", "Last Name"]
"#;

const HEADER: [&str; 3] = ["Employee ID", "First Name", "Last Name"];

fn mapping() -> Option<&'static MappingDoc> {
    static DOC: OnceLock<Option<MappingDoc>> = OnceLock::new();
    DOC.get_or_init(|| MappingDoc::parse(MAPPING, MappingFormat::Toml).ok())
        .as_ref()
}

/// The upload parameters of `POST /api/v1/imports`. Input: the query
/// string, optionally followed by a line break and the `Content-Type` and
/// then another and the `Idempotency-Key`.
pub fn upload_params(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let query = parts.next().unwrap_or_default();
    let content_type = parts.next();
    let idempotency_key = parts.next();
    let max_wait = 3600;
    let p = match imports::parse_params(Some(query), max_wait) {
        Ok(p) => p,
        Err(e) => {
            // A bad parameter is the client's error, never the server's.
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e:?}");
            return;
        }
    };
    assert!(p.wait <= max_wait);
    assert!(!p.mapping.is_empty());
    assert!(
        muster_intake::fuzz::delimiter_accepted(p.delimiter),
        "a delimiter the API accepts is refused by the CSV reader"
    );
    if let Some(doc) = mapping() {
        let _ = doc.compile(&HEADER, &p.header_map);
        let _ = doc.compile_named(&p.header_map);
    }
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (
            header::HeaderName::from_static("idempotency-key"),
            idempotency_key,
        ),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, v);
        }
    }
    for result in [
        imports::detect_format(&p, &headers).map(|_| ()),
        imports::idempotency_key(&headers).map(|_| ()),
    ] {
        if let Err(e) = result {
            assert!(e.status().is_client_error(), "{e:?}");
        }
    }
}
